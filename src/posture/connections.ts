/**
 * Audited connection changes: every insert and update of a connection appends its Chronicle event,
 * and a change Chronicle refuses is undone, so no unaudited connection or edit stays.
 */
import crypto from 'node:crypto';
import type { Actor, ChronicleWriter, EventType } from '../chronicle/types.js';
import type { Config } from '../config/index.js';
import type { Db } from '../db/index.js';
import type { Logger } from '../log/index.js';
import { PostureInputError, PostureNotFoundError, SecretRefError } from './errors.js';
import { connectionValues, type ConnectionRow } from './rows.js';
import { iso, defined } from '../common/values.js';
import { isGuid } from '../common/ids.js';
import { parseSecretRef } from './secrets.js';
import * as store from './store.js';
import type { Connection, ConnectionInput, ConnectionPatch, SecretProvider } from './types.js';
import { parseConnectionInput, parseConnectionPatch } from './validation.js';

export interface ConnectionChangesDeps {
  readonly db: Db;
  readonly chronicle: ChronicleWriter;
  readonly logger: Logger;
  readonly secrets: SecretProvider;
  readonly config: Config;
  readonly now: () => number;
  /** Called after every change that reached the database and Chronicle (the Graph client cache). */
  readonly afterChange: () => Promise<void>;
}

export type ConnectionOrigin = 'api' | 'config' | 'demo';

export interface ConnectionChanges {
  readConnection(tenant: string, id: string): Promise<Connection>;
  /** Inserts, then audits; if Chronicle refuses, the row is removed again. Returns the new id. */
  insertAudited(tenant: string, values: store.ConnectionValues, origin: ConnectionOrigin, actor: Actor): Promise<string>;
  /**
   * Applies changes under the row lock, then audits them; if Chronicle refuses, the old values are
   * written back. Returns null for an unknown id.
   */
  updateAudited(
    tenant: string,
    id: string,
    change: (current: ConnectionRow) => Promise<Partial<store.ConnectionValues>>,
    actor: Actor,
  ): Promise<Connection | null>;
  /** An administrator's new connection: validated, its secret reference proven, no duplicate. */
  create(tenant: string, rawInput: ConnectionInput, actor: Actor): Promise<Connection>;
  /** An administrator's edit; null for an unknown id. */
  update(tenant: string, id: string, rawPatch: ConnectionPatch, actor: Actor): Promise<Connection | null>;
}

function auditData(values: store.ConnectionValues & { id: string }, changed?: readonly string[]): Record<string, unknown> {
  return {
    connection_id: values.id,
    entra_tenant_id: values.entra_tenant_id,
    client_id: values.client_id,
    cloud: values.cloud,
    secret_ref: values.secret_ref,
    status: values.status,
    ...defined({ changed_fields: changed }),
  };
}

