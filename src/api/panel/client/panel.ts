/**
 * The Settings posture panel in the browser: asks for an API key, keeps it in sessionStorage (gone
 * when the tab closes), reads the JSON API with it and renders everything through textContent.
 * Compiled by its own tsconfig (lib DOM) to dist/api/panel/client/panel.js and served from this
 * origin as a module script, the only script the page's CSP allows.
 */

/** The parts of the API's answers the panel reads. */
interface LastSync {
  readonly status: string;
  readonly started_at: string;
  readonly finished_at: string | null;
  readonly error_code: string | null;
  readonly devices: number;
}

interface ConnectionView {
  readonly display_name: string;
  readonly status: string;
  readonly cloud: string;
  readonly demo?: boolean;
  readonly last_sync?: LastSync | null;
}

interface SummaryView {
  readonly connections?: readonly ConnectionView[];
  readonly counts_by_compliance_state?: Readonly<Record<string, number>>;
  readonly counts_by_os_family?: Readonly<Record<string, number>>;
}

interface DeviceView {
  readonly device_id: string;
  readonly os_family: string;
  readonly os_version: string | null;
  readonly compliance_state: string;
  readonly grace_period_expires_at: string | null;
  readonly is_encrypted: boolean;
  readonly jailbroken: string | null;
  readonly ownership: string;
  readonly last_sync_at: string | null;
  readonly manufacturer: string | null;
  readonly model: string | null;
  readonly serial_fingerprint: string | null;
}

interface DevicesView {
  readonly devices: readonly DeviceView[];
  readonly total: number;
  readonly next_cursor: string | null;
}

const KEY_SLOT = 'intune-connector.api-key';
const API = '/api/v1/integrations/intune';
const PAGE_SIZE = 50;
let cursors: Array<string | null> = [null];
let page = 0;

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el as T;
}

function text<T extends HTMLElement>(el: T, value: unknown): T {
  el.textContent = value === null || value === undefined ? '—' : String(value);
  return el;
}

function cell(row: HTMLTableRowElement, value: unknown, cls?: string): HTMLTableCellElement {
  const td = document.createElement('td');
  text(td, value);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function when(iso: string | null | undefined): string | null {
  if (!iso) return null;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function clear(el: HTMLElement): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function getKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_SLOT);
  } catch {
    return null;
  }
}

function setKey(key: string | null): void {
  try {
    if (key) sessionStorage.setItem(KEY_SLOT, key);
    else sessionStorage.removeItem(KEY_SLOT);
  } catch {
    // Storage is disabled: the key lives only as long as this page.
  }
}

class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(path, { headers: { authorization: `Bearer ${getKey() ?? ''}`, accept: 'application/json' }, cache: 'no-store', credentials: 'omit' });
  const body: unknown = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string } } | null)?.error ?? {};
    throw new ApiFailure(res.status, err.code ?? 'error', err.message ?? `HTTP ${res.status}`);
  }
  return body as T;
}

function showForm(message: string): void {
  $('panel').hidden = true;
  $('key-form').hidden = false;
  $('first-run').hidden = false;
  text($('key-error'), message);
  $<HTMLInputElement>('api-key').focus();
}

function fail(err: unknown): void {
  if (err instanceof ApiFailure && err.status === 401) {
    setKey(null);
    showForm(`That key was not accepted: ${err.message}`);
    return;
  }
  if (err instanceof ApiFailure && err.status === 403) {
    setKey(null);
    showForm('That key cannot read device posture: use a reader or admin key.');
    return;
  }
  text($('panel-error'), err instanceof Error && err.message ? err.message : 'Could not load the posture.');
}

function renderCounts(tbodyId: string, counts: Readonly<Record<string, number>> | undefined, testPrefix: string): void {
  const body = $(tbodyId);
  clear(body);
  for (const k of Object.keys(counts ?? {}).sort()) {
    const tr = document.createElement('tr');
    cell(tr, k);
    cell(tr, counts?.[k], 'num').setAttribute('data-testid', testPrefix + k);
    body.appendChild(tr);
  }
}

function renderSummary(s: SummaryView): void {
  const body = $('connections-body');
  clear(body);
  const connections = s.connections ?? [];
  for (const c of connections) {
    const tr = document.createElement('tr');
    const name = cell(tr, c.display_name);
    if (c.demo) {
      const badge = document.createElement('span');
      badge.className = 'badge demo';
      badge.textContent = 'DEMO: simulated tenant';
      name.appendChild(document.createTextNode(' '));
      name.appendChild(badge);
    }
    cell(tr, c.status).className = `status ${c.status}`;
    cell(tr, c.cloud);
    const run = c.last_sync;
    cell(tr, run ? when(run.finished_at ?? run.started_at) : 'never');
    cell(tr, run ? run.status + (run.error_code ? ` (${run.error_code})` : '') : null);
    cell(tr, run ? run.devices : null, 'num');
    body.appendChild(tr);
  }
  if (connections.length === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'No Intune connection in this tenant yet.').colSpan = 6;
    body.appendChild(tr);
  }
  renderCounts('counts-compliance', s.counts_by_compliance_state, 'count-compliance-');
  renderCounts('counts-os', s.counts_by_os_family, 'count-os-');
}

