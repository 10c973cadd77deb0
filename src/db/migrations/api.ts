import type { Migration } from '../migrate.js';

export const apiMigrations: readonly Migration[] = [];
