/**
 * @module console_css
 * The console's stylesheet, as a string so the bundle and the compiled binary carry it (edge
 * boxes are offline: nothing comes from a CDN). Served at `/console/assets/console.css`.
 */
export const CONSOLE_CSS = `
:root { --bg:#f5f6f8; --fg:#1d2430; --muted:#6b7280; --line:#e2e5ea; --card:#fff; --accent:#0f6bdc;
  --ok:#15803d; --bad:#b91c1c; --warn:#b45309; --chip:#eef2f7; font-family: system-ui, -apple-system,
  "Segoe UI", "Noto Sans TC", "PingFang TC", "Microsoft JhengHei", sans-serif; font-size: 14px; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
header.top { display: flex; align-items: center; gap: 18px; padding: 10px 20px; background: #101826; color: #fff; }
header.top .brand { font-weight: 700; letter-spacing: .02em; }
header.top nav a { color: #cbd5e1; margin-right: 14px; } header.top nav a.on { color: #fff; font-weight: 600; }
header.top .right { margin-left: auto; display: flex; gap: 12px; align-items: center; font-size: 13px; }
header.top .right a { color: #cbd5e1; } header.top form { margin: 0; }
header.top button { background: transparent; color: #cbd5e1; border: 1px solid #475569; border-radius: 4px; padding: 3px 9px; cursor: pointer; }
main { padding: 18px 20px 40px; max-width: 1400px; }
h1 { font-size: 20px; margin: 0 0 14px; } h2 { font-size: 15px; margin: 0 0 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; margin-bottom: 16px; overflow-x: auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 16px; align-items: start; }
.grid .card { margin-bottom: 0; } .grid .wide { grid-column: 1 / -1; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; white-space: nowrap; }
th a { color: var(--muted); } th a.on { color: var(--fg); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.flash td { animation: flash 1.2s ease-out; }
@keyframes flash { from { background: #fff6c2; } to { background: transparent; } }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; background: #9ca3af; margin-right: 6px; }
.dot.on { background: #22c55e; box-shadow: 0 0 0 3px #22c55e33; }
.badge { display: inline-block; padding: 1px 7px; border-radius: 10px; font-size: 12px; background: var(--chip); }
.badge.queued { background: #e0e7ff; } .badge.sent { background: #dbeafe; } .badge.delivered { background: #cffafe; }
.badge.succeeded { background: #dcfce7; color: var(--ok); } .badge.failed { background: #fee2e2; color: var(--bad); }
.badge.expired { background: #f3f4f6; color: var(--muted); } .badge.error { background: #fee2e2; color: var(--bad); }
.badge.warning { background: #fef3c7; color: var(--warn); } .badge.low { background: #fef3c7; color: var(--warn); }
.muted { color: var(--muted); } .bad { color: var(--bad); } .ok { color: var(--ok); }
.toolbar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 12px; }
input, select, textarea, button { font: inherit; }
input[type=text], input[type=search], input[type=password], input[type=number], select, textarea {
  border: 1px solid #cbd2dc; border-radius: 6px; padding: 6px 9px; background: #fff; }
textarea { width: 100%; min-height: 70px; font-family: ui-monospace, monospace; font-size: 13px; }
button, .button { background: var(--accent); color: #fff; border: 0; border-radius: 6px; padding: 7px 13px; cursor: pointer; }
button.secondary { background: #e5e7eb; color: var(--fg); } button.danger { background: var(--bad); }
button:disabled { opacity: .45; cursor: not-allowed; }
.chips a { display: inline-block; padding: 4px 10px; border-radius: 14px; background: var(--chip); color: var(--fg); margin-right: 4px; }
.chips a.on { background: var(--fg); color: #fff; }
.pager { display: flex; gap: 10px; align-items: center; margin-top: 10px; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; }
.kv dt { color: var(--muted); } .kv dd { margin: 0; }
.stats { display: flex; gap: 14px; flex-wrap: wrap; margin-bottom: 16px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; min-width: 140px; }
.stat b { display: block; font-size: 20px; }
.note { background: #fff7ed; border: 1px solid #fed7aa; padding: 8px 12px; border-radius: 6px; margin-bottom: 12px; }
.secret { font-family: ui-monospace, monospace; font-size: 15px; background: #111827; color: #a7f3d0; padding: 10px 12px; border-radius: 6px; word-break: break-all; }
.signin { max-width: 380px; margin: 80px auto; }
.signin input { width: 100%; margin: 8px 0 12px; }
.live { font-size: 12px; } .live .dot { margin-right: 4px; }
form.inline { display: inline; }
pre.job { margin: 0; max-width: 520px; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
svg.chart { width: 100%; height: auto; display: block; } svg.chart text { font-size: 10px; fill: var(--muted); }
.result { margin-left: 8px; font-size: 13px; }
`;
