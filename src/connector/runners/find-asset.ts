/** find_asset: the asset whose sources report a serial fingerprint, from the host's asset identity (no Graph call). */
import type { Logger } from '../../log/index.js';
import type { ConnectorAssets } from '../assets.js';
import type { OperationInput, OperationOutput } from '../operations.js';
import { succeeded, type RunOutcome } from '../outcome.js';
import type { RunCall } from './call.js';

export interface FindAssetDeps {
  readonly assets: () => ConnectorAssets | undefined;
  readonly logger: Logger | undefined;
}

export async function runFindAsset(deps: FindAssetDeps, call: RunCall<OperationInput<'find_asset'>>): Promise<RunOutcome<OperationOutput<'find_asset'>>> {
  const assets = deps.assets();
  if (assets === undefined) {
    return { ok: false, kind: 'failed', reason: 'not_found', message: 'Asset identity is not available in this process: ask the server (serve) that keeps assets.' };
  }
  const found = await assets.byFingerprint(call.tenant, call.input.fingerprint.toLowerCase());
  if (found.length === 0) {
    return { ok: false, kind: 'failed', reason: 'not_found', message: 'No asset of this tenant has a source with that serial fingerprint.' };
  }
  return succeeded({ assets: found }, { resultCount: found.length, graphRequestId: null });
}
