/**
 * PGlite does not lock its data directory, and two processes writing one directory corrupt it.
 * This lock file (created with O_EXCL, holding the owner's pid) refuses a second process with a
 * message that says who holds it; a lock left by a dead process is taken over.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DbError } from './errors.js';

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
  const file = path.join(dir, 'intune-connector.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.off('exit', release);
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
        } catch {
          // already gone
        }
      };
      process.on('exit', release);
      return { file, release };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
      if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) {
        throw new DbError(
          `the embedded database in ${dir} is in use by process ${holder}. PGlite allows one process at a time: ` +
            `stop that process, give this one its own INTUNE_DATA_DIR, or set DATABASE_URL to share a PostgreSQL server`,
          'db_locked',
        );
      }
      if (holder === process.pid) {
        throw new DbError(`the embedded database in ${dir} is already open in this process; open it once and share the handle`, 'db_locked');
      }
      fs.rmSync(file, { force: true }); // stale: its owner is gone
    }
  }
  throw new DbError(`could not take the lock ${file}; remove it if no intune-connector process is running`, 'db_locked');
}
