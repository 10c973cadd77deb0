import type { Migration } from '../migrate.js';

export const chronicleMigrations: readonly Migration[] = [];
