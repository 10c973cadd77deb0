/**
 * The ordered list of migrations. Each area owns its file; numbers are reserved per area so work
 * in parallel does not collide: 100s chronicle, 200s connector, 300s posture, 400s api, 500s agents, 600s assets.
 */
import type { Migration } from '../migrate.js';
import { chronicleMigrations } from './chronicle.js';
import { connectorMigrations } from './connector.js';
import { postureMigrations } from './posture.js';
import { apiMigrations } from './api.js';
import { agentMigrations } from './agents.js';
import { assetMigrations } from './assets.js';

export const MIGRATIONS: readonly Migration[] = [...chronicleMigrations, ...connectorMigrations, ...postureMigrations, ...apiMigrations, ...agentMigrations, ...assetMigrations].sort(
  (a, b) => a.version - b.version,
);
