/**
 * The Settings page's Assets section in the browser: reads GET /api/v1/assets with the key the
 * posture section stored (sessionStorage), once that section is shown, and renders through
 * textContent only. A row's "Provenance" button shows every attribute with its source and
 * confidence, and the values each source reported where they disagree.
 */

interface Attribute {
  readonly value: string | boolean | null;
  readonly source: string;
  readonly source_id: string;
  readonly confidence: string;
}

interface AssetView {
  readonly asset_id: string;
  readonly os_family: string;
  readonly sources: readonly { readonly kind: string; readonly id: string; readonly last_seen_at: string | null; readonly confidence: string }[];
  readonly attributes: Readonly<Record<string, Attribute>>;
  readonly disagreements: readonly { readonly attribute: string; readonly values: readonly { readonly source: string; readonly value: unknown; readonly confidence: string }[] }[];
  readonly conflicts: readonly { readonly kind: string }[];
}

interface AssetPage {
  readonly assets: readonly AssetView[];
  readonly next_cursor: string | null;
  readonly total: number;
}

const ASSETS_API = '/api/v1/assets';
const ASSET_PAGE_SIZE = 25;
const STORED_KEY = 'intune-connector.api-key';

function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing`);
  return el as T;
}

function put(el: HTMLElement, value: unknown): void {
  el.textContent = value === null || value === undefined ? '—' : String(value);
}

function td(row: HTMLTableRowElement, value: unknown, cls?: string): HTMLTableCellElement {
  const c = row.insertCell();
  put(c, value);
  if (cls !== undefined) c.className = cls;
  return c;
}

function storedKey(): string {
  try {
    return sessionStorage.getItem(STORED_KEY) ?? '';
  } catch {
    return '';
  }
}

let assetCursors: (string | null)[] = [null];
let assetPage = 0;

function assetQuery(): URLSearchParams {
  const q = new URLSearchParams({ limit: String(ASSET_PAGE_SIZE) });
  for (const [id, name] of [
    ['fa-source', 'source'],
    ['fa-disagreement', 'disagreement'],
    ['fa-os', 'os_family'],
  ] as const) {
    const value = byId<HTMLSelectElement>(id).value;
    if (value) q.set(name, value);
  }
  const cursor = assetCursors[assetPage];
  if (cursor) q.set('cursor', cursor);
  return q;
}

function describeSources(asset: AssetView): string {
  const counts = new Map<string, number>();
  for (const s of asset.sources) counts.set(s.kind, (counts.get(s.kind) ?? 0) + 1);
  return [...counts].map(([kind, n]) => (n > 1 ? `${kind} ×${n}` : kind)).join(' + ');
}

function shown(attribute: Attribute | undefined): string | null {
  return attribute === undefined ? null : `${String(attribute.value)} (${attribute.source}, ${attribute.confidence})`;
}

/** The detail row: each attribute's value, source and confidence; each disagreement's values. */
function provenanceRow(body: HTMLTableSectionElement, after: HTMLTableRowElement, asset: AssetView): HTMLTableRowElement {
  const row = body.insertRow(after.rowIndex);
  row.className = 'provenance';
  row.dataset['testid'] = `provenance-${asset.asset_id}`;
  const cellEl = row.insertCell();
  cellEl.colSpan = 7;
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  for (const h of ['Attribute', 'Value', 'Source', 'Confidence']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.appendChild(th);
  }
  const tbody = table.createTBody();
  for (const [name, a] of Object.entries(asset.attributes)) {
    const r = tbody.insertRow();
    const disagreeing = asset.disagreements.some((d) => d.attribute === name);
    td(r, name, disagreeing ? 'disagree' : undefined);
    td(r, a.value);
    td(r, `${a.source} ${a.source_id}`, 'mono');
    td(r, a.confidence, `confidence ${a.confidence}`);
  }
  cellEl.appendChild(table);
  for (const d of asset.disagreements) {
    const p = document.createElement('p');
    p.className = 'disagree';
    p.textContent = `Sources disagree on ${d.attribute}: ${d.values.map((v) => `${v.source} says ${String(v.value)} (${v.confidence})`).join('; ')}.`;
    cellEl.appendChild(p);
  }
  for (const c of asset.conflicts) {
    const p = document.createElement('p');
    p.className = 'error';
    p.textContent = `Conflict (${c.kind}): nothing was merged on this key.`;
    cellEl.appendChild(p);
  }
  return row;
}

function renderAssets(res: AssetPage): void {
  const body = byId<HTMLTableSectionElement>('assets-body');
  while (body.firstChild) body.removeChild(body.firstChild);
  for (const asset of res.assets) {
    const row = body.insertRow();
    row.dataset['testid'] = `asset-${asset.asset_id}`;
    td(row, asset.asset_id.slice(0, 8), 'mono');
    td(row, asset.os_family);
    td(row, describeSources(asset));
    td(row, shown(asset.attributes['compliance_state']));
    td(row, shown(asset.attributes['encrypted']));
    td(row, asset.disagreements.length === 0 ? 'none' : asset.disagreements.map((d) => d.attribute).join(', '), asset.disagreements.length === 0 ? undefined : 'disagree');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link';
    button.textContent = 'Provenance';
    button.setAttribute('aria-expanded', 'false');
    let detail: HTMLTableRowElement | undefined;
    button.addEventListener('click', () => {
      if (detail !== undefined) {
        detail.remove();
        detail = undefined;
        button.setAttribute('aria-expanded', 'false');
      } else {
        detail = provenanceRow(body, row, asset);
        button.setAttribute('aria-expanded', 'true');
      }
    });
    row.insertCell().appendChild(button);
  }
  put(byId('asset-total'), `(${res.total})`);
  assetCursors[assetPage + 1] = res.next_cursor;
  byId<HTMLButtonElement>('assets-prev').disabled = assetPage === 0;
  byId<HTMLButtonElement>('assets-next').disabled = res.next_cursor === null;
  put(byId('assets-page'), `page ${assetPage + 1}`);
}

async function loadAssets(): Promise<void> {
  put(byId('asset-error'), '');
  const res = await fetch(`${ASSETS_API}?${assetQuery().toString()}`, {
    headers: { authorization: `Bearer ${storedKey()}`, accept: 'application/json' },
    cache: 'no-store',
    credentials: 'omit',
  });
  const body: unknown = await res.json().catch(() => ({}));
  if (!res.ok) {
    byId('asset-error').textContent = (body as { error?: { message?: string } }).error?.message ?? `Could not load the assets (HTTP ${res.status}).`;
    return;
  }
  renderAssets(body as AssetPage);
}

function restartAssets(): void {
  assetCursors = [null];
  assetPage = 0;
  void loadAssets();
}

function startAssets(): void {
  const panel = byId('panel');
  // The posture section shows #panel once it has a key; the assets load then, and again on each new key.
  new MutationObserver(() => {
    if (!panel.hidden) restartAssets();
  }).observe(panel, { attributes: true, attributeFilter: ['hidden'] });
  if (!panel.hidden) restartAssets();
  for (const id of ['fa-source', 'fa-disagreement', 'fa-os']) byId(id).addEventListener('change', restartAssets);
  byId('asset-filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    restartAssets();
  });
  byId('assets-next').addEventListener('click', () => {
    if (assetCursors[assetPage + 1]) {
      assetPage += 1;
      void loadAssets();
    }
  });
  byId('assets-prev').addEventListener('click', () => {
    if (assetPage > 0) {
      assetPage -= 1;
      void loadAssets();
    }
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', startAssets);
else startAssets();

export {};
