// Owns the status page served at the admin listener's `/`: one self-contained HTML document
// (inline CSS, inline script, inline SVG charts; nothing fetched but /status.json) that polls
// /status.json and draws connections and message rates over the last minutes.

/** How often the page polls /status.json. */
export const POLL_INTERVAL_MS = 2000;

/**
 * Only this document's own inline code runs and only its own origin is reached: the page
 * works on a machine with no outside network and can load nothing from elsewhere.
 */
export const STATUS_PAGE_CSP =
  "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:";

/** The page's HTML. `title` names the instance (e.g. its public address). */
export function statusPageHtml({ title }: { title: string }): string {
  return PAGE.replaceAll("%TITLE%", escapeHtml(title)).replace(
    "%POLL%",
    String(POLL_INTERVAL_MS),
  );
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>push-server status: %TITLE%</title>
<style>
  :root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f7f8fa; --a: #2563eb; --b: #ea580c; --c: #16a34a; --bad: #dc2626; }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 20px 24px; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 14px; margin: 0 0 8px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
  .sub { color: var(--muted); margin-bottom: 16px; }
  .state { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; color: #fff; background: var(--c); }
  .state.bad { background: var(--bad); }
  .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); gap: 10px; margin-bottom: 16px; }
  .card, .panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
  .card .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
  .card .k { color: var(--muted); font-size: 12px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; margin-bottom: 12px; }
  svg { width: 100%; height: 160px; display: block; }
  .legend span { margin-right: 12px; font-size: 12px; }
  .legend i { display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
  table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); }
  th { color: var(--muted); font-weight: 500; font-size: 12px; }
  td.n, th.n { text-align: right; }
  .empty { color: var(--muted); }
  ul.problems { margin: 4px 0 0; color: var(--bad); }
  ul.warnings { margin: 4px 0 0; color: var(--b); }
</style>
</head>
<body>
<h1>push-server <span class="state" id="state">…</span></h1>
<div class="sub"><span>%TITLE%</span> · up <span id="uptime">–</span> · updated <span id="updated">–</span></div>
<ul class="problems" id="problems"></ul>
<ul class="warnings" id="warnings"></ul>
<div class="cards">
  <div class="card"><div class="v" id="open" data-metric="push_connections_open">–</div><div class="k">connections open</div></div>
  <div class="card"><div class="v" id="accepted" data-metric="push_connections_accepted_total">–</div><div class="k">connections accepted</div></div>
  <div class="card"><div class="v" id="rate-in">–</div><div class="k">messages in / s</div></div>
  <div class="card"><div class="v" id="rate-out">–</div><div class="k">messages out / s</div></div>
  <div class="card"><div class="v" data-metric="push_messages_received_total">–</div><div class="k">messages received</div></div>
  <div class="card"><div class="v" data-metric="push_messages_sent_total">–</div><div class="k">messages sent</div></div>
  <div class="card"><div class="v" data-metric="push_queued_bytes" data-unit="bytes">–</div><div class="k">bytes queued</div></div>
  <div class="card"><div class="v" data-metric="push_slow_consumer_closes_total">–</div><div class="k">slow-consumer closes</div></div>
</div>
<div class="grid">
  <div class="panel"><h2>Connections</h2>
    <div class="legend"><span><i style="background:var(--a)"></i>open</span><span id="conn-max"></span></div>
    <svg id="chart-conn" viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="connections open over time"></svg>
  </div>
  <div class="panel"><h2>Messages per second</h2>
    <div class="legend"><span><i style="background:var(--b)"></i>out</span><span><i style="background:var(--c)"></i>in</span><span id="rate-max"></span></div>
    <svg id="chart-rate" viewBox="0 0 600 160" preserveAspectRatio="none" role="img" aria-label="messages per second over time"></svg>
  </div>
</div>
<div class="grid">
  <div class="panel"><h2>Slow consumers (most bytes queued)</h2>
    <table><thead><tr><th>connection</th><th>from</th><th class="n">bytes queued</th></tr></thead><tbody id="slow"></tbody></table>
  </div>
  <div class="panel"><h2>Busiest channels</h2>
    <table><thead><tr><th>channel</th><th class="n">subscribers</th><th class="n">publications</th></tr></thead><tbody id="channels"></tbody></table>
  </div>
  <div class="panel"><h2>FIFO</h2>
    <table><tbody>
      <tr><th>path</th><td id="fifo-path">–</td></tr>
      <tr><th>state</th><td id="fifo-state">–</td></tr>
      <tr><th>lines read</th><td data-metric="push_fifo_lines_read_total">–</td></tr>
      <tr><th>batches</th><td data-metric="push_fifo_batches_total">–</td></tr>
      <tr><th>lines dropped</th><td id="fifo-dropped">–</td></tr>
    </tbody></table>
  </div>
