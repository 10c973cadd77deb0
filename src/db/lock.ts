/**
 * PGlite does not lock its data directory, and two processes writing one directory corrupt it.
 * This lock file (holding the owner's pid, linked into place whole) refuses a second process with
 * a message that says who holds it; a lock left by a dead process is taken over, by one process only.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DbError } from './errors.js';

const LOCK_FILE = 'intune-connector.lock';

export interface DirLock {
  readonly file: string;
  release(): void;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function acquireDirLock(dir: string): DirLock {
  const file = path.join(dir, LOCK_FILE);
  // The lock file appears whole or not at all: written to a private temporary file, then linked
  // into place (link fails if the lock exists), so no process ever reads a half-written lock.
  const temporary = `${file}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`;
  fs.writeFileSync(temporary, `${process.pid}\n`, { flag: 'wx' });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        fs.linkSync(temporary, file);
        return holdLock(file);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = readHolder(file);
      if (holder === process.pid) {
        throw new DbError(`the embedded database in ${dir} is already open in this process; open it once and share the handle`, 'db_locked');
      }
      if (holder !== undefined && isAlive(holder)) {
        throw new DbError(
          `the embedded database in ${dir} is in use by process ${holder}, which does not share it (only \`serve\` does, over the socket ${path.join(dir, '.s.PGSQL.5432')}): ` +
            `stop that process, give this one its own INTUNE_DATA_DIR, or set DATABASE_URL to share a PostgreSQL server`,
          'db_locked',
        );
      }
      // Stale: its owner is gone. Move it aside by rename, which only one contender can win for a
      // given file, and check that what was moved is still the stale lock before discarding it.
      const aside = `${file}.stale.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
      try {
        fs.renameSync(file, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // someone else moved it
        throw err;
      }
      const moved = readHolder(aside);
      if (moved !== holder) {
        // A live process took the lock between our read and our rename: put it back.
        try {
          fs.linkSync(aside, file);
        } catch {
          // it re-took the lock already; either way the lock file is theirs
        }
      }
      fs.rmSync(aside, { force: true });
    }
  } finally {
    fs.rmSync(temporary, { force: true });
  }
  throw new DbError(`could not take the lock ${file}; remove it if no intune-connector process is running`, 'db_locked');
}

/** The pid of the live process holding dir's lock, if any (a stale lock names no one). */
export function liveLockHolder(dir: string): number | undefined {
  const holder = readHolder(path.join(dir, LOCK_FILE));
  return holder !== undefined && isAlive(holder) ? holder : undefined;
}

function readHolder(file: string): number | undefined {
  try {
    const pid = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function holdLock(file: string): DirLock {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    if (readHolder(file) === process.pid) fs.rmSync(file, { force: true });
  };
  process.on('exit', release);
  return { file, release };
}
