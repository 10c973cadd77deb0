import type { Migration } from '../migrate.js';

export const postureMigrations: readonly Migration[] = [];