function filterQuery(): URLSearchParams {
  const q = new URLSearchParams();
  q.set('limit', String(PAGE_SIZE));
  const filters: ReadonlyArray<readonly [string, string]> = [
    ['f-compliance', 'compliance_state'],
    ['f-os', 'os_family'],
    ['f-ownership', 'ownership'],
    ['f-q', 'q'],
  ];
  for (const [id, param] of filters) {
    const v = $<HTMLInputElement | HTMLSelectElement>(id).value.trim();
    if (v) q.set(param, v);
  }
  const cursor = cursors[page];
  if (cursor) q.set('cursor', cursor);
  return q;
}

/** Columns of a device's main row; the rest of its posture is in the row's detail. */
const DEVICE_COLUMNS = 6;

/**
 * The compliance cell: an inGracePeriod device whose grace period has ended is shown as ended
 * (the gate denies it, grace_period_expired), not as one still in grace.
 */
function compliance(d: DeviceView, now: number): { text: string; cls: string } {
  if (d.compliance_state !== 'inGracePeriod') return { text: d.compliance_state, cls: d.compliance_state };
  const ends = d.grace_period_expires_at ? new Date(d.grace_period_expires_at).getTime() : Number.NaN;
  if (Number.isNaN(ends)) return { text: 'in grace period (no end date)', cls: 'inGracePeriod' };
  const day = when(d.grace_period_expires_at)?.slice(0, 10) ?? '';
  return ends <= now ? { text: `grace period ended ${day}`, cls: 'graceEnded' } : { text: `in grace period until ${day}`, cls: 'inGracePeriod' };
}

interface FailingSettingsView {
  readonly status: 'none' | 'listed' | 'unavailable';
  readonly reason?: string;
  readonly settings: ReadonlyArray<{ readonly setting: string; readonly fix: string }>;
}

/** Appends "To fix" to a device's detail, read from its detail route (Intune's failing settings, in the product's words). */
async function showFailingSettings(d: DeviceView, list: HTMLElement): Promise<void> {
  const item = document.createElement('div');
  item.setAttribute('data-testid', 'failing-settings');
  text(item.appendChild(document.createElement('dt')), 'To fix');
  const dd = item.appendChild(document.createElement('dd'));
  text(dd, 'reading…');
  list.appendChild(item);
  try {
    const detail = await api<{ failing_settings: FailingSettingsView }>(`${API}/devices/${encodeURIComponent(d.device_id)}`);
    const f = detail.failing_settings;
    if (f.status === 'listed') {
      text(dd, f.settings.map((s) => s.fix).join('; '));
      dd.title = f.settings.map((s) => s.setting).join('\n');
    } else text(dd, f.status === 'none' ? 'Intune lists no failing setting' : `not available now (${f.reason ?? 'unknown'})`);
  } catch (err) {
    text(dd, err instanceof ApiFailure ? err.message : 'could not be read');
  }
}

function detailRow(d: DeviceView): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.className = 'detail';
  tr.hidden = true;
  const td = document.createElement('td');
  td.colSpan = DEVICE_COLUMNS;
  const list = document.createElement('dl');
  const items: ReadonlyArray<readonly [string, unknown]> = [
    ['Ownership', d.ownership],
    ['Jailbroken', d.jailbroken],
    ['Grace period ends', when(d.grace_period_expires_at)],
    ['Model', [d.manufacturer, d.model].filter(Boolean).join(' ') || null],
    ['Serial fingerprint', d.serial_fingerprint ? `${d.serial_fingerprint.replace(/^hmac-sha256:/, '').slice(0, 12)}…` : null],
  ];
  for (const [label, value] of items) {
    const item = document.createElement('div');
    text(item.appendChild(document.createElement('dt')), label);
    text(item.appendChild(document.createElement('dd')), value);
    list.appendChild(item);
  }
  td.appendChild(list);
  tr.appendChild(td);
  return tr;
}

