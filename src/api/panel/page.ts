/**
 * The Settings page shell. It carries no data: the same-origin script asks for an API key, keeps it
 * in sessionStorage (gone when the tab closes) and reads the JSON API with it, so the page needs no
 * cookie, no session store and no CSRF defence. Everything it renders goes through textContent.
 */
import { COMPLIANCE_STATES, OS_FAMILIES, OWNERSHIPS } from '../../connector/posture.js';
import { ASSETS_SCRIPT_PATH, renderAssetsSection } from './assets-section.js';

export const PANEL_PATHS = {
  settings: '/settings',
  posture: '/settings/integrations/intune',
  script: '/settings/assets/panel.js',
  style: '/settings/assets/panel.css',
  icon: '/settings/assets/icon.svg',
} as const;

/** Nothing runs or loads unless it comes from this origin; no inline script or style at all. */
export const PANEL_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** The filters offer exactly the values the devices API accepts (connector/posture.ts); compliant leads, as the most asked for. */
const COMPLIANCE_STATE_OPTIONS = ['compliant', ...COMPLIANCE_STATES.filter((state) => state !== 'compliant')];

/** The command the first-run hint shows: a reader key named for the panel. */
export const FIRST_RUN_COMMAND = 'intune-connector keys create --role reader --name settings-panel';

const options = (values: readonly string[]): string => values.map((v) => `<option value="${v}">${v}</option>`).join('');

export function renderSettingsPage(): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Settings · Device posture (Intune) · intune-connector</title>
<link rel="icon" href="${PANEL_PATHS.icon}" type="image/svg+xml">
<link rel="stylesheet" href="${PANEL_PATHS.style}">
<script type="module" src="${PANEL_PATHS.script}"></script>
<script type="module" src="${ASSETS_SCRIPT_PATH}"></script>
</head>
<body>
<header class="top"><span class="brand">intune-connector</span><span class="crumb">Settings</span></header>
<div class="layout">
<nav class="tabs" aria-label="Settings sections">
  <a href="${PANEL_PATHS.posture}" aria-current="page">Device posture (Intune)</a>
</nav>
<main id="posture" data-testid="posture-panel">
  <h1>Device posture (Intune)</h1>
  <p class="lede">Read-only view of the redacted device posture synced from Intune. Device names, users and serial numbers are never shown; a keyed fingerprint stands in for the serial.</p>

  <section id="first-run" class="card first-run" data-testid="first-run-hint" aria-labelledby="h-first-run">
    <h2 id="h-first-run">First time here? Make a reader key</h2>
    <p>This page shows device posture only to an API key of role reader (or admin). On the host where the connector runs, create one for the panel:</p>
    <pre><code id="first-run-command">${FIRST_RUN_COMMAND}</code></pre>
    <p class="hint">It prints the key once; paste it below. Nothing is shown before a key is given, not even counts: how many devices are out of compliance is itself worth protecting.</p>
  </section>

  <form id="key-form" class="card" hidden autocomplete="off">
    <label for="api-key">API key (role reader or admin)</label>
    <input id="api-key" name="api-key" type="password" spellcheck="false" placeholder="icn_…" required>
    <button type="submit">Show posture</button>
    <p class="hint">The key stays in this browser tab only (sessionStorage) and is forgotten when the tab closes.</p>
    <p id="key-error" class="error" role="alert"></p>
  </form>

  <div id="panel" hidden>
    <div class="bar"><span id="whoami" class="muted"></span><button id="sign-out" type="button" class="link">Forget key</button></div>
    <p id="panel-error" class="error" role="alert"></p>

    <section class="card" aria-labelledby="h-connections">
      <h2 id="h-connections">Connections</h2>
      <table data-testid="connections"><thead><tr><th>Name</th><th>Status</th><th>Cloud</th><th>Last sync</th><th>Result</th><th>Devices</th></tr></thead><tbody id="connections-body"></tbody></table>
    </section>

    <div class="grid">
      <section class="card" aria-labelledby="h-compliance">
        <h2 id="h-compliance">By compliance state</h2>
        <table data-testid="counts-compliance"><tbody id="counts-compliance"></tbody></table>
      </section>
      <section class="card" aria-labelledby="h-os">
        <h2 id="h-os">By OS family</h2>
        <table data-testid="counts-os"><tbody id="counts-os"></tbody></table>
      </section>
    </div>

    <section class="card" aria-labelledby="h-devices">
      <h2 id="h-devices">Devices <span id="device-total" class="muted" data-testid="device-total"></span></h2>
      <form id="filters" class="filters">
        <label>Compliance <select id="f-compliance" name="compliance_state"><option value="">any</option>${options(COMPLIANCE_STATE_OPTIONS)}</select></label>
        <label>OS <select id="f-os" name="os_family"><option value="">any</option>${options(OS_FAMILIES)}</select></label>
        <label>Ownership <select id="f-ownership" name="ownership"><option value="">any</option>${options(OWNERSHIPS)}</select></label>
        <label>Device id starts with <input id="f-q" name="q" type="search" maxlength="36" pattern="[0-9A-Fa-f-]*" spellcheck="false"></label>
      </form>
      <p id="filter-error" class="error" role="alert" data-testid="filter-error"></p>
      <div class="table-wrap"><table class="devices" data-testid="devices"><thead><tr><th>Device id</th><th>OS</th><th>Compliance</th><th>Encrypted</th><th>Last check-in</th><th><span class="sr-only">Ownership, model, serial fingerprint</span></th></tr></thead><tbody id="devices-body"></tbody></table></div>
      <div class="pager"><button id="prev-page" type="button" disabled>Previous</button><span id="page-info" class="muted"></span><button id="next-page" type="button" disabled>Next</button></div>
    </section>

    ${renderAssetsSection()}
  </div>
</main>
</div>
</body>
</html>
`;
}
