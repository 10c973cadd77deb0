/**
 * The panel's script and style, served from this origin (the CSP allows nothing else). Plain
 * browser JavaScript, no framework and no build step; kept here as text so `tsc` ships it in dist/.
 */

export const PANEL_SCRIPT = String.raw`'use strict';
(function () {
  var KEY_SLOT = 'intune-connector.api-key';
  var API = '/api/v1/integrations/intune';
  var PAGE_SIZE = 50;
  var cursors = [null];
  var page = 0;

  function $(id) { return document.getElementById(id); }
  function text(el, value) { el.textContent = value === null || value === undefined ? '—' : String(value); return el; }
  function cell(row, value, cls) { var td = document.createElement('td'); text(td, value); if (cls) td.className = cls; row.appendChild(td); return td; }
  function when(iso) { if (!iso) return null; var d = new Date(iso); return isNaN(d.getTime()) ? iso : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'); }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

  function getKey() { try { return sessionStorage.getItem(KEY_SLOT); } catch (e) { return null; } }
  function setKey(k) { try { if (k) sessionStorage.setItem(KEY_SLOT, k); else sessionStorage.removeItem(KEY_SLOT); } catch (e) { /* storage disabled */ } }

  function ApiFailure(status, code, message) { this.status = status; this.code = code; this.message = message; }

  function api(path) {
    return fetch(path, { headers: { authorization: 'Bearer ' + getKey(), accept: 'application/json' }, cache: 'no-store', credentials: 'omit' })
      .then(function (res) {
        return res.json().catch(function () { return {}; }).then(function (body) {
          if (!res.ok) {
            var err = (body && body.error) || {};
            throw new ApiFailure(res.status, err.code || 'error', err.message || ('HTTP ' + res.status));
          }
          return body;
        });
      });
  }

  function showForm(message) {
    $('panel').hidden = true;
    $('key-form').hidden = false;
    text($('key-error'), message || '');
    $('api-key').focus();
  }

  function fail(err) {
    if (err instanceof ApiFailure && err.status === 401) { setKey(null); showForm('That key was not accepted: ' + err.message); return; }
    if (err instanceof ApiFailure && err.status === 403) { setKey(null); showForm('That key cannot read device posture: use a reader or admin key.'); return; }
    text($('panel-error'), err && err.message ? err.message : 'Could not load the posture.');
  }

  function renderCounts(tbodyId, counts, testPrefix) {
    var body = $(tbodyId); clear(body);
    Object.keys(counts || {}).sort().forEach(function (k) {
      var tr = document.createElement('tr');
      cell(tr, k);
      var n = cell(tr, counts[k], 'num');
      n.setAttribute('data-testid', testPrefix + k);
      body.appendChild(tr);
    });
  }

  function renderSummary(s) {
    var body = $('connections-body'); clear(body);
    (s.connections || []).forEach(function (c) {
      var tr = document.createElement('tr');
      var name = cell(tr, c.display_name);
      if (c.demo) { var b = document.createElement('span'); b.className = 'badge demo'; b.textContent = 'DEMO: simulated tenant'; name.appendChild(document.createTextNode(' ')); name.appendChild(b); }
      var st = cell(tr, c.status); st.className = 'status ' + c.status;
      cell(tr, c.cloud);
      var run = c.last_sync;
      cell(tr, run ? when(run.finished_at || run.started_at) : 'never');
      cell(tr, run ? run.status + (run.error_code ? ' (' + run.error_code + ')' : '') : null);
      cell(tr, run ? run.devices : null, 'num');
      body.appendChild(tr);
    });
    if (!s.connections || s.connections.length === 0) {
      var tr = document.createElement('tr'); var td = cell(tr, 'No Intune connection in this tenant yet.'); td.colSpan = 6; body.appendChild(tr);
    }
    renderCounts('counts-compliance', s.counts_by_compliance_state, 'count-compliance-');
    renderCounts('counts-os', s.counts_by_os_family, 'count-os-');
  }

  function filterQuery() {
    var q = new URLSearchParams();
    q.set('limit', String(PAGE_SIZE));
    [['f-compliance', 'compliance_state'], ['f-os', 'os_family'], ['f-ownership', 'ownership'], ['f-q', 'q']].forEach(function (p) {
      var v = $(p[0]).value.trim(); if (v) q.set(p[1], v);
    });
    if (cursors[page]) q.set('cursor', cursors[page]);
    return q;
  }

  function renderDevices(res) {
    var body = $('devices-body'); clear(body);
    res.devices.forEach(function (d) {
      var tr = document.createElement('tr');
      tr.setAttribute('data-compliance-state', d.compliance_state);
      cell(tr, d.device_id, 'mono');
      cell(tr, d.os_family);
      cell(tr, d.os_version);
      var cs = cell(tr, d.compliance_state); cs.className = 'state ' + d.compliance_state;
      cell(tr, when(d.grace_period_expires_at));
      cell(tr, d.is_encrypted ? 'yes' : 'no');
      cell(tr, d.jailbroken);
      cell(tr, d.ownership);
      cell(tr, when(d.last_sync_at));
      cell(tr, [d.manufacturer, d.model].filter(Boolean).join(' ') || null);
      cell(tr, d.serial_fingerprint ? d.serial_fingerprint.replace(/^hmac-sha256:/, '').slice(0, 12) + '…' : null, 'mono');
      body.appendChild(tr);
    });
    if (res.devices.length === 0) { var tr = document.createElement('tr'); var td = cell(tr, 'No devices match.'); td.colSpan = 11; body.appendChild(tr); }
    text($('device-total'), '(' + res.total + ' matching)');
    cursors[page + 1] = res.next_cursor;
    $('next-page').disabled = !res.next_cursor;
    $('prev-page').disabled = page === 0;
    text($('page-info'), 'page ' + (page + 1));
    document.body.setAttribute('data-devices-loaded', String(Date.now()));
  }

  function loadDevices() {
    text($('panel-error'), '');
    return api(API + '/devices?' + filterQuery().toString()).then(renderDevices).catch(fail);
  }

  function load() {
    $('key-form').hidden = true;
    $('panel').hidden = false;
    var key = getKey() || '';
    text($('whoami'), 'Using key ' + key.slice(0, 20) + '…');
    return api(API + '/summary').then(function (s) { renderSummary(s); return loadDevices(); }).catch(fail);
  }

  function restart() { cursors = [null]; page = 0; loadDevices(); }

  document.addEventListener('DOMContentLoaded', function () {
    $('key-form').addEventListener('submit', function (ev) {
      ev.preventDefault();
      var k = $('api-key').value.trim();
      $('api-key').value = '';
      if (!k) return;
      setKey(k); load();
    });
    $('sign-out').addEventListener('click', function () { setKey(null); showForm(''); });
    ['f-compliance', 'f-os', 'f-ownership'].forEach(function (id) { $(id).addEventListener('change', restart); });
    var timer = null;
    $('f-q').addEventListener('input', function () { clearTimeout(timer); timer = setTimeout(restart, 250); });
    $('filters').addEventListener('submit', function (ev) { ev.preventDefault(); restart(); });
    $('next-page').addEventListener('click', function () { if (cursors[page + 1]) { page += 1; loadDevices(); } });
    $('prev-page').addEventListener('click', function () { if (page > 0) { page -= 1; loadDevices(); } });
    if (getKey()) load(); else showForm('');
  });
})();
`;

