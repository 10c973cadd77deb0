import type { Command } from 'commander';
import { openDatabase } from '../db/index.js';
import { MIGRATIONS } from '../db/migrations/index.js';
import { runMigrations } from '../db/migrate.js';
import { configFromEnv } from './shared.js';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('Apply pending database migrations (they also run at start). Safe to run repeatedly.')
    .action(async () => {
      const config = configFromEnv();
      const db = await openDatabase(config.database, { migrate: false });
      try {
        const { applied } = await runMigrations(db, MIGRATIONS);
        const target = db.kind === 'postgres' ? 'PostgreSQL' : `embedded database in ${config.database.dataDir}`;
        process.stdout.write(
          applied.length === 0
            ? `${target}: up to date (${MIGRATIONS.length} migrations)\n`
            : `${target}: applied ${applied.map((m) => `${m.version} ${m.name}`).join(', ')}\n`,
        );
      } finally {
        await db.close();
      }
    });
}