</div>
<script>
"use strict";
const POLL_MS = %POLL%;
const SVG_NS = "http://www.w3.org/2000/svg";
const W = 600, H = 160, PAD = 6;
const fmt = new Intl.NumberFormat("en-US");
const $ = (id) => document.getElementById(id);

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function duration(s) {
  if (s < 120) return Math.round(s) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function rates(history, key) {
  const out = [];
  for (let i = 1; i < history.length; i++) {
    const dt = (history[i].t - history[i - 1].t) / 1000;
    out.push({ t: history[i].t, v: dt > 0 ? Math.max(0, history[i][key] - history[i - 1][key]) / dt : 0 });
  }
  return out;
}

function draw(svg, series, t0, t1) {
  svg.replaceChildren();
  let max = 1;
  for (const s of series) for (const p of s.points) max = Math.max(max, p.v);
  for (const frac of [0.25, 0.5, 0.75]) {
    const grid = document.createElementNS(SVG_NS, "line");
    const y = PAD + (H - 2 * PAD) * frac;
    grid.setAttribute("x1", "0"); grid.setAttribute("x2", String(W));
    grid.setAttribute("y1", String(y)); grid.setAttribute("y2", String(y));
    grid.setAttribute("stroke", "#e4e7ec");
    svg.appendChild(grid);
  }
  const span = Math.max(1, t1 - t0);
  for (const s of series) {
    const line = document.createElementNS(SVG_NS, "polyline");
    const pts = s.points.map((p) => {
      const x = ((p.t - t0) / span) * W;
      const y = H - PAD - (p.v / max) * (H - 2 * PAD);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    if (pts.length === 1) pts.unshift("0," + pts[0].split(",")[1]);
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", s.color);
    line.setAttribute("stroke-width", "2");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    line.dataset.series = s.name;
    svg.appendChild(line);
  }
  return max;
}

function rows(tbody, items, cells, empty) {
  tbody.replaceChildren();
  if (items.length === 0) {
    const tr = tbody.insertRow();
    const td = tr.insertCell();
    td.colSpan = 3; td.className = "empty"; td.textContent = empty;
    return;
  }
  for (const item of items) {
    const tr = tbody.insertRow();
    for (const [text, numeric] of cells(item)) {
      const td = tr.insertCell();
      td.textContent = text;
      if (numeric) td.className = "n";
    }
  }
}

function render(s) {
  for (const el of document.querySelectorAll("[data-metric]")) {
    const v = s.metrics[el.dataset.metric];
    if (v === undefined) continue;
    el.dataset.value = String(v);
    el.textContent = el.dataset.unit === "bytes" ? bytes(v) : fmt.format(v);
  }
  const ok = s.problems.length === 0;
  $("state").textContent = ok ? "ready" : "not ready";
  $("state").className = ok ? "state" : "state bad";
  const items = (lines) => lines.map((p) => { const li = document.createElement("li"); li.textContent = p; return li; });
  $("problems").replaceChildren(...items(s.problems));
  $("warnings").replaceChildren(...items(s.warnings ?? []));
  $("uptime").textContent = duration((s.now - s.startedAt) / 1000);
  $("updated").textContent = new Date(s.now).toLocaleTimeString();

  const h = s.history;
  const inRate = rates(h, "messagesIn"), outRate = rates(h, "messagesOut");
  const last = (a) => a.length ? a[a.length - 1].v : 0;
  $("rate-in").textContent = fmt.format(Math.round(last(inRate)));
  $("rate-out").textContent = fmt.format(Math.round(last(outRate)));
  const t0 = h.length ? h[0].t : s.now, t1 = s.now;
  const connMax = draw($("chart-conn"), [{ name: "open", color: "#2563eb", points: h.map((p) => ({ t: p.t, v: p.connectionsOpen })) }], t0, t1);
  $("conn-max").textContent = "max " + fmt.format(connMax);
  const rateMax = draw($("chart-rate"), [
    { name: "out", color: "#ea580c", points: outRate },
    { name: "in", color: "#16a34a", points: inRate },
  ], t0, t1);
  $("rate-max").textContent = "max " + fmt.format(Math.round(rateMax)) + " / s";

  rows($("slow"), s.slowConsumers, (c) => [[String(c.id)], [c.remote], [bytes(c.queuedBytes), true]], "no client has bytes queued");
  rows($("channels"), s.busiestChannels, (c) => [[c.name], [fmt.format(c.subscribers), true], [fmt.format(c.publications), true]], "no channels");
  $("fifo-path").textContent = s.fifo.path ?? "–";
  $("fifo-state").textContent = s.fifo.open ? "open, reading" : "waiting for a writer";
  const dropped = Object.entries(s.fifo.dropped);
  $("fifo-dropped").textContent = dropped.length ? dropped.map(([r, n]) => r + ": " + fmt.format(n)).join(", ") : "none";
}

async function poll() {
  try {
    const res = await fetch("status.json", { cache: "no-store" });
    if (!res.ok) throw new Error("status.json: HTTP " + res.status);
    render(await res.json());
    document.body.dataset.loaded = "true";
    document.body.dataset.polls = String(Number(document.body.dataset.polls ?? 0) + 1);
  } catch (e) {
    $("state").textContent = "unreachable";
    $("state").className = "state bad";
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body>
</html>
`;