export function createConnectionChanges(deps: ConnectionChangesDeps): ConnectionChanges {
  const { db, chronicle, logger, secrets, config, now, afterChange } = deps;

  const checkCloud = (cloud: string) => {
    if (cloud === 'custom' && config.graph.cloud !== 'custom') {
      throw new PostureInputError(
        'cloud_not_configured',
        'cloud',
        'cloud custom uses the hosts the operator configured with INTUNE_CLOUD=custom, and none are configured: pick public, usgov, usgov-dod or china',
      );
    }
  };

  /** Normalises the reference and proves it resolves for purpose intune in this tenant. */
  const checkSecretRef = async (tenant: string, ref: string): Promise<string> => {
    try {
      const normalised = parseSecretRef(ref).ref;
      await secrets.resolve(normalised, 'intune', { tenant });
      return normalised;
    } catch (err) {
      if (err instanceof SecretRefError) throw new PostureInputError(err.code, 'secret_ref', err.message);
      throw err;
    }
  };

  const audit = (type: EventType, tenant: string, actor: Actor, values: store.ConnectionValues & { id: string }, changed?: readonly string[]) =>
    chronicle.append({ tenant, type, actor, data: auditData(values, changed) });

  const readConnection = async (tenant: string, id: string): Promise<Connection> => {
    const [connection] = await store.listConnections(db, tenant, id);
    if (connection === undefined) throw new PostureNotFoundError('connection_not_found', `no connection ${id} in this tenant`);
    return connection;
  };

  const insertAudited: ConnectionChanges['insertAudited'] = async (tenant, values, origin, actor) => {
    const id = crypto.randomUUID();
    await store.insertConnection(db, { id, tenant, origin, at: new Date(now()).toISOString(), ...values });
    try {
      await audit('integration.intune.connection_created', tenant, actor, { id, ...values });
    } catch (err) {
      await store.deleteConnection(db, id).catch((deleteErr: unknown) => logger.error({ err: deleteErr, connection_id: id }, 'could not remove an unaudited connection'));
      throw err;
    }
    return id;
  };

  const updateAudited: ConnectionChanges['updateAudited'] = async (tenant, id, change, actor) => {
    const outcome = await db.transaction(async (tx) => {
      const current = await store.lockConnection(tx, tenant, id);
      if (current === undefined) return null;
      const before = connectionValues(current);
      const after: store.ConnectionValues = { ...before, ...(await change(current)) };
      if (after.status !== before.status && after.status_reason === before.status_reason) after.status_reason = null;
      const changed = store.EDITABLE_FIELDS.filter((f) => after[f] !== before[f]);
      if (changed.length > 0) await store.updateConnectionValues(tx, id, after, new Date(now()).toISOString());
      return { before, after, changed, updatedAt: current.updated_at };
    });
    if (outcome === null) return null;
    if (outcome.changed.length > 0) {
      try {
        await audit('integration.intune.connection_updated', tenant, actor, { id, ...outcome.after }, outcome.changed);
      } catch (err) {
        await store
          .updateConnectionValues(db, id, outcome.before, iso(outcome.updatedAt))
          .catch((revertErr: unknown) => logger.error({ err: revertErr, connection_id: id }, 'could not revert an unaudited connection change'));
        throw err;
      }
      await afterChange();
    }
    return readConnection(tenant, id);
  };

  return {
    readConnection,
    insertAudited,
    updateAudited,

    async create(tenant, rawInput, actor) {
      const input = parseConnectionInput(rawInput);
      const cloud = input.cloud ?? 'public';
      checkCloud(cloud);
      const secretRef = await checkSecretRef(tenant, input.secret_ref);
      const duplicate = (await store.connectionRows(db, tenant)).find(
        (row) => row.status !== 'disabled' && row.entra_tenant_id.toLowerCase() === input.entra_tenant_id.toLowerCase() && row.client_id === input.client_id,
      );
      if (duplicate !== undefined) {
        throw new PostureInputError(
          'connection_exists',
          'client_id',
          `connection ${duplicate.id} already syncs this Entra tenant with this client id: update it, or disable it first`,
        );
      }
      const id = await insertAudited(
        tenant,
        { display_name: input.display_name, entra_tenant_id: input.entra_tenant_id, client_id: input.client_id, cloud, secret_ref: secretRef, status: input.status ?? 'active', status_reason: null },
        'api',
        actor,
      );
      await afterChange();
      return readConnection(tenant, id);
    },

    async update(tenant, id, rawPatch, actor) {
      const patch = parseConnectionPatch(rawPatch);
      if (!isGuid(id)) return null;
      return updateAudited(
        tenant,
        id.toLowerCase(),
        async (current) => {
          if (current.origin === 'demo') {
            const field = Object.keys(patch).find((k) => k !== 'display_name' && k !== 'status');
            if (field !== undefined) {
              throw new PostureInputError('demo_connection', field, 'the demo connection takes its credentials from the built-in simulator: only display_name and status can change');
            }
          }
          if (patch.cloud !== undefined && patch.cloud !== current.cloud) checkCloud(patch.cloud);
          const secretRef = patch.secret_ref === undefined ? undefined : await checkSecretRef(tenant, patch.secret_ref);
          const { secret_ref: _ignored, ...rest } = patch;
          return { ...rest, ...defined({ secret_ref: secretRef }) };
        },
        actor,
      );
    },
  };
}
