/**
 * The posture service as CLI commands use it (sync, doctor): over an opened runtime, keeping to the
 * shared Graph budget and dropping the replicas' cached answers after a sync, bootstrapped from the
 * configuration (or the demo tenant) like `serve`.
 */
import type { Config } from '../config/index.js';
import { createPostureService, secretProviderFromConfig, type PostureService } from '../posture/index.js';
import type { Runtime } from '../runtime/index.js';

export async function openCliPostureService(runtime: Runtime, config: Config): Promise<PostureService> {
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
  });
  try {
    await posture.bootstrapFromConfig(config, runtime.demo !== undefined ? { demo: runtime.demo } : {});
  } catch (err) {
    await posture.close();
    throw err;
  }
  return posture;
}
