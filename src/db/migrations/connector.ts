import type { Migration } from '../migrate.js';

export const connectorMigrations: readonly Migration[] = [];