export const PANEL_STYLE = `
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #f6f7f9; --card: #fff; --accent: #2452c9; --ok: #18794e; --bad: #b42318; --warn: #b54708; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
.top { display: flex; gap: 12px; align-items: baseline; padding: 12px 24px; background: #111827; color: #fff; }
.brand { font-weight: 600; } .crumb { color: #cbd5e1; }
.layout { display: flex; gap: 24px; padding: 24px; }
.tabs { min-width: 200px; display: flex; flex-direction: column; gap: 4px; }
.tabs a { padding: 8px 12px; border-radius: 6px; color: var(--fg); text-decoration: none; }
.tabs a[aria-current="page"] { background: #e6ecfb; color: var(--accent); font-weight: 600; }
main { flex: 1; min-width: 0; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 0 0 12px; }
.lede, .muted, .hint { color: var(--muted); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px; margin: 16px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 16px; }
.grid .card { margin: 0; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.filters { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 12px; }
.filters label { display: flex; flex-direction: column; gap: 4px; font-size: 12px; color: var(--muted); }
select, input { font: inherit; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; background: #fff; }
#key-form { max-width: 480px; display: flex; flex-direction: column; gap: 8px; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
button.link { background: none; border: none; color: var(--accent); padding: 0; }
.bar { display: flex; justify-content: space-between; align-items: center; }
.pager { display: flex; gap: 12px; align-items: center; margin-top: 12px; }
.error { color: var(--bad); min-height: 1em; margin: 0; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11px; font-weight: 600; }
.badge.demo { background: #fef0c7; color: var(--warn); }
.status.active, .state.compliant { color: var(--ok); font-weight: 600; }
.status.error, .state.noncompliant, .state.error, .state.conflict { color: var(--bad); font-weight: 600; }
.state.inGracePeriod { color: var(--warn); font-weight: 600; }
.table-wrap { overflow-x: auto; }
`;

/** A shield, so the browser asks for this instead of /favicon.ico. */
export const PANEL_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path d="M16 2 4 7v8c0 7.2 5.1 13.3 12 15 6.9-1.7 12-7.8 12-15V7z" fill="#2452c9"/><path d="m10.5 16.5 4 4 7-8" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>
`;
