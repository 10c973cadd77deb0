/**
 * The Settings page's "Assets" section: one machine per row with its sources, filters for Intune
 * only, agent only, both and disagreeing, and a row's attribute provenance on demand. Its own
 * markup and its own script (client/assets-panel.ts), so the posture section can change apart.
 */
import { OS_FAMILIES } from '../../connector/posture.js';

export const ASSETS_SCRIPT_PATH = '/settings/assets/assets-panel.js';

const options = (values: readonly string[]): string => values.map((v) => `<option value="${v}">${v}</option>`).join('');

export const ASSETS_STYLE = `
#assets-section .provenance td { white-space: normal; background: var(--bg); }
#assets-section .provenance table { width: auto; }
#assets-section .disagree { color: var(--bad); font-weight: 600; }
#assets-section .confidence { font-size: 11px; color: var(--muted); }
#assets-section .confidence.stale { color: var(--warn); }
`;

export function renderAssetsSection(): string {
  return `<section class="card" id="assets-section" aria-labelledby="h-assets" data-testid="assets-panel">
      <h2 id="h-assets">Assets <span id="asset-total" class="muted" data-testid="asset-total"></span></h2>
      <p class="hint">One row per machine: its Intune records and enrolled agents, matched by serial fingerprint, then Entra device id. Each attribute says its source and confidence (mdm, agent, stale).</p>
      <form id="asset-filters" class="filters">
        <label>Sources <select id="fa-source" name="source"><option value="">any</option><option value="intune">Intune only</option><option value="agent">agent only</option><option value="both">both</option></select></label>
        <label>Agreement <select id="fa-disagreement" name="disagreement"><option value="">any</option><option value="true">sources disagree</option><option value="false">sources agree</option></select></label>
        <label>OS <select id="fa-os" name="os_family"><option value="">any</option>${options(OS_FAMILIES)}</select></label>
      </form>
      <p id="asset-error" class="error" role="alert"></p>
      <div class="table-wrap"><table data-testid="assets"><thead><tr><th>Asset</th><th>OS</th><th>Sources</th><th>Compliance</th><th>Encrypted</th><th>Disagreements</th><th></th></tr></thead><tbody id="assets-body"></tbody></table></div>
      <div class="pager"><button id="assets-prev" type="button" disabled>Previous</button><span id="assets-page" class="muted"></span><button id="assets-next" type="button" disabled>Next</button></div>
    </section>`;
}
