/**
 * The posture service as CLI commands use it (sync, doctor): over an opened runtime, keeping to the
 * shared Graph budget and dropping the replicas' cached answers after a sync, bootstrapped from the
 * configuration (or the demo tenant) like `serve`. A sync's new snapshot re-matches the tenant's
 * assets before the command returns, as `serve` does, so the assets never wait for serve's next start.
 */
import type { Config } from '../config/index.js';
import { createAssetService } from '../assets/index.js';
import { createPostureService, secretProviderFromConfig, type PostureService } from '../posture/index.js';
import type { Runtime } from '../runtime/index.js';

export async function openCliPostureService(runtime: Runtime, config: Config): Promise<PostureService> {
  const assets = createAssetService({ db: runtime.db, chronicle: runtime.chronicle, logger: runtime.logger });
  const posture = createPostureService({
    db: runtime.db,
    chronicle: runtime.chronicle,
    logger: runtime.logger,
    secrets: secretProviderFromConfig(config, process.env),
    config,
    fingerprintKeyFor: runtime.fingerprintKeyFor,
    graphBudget: runtime.sharing.graphBudget,
    // Replicas serving the gate drop their cached answers of the tenant (REDIS_URL).
    onSynced: (tenant, changed) => runtime.connector.invalidateSynced(tenant, changed),
    onSnapshotChanged: (tenant, connectionId, changes) => assets.rematchConnection(tenant, connectionId, changes),
  });
  try {
    await posture.bootstrapFromConfig(config, runtime.demo !== undefined ? { demo: runtime.demo } : {});
  } catch (err) {
    await posture.close();
    throw err;
  }
  return posture;
}
