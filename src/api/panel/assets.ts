/**
 * The panel's style and icon, served from this origin (the CSP allows nothing else). The script is
 * a TypeScript file of its own: client/panel.ts, loaded by script.ts.
 */

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
.state.graceEnded { color: var(--bad); font-weight: 600; }
.table-wrap { overflow-x: auto; }
table.devices td { white-space: normal; }
table.devices td.mono { white-space: nowrap; }
tr.detail td { background: var(--bg); }
tr.detail dl { display: flex; flex-wrap: wrap; gap: 8px 24px; margin: 0; }
tr.detail dt { font-size: 12px; color: var(--muted); }
tr.detail dd { margin: 0; }
.first-run pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; overflow-x: auto; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
/* Below wide screens the section list moves above the content, so the table keeps the width. */
@media (max-width: 1440px) {
  .layout { flex-direction: column; gap: 8px; }
  .tabs { flex-direction: row; min-width: 0; }
}
`;

/** A shield, so the browser asks for this instead of /favicon.ico. */
export const PANEL_ICON = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><path d="M16 2 4 7v8c0 7.2 5.1 13.3 12 15 6.9-1.7 12-7.8 12-15V7z" fill="#2452c9"/><path d="m10.5 16.5 4 4 7-8" fill="none" stroke="#fff" stroke-width="2.6" stroke-linecap="round" stroke-linejoin="round"/></svg>
`;