function renderDevices(res: DevicesView): void {
  const body = $('devices-body');
  clear(body);
  const now = Date.now();
  for (const d of res.devices) {
    const tr = document.createElement('tr');
    tr.className = 'device';
    tr.setAttribute('data-compliance-state', d.compliance_state);
    cell(tr, d.device_id, 'mono');
    cell(tr, [d.os_family, d.os_version].filter(Boolean).join(' '));
    const state = compliance(d, now);
    cell(tr, state.text, `state ${state.cls}`);
    cell(tr, d.is_encrypted ? 'yes' : 'no');
    cell(tr, when(d.last_sync_at));
    const detail = detailRow(d);
    const toggle = document.createElement('button');
    toggle.type = 'button';
    toggle.className = 'link';
    toggle.textContent = 'Details';
    toggle.setAttribute('aria-expanded', 'false');
    let fixesShown = false;
    toggle.addEventListener('click', () => {
      detail.hidden = !detail.hidden;
      if (!detail.hidden && !fixesShown && d.compliance_state !== 'compliant') {
        fixesShown = true;
        const list = detail.querySelector('dl');
        if (list !== null) void showFailingSettings(d, list);
      }
      toggle.setAttribute('aria-expanded', String(!detail.hidden));
      toggle.textContent = detail.hidden ? 'Details' : 'Hide';
    });
    cell(tr, null).replaceChildren(toggle);
    body.appendChild(tr);
    body.appendChild(detail);
  }
  if (res.devices.length === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'No devices match.').colSpan = DEVICE_COLUMNS;
    body.appendChild(tr);
  }
  text($('device-total'), `(${res.total} matching)`);
  cursors[page + 1] = res.next_cursor;
  $<HTMLButtonElement>('next-page').disabled = !res.next_cursor;
  $<HTMLButtonElement>('prev-page').disabled = page === 0;
  text($('page-info'), `page ${page + 1}`);
  document.body.setAttribute('data-devices-loaded', String(Date.now()));
}

/** The filter controls by the query parameter they set, for messages about one of them. */
const FILTER_LABELS: Readonly<Record<string, string>> = {
  compliance_state: 'Compliance state',
  os_family: 'OS',
  ownership: 'Ownership',
  q: 'Device id',
};

/**
 * A refused filter: the API's sentence, said about the control the person typed in, and an empty
 * table, so nothing on screen looks like the answer to a filter that was not applied.
 */
function refuseFilter(err: ApiFailure): void {
  clear($('devices-body'));
  const match = /^querystring\.([a-z_]+) (.*)$/s.exec(err.message);
  const label = match?.[1] !== undefined ? FILTER_LABELS[match[1]] : undefined;
  const sentence = label !== undefined && match?.[2] !== undefined ? `${label} filter: ${match[2]}` : err.message;
  text($('filter-error'), `${sentence}. No devices are shown until the filter is corrected.`);
  text($('device-total'), '');
  text($('page-info'), '');
  $<HTMLButtonElement>('next-page').disabled = true;
  $<HTMLButtonElement>('prev-page').disabled = true;
  document.body.setAttribute('data-devices-loaded', String(Date.now()));
}

async function loadDevices(): Promise<void> {
  text($('panel-error'), '');
  text($('filter-error'), '');
  try {
    renderDevices(await api<DevicesView>(`${API}/devices?${filterQuery().toString()}`));
  } catch (err) {
    if (err instanceof ApiFailure && err.status === 400) refuseFilter(err);
    else fail(err);
  }
}

async function load(): Promise<void> {
  $('key-form').hidden = true;
  $('first-run').hidden = true;
  $('panel').hidden = false;
  const key = getKey() ?? '';
  text($('whoami'), `Using key ${key.slice(0, 20)}…`);
  try {
    renderSummary(await api<SummaryView>(`${API}/summary`));
  } catch (err) {
    fail(err);
    return;
  }
  await loadDevices();
}

function restart(): void {
  cursors = [null];
  page = 0;
  void loadDevices();
}

function start(): void {
  $('key-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $<HTMLInputElement>('api-key');
    const key = input.value.trim();
    input.value = '';
    if (!key) return;
    setKey(key);
    void load();
  });
  $('sign-out').addEventListener('click', () => {
    setKey(null);
    showForm('');
  });
  for (const id of ['f-compliance', 'f-os', 'f-ownership']) $(id).addEventListener('change', restart);
  let timer: ReturnType<typeof setTimeout> | undefined;
  $('f-q').addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(restart, 250);
  });
  $('filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    restart();
  });
  $('next-page').addEventListener('click', () => {
    if (cursors[page + 1]) {
      page += 1;
      void loadDevices();
    }
  });
  $('prev-page').addEventListener('click', () => {
    if (page > 0) {
      page -= 1;
      void loadDevices();
    }
  });
  if (getKey()) void load();
  else showForm('');
}

// A module script runs after the document is parsed, before DOMContentLoaded.
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();

export {};
