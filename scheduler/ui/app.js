// Stockyard's web UI: one script, no framework, no network beyond this
// scheduler. Every page is a URL; each page mounts once and then refreshes
// its data from the REST API every 2 seconds, so forms keep their input.
"use strict";

const POLL_MS = 2000;

// Builds an element; strings become text nodes, so nothing is parsed as HTML.
// "leader: H:P (this scheduler)", or where the leader is from a standby.
// fields of Leader as l
function leaderText(l) {
  if (!l.address) return "no leader elected (is etcd reachable?)";
  if (l.this_scheduler) return `leader: ${l.address} (this scheduler${l.elected ? ", elected" : ""})`;
  return `standby · leader: ${l.address}`;
}
// end of fields

function h(tag, attrs, ...children) {
  const el = document.createElementNS(tag === "svg" || attrs?.svg ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "svg" || v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const s = (tag, attrs, ...children) => h(tag, { ...attrs, svg: true }, ...children);

async function api(path, options) {
  const res = await fetch(path, options);
  let body;
  try { body = await res.json(); } catch { body = null; }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}
const post = (path, body) => api(path, { method: "POST", headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });

// ---- formatting ----
const fmtTime = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "");
function fmtAgo(ms) {
  if (!ms) return "";
  const d = (Date.now() - ms) / 1000;
  if (d < 0) return `in ${fmtSpan(-d)}`;
  return `${fmtSpan(d)} ago`;
}
function fmtSpan(secs) {
  if (secs < 60) return `${secs.toFixed(secs < 10 ? 1 : 0)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min ${Math.round(secs % 60)} s`;
  return `${Math.floor(secs / 3600)} h ${Math.round((secs % 3600) / 60)} min`;
}
const fmtMs = (ms) => (ms === null || ms === undefined ? "" : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`);
function fmtBytes(n) {
  if (!n) return "0 B";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
function fmtNum(v, digits = 2) {
  if (typeof v !== "number") return v === null || v === undefined ? "" : String(v);
  return Number.isInteger(v) ? v.toLocaleString("en-US") : v.toLocaleString("en-US", { maximumFractionDigits: digits });
}
const clip = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);
const status = (st) => h("span", { class: `status ${st}` }, st);
const runLink = (id) => h("a", { href: `/runs/${encodeURIComponent(id)}`, "data-link": true }, id);
const problem = (text) => h("div", { class: "problem", role: "alert" }, text);

function table(columns, rows, attrs) {
  return h("table", attrs || {},
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.length
      ? rows.map((r) => h("tr", r.attrs || {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r.value)))))
      : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "none"))));
}
const rowsOf = (list, attrs) => list.map((value) => ({ value, attrs: attrs ? attrs(value) : {} }));

function bar(value, max, hot) {
  const pct = max > 0 ? Math.max(0, Math.min(100, (100 * value) / max)) : 0;
  return h("div", { class: hot ? "bar hot" : "bar", title: fmtNum(value) }, h("span", { style: `width:${pct}%` }));
}

// Replaces the children of `el` with `nodes`.
function fill(el, ...nodes) {
  el.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false));
}

// ---- runs ----
// Between `// fields of S as v[, T as w]` and `// end of fields`, every
// `v.name` is a field of schema S in /api/openapi.json (the scheduler's
// openapi test).
// fields of Run as r
function runsTable(runs, onCancel) {
  return table([
    { label: "run", cell: (r) => runLink(r.run_id) },
    { label: "job", cell: (r) => r.job },
    { label: "status", cell: (r) => status(r.status) },
    { label: "trigger", cell: (r) => r.trigger },
    { label: "started", cell: (r) => h("span", { title: fmtTime(r.started_at_ms) }, fmtAgo(r.started_at_ms)) },
    { label: "duration", num: true, cell: (r) => fmtMs(r.duration_ms ?? Date.now() - r.started_at_ms) },
    { label: "outcome", cell: (r) => (r.error ? h("span", { class: "status failed" }, r.error) : outcome(r)) },
    { label: "", cell: (r) => (r.status === "running" && onCancel ? h("button", { class: "danger", "data-action": "cancel", onclick: () => onCancel(r.run_id) }, "Cancel") : "") },
  ], rowsOf(runs, (r) => ({ "data-run": r.run_id })), { class: "runs" });
}
function outcome(r) {
  const sm = r.summary || {};
  if (r.job === "kpi" && sm.status === "superseded") return `not written: Redis holds a newer window (to ${sm.newer_window_end})`;
  if (r.job === "kpi" && sm.rows) return `${Object.values(sm.rows).reduce((a, b) => a + b, 0)} KPI rows from ${fmtNum(sm.documents_read)} documents`;
  if (r.job === "archive" && sm.status === "skipped") return `skipped: ${fmtBytes(sm.data_size_bytes)} below ${fmtBytes(sm.threshold_bytes)}`;
  if (r.job === "archive" && sm.abandoned) return `abandoned archive run ${sm.abandoned} (${sm.reason})`;
  if (r.job === "archive" && sm.total_records !== undefined) {
    const stuck = (sm.unfinished_runs || []).length, given_up = (sm.abandoned_runs || []).length;
    return `${fmtNum(sm.total_records)} documents archived` + (stuck ? ` · ${stuck} interrupted run(s) could not finish yet` : "") + (given_up ? ` · ${given_up} abandoned` : "");
  }
  if (r.job === "sql" && sm.rows !== undefined) return `${fmtNum(sm.rows)} rows`;
  return "";
}
// end of fields
async function cancelRun(id) {
  try { await post(`/api/runs/${encodeURIComponent(id)}/cancel`); } catch (e) { alert(`Cannot cancel ${id}: ${e.message}`); }
  refreshNow();
}

// ---- pages ----
// Each page has `mount(root, arg)` or, for a heading over one data section,
// `heading(arg)`; then `refresh()`, called every POLL_MS.
const pages = {};

function mountHeading(root, arg) {
  this.id = arg;
  this.el = h("div");
  root.append(h("h1", {}, this.heading(arg)), this.el);
}

pages.overview = {
  title: "Overview",
  heading: () => "Overview",
  async refresh() {
    // fields of Overview as o, KpiFreshness as kpi, Run as arch
    const o = await api("/api/overview");
    const kpi = o.kpi || {};
    const arch = o.last_archive_run;
    fill(this.el,
      o.problems.map(problem),
      h("div", { class: "cards" },
        h("div", { class: "card", id: "health" }, h("div", { class: "muted" }, "Cluster"),
          h("div", { class: "big " + (o.healthy ? "ok" : "status failed") }, o.healthy ? "healthy" : `${o.problems.length} problem(s)`),
          h("div", { class: "muted", id: "leader" }, leaderText(o.leader))),
        h("div", { class: "card" }, h("div", { class: "muted" }, "Executors"),
          h("div", { class: "big" }, `${o.executors.filter((e) => e.state === "active").length} active`),
          h("div", { class: "muted" }, `${o.executors.reduce((a, e) => a + e.task_slots, 0)} task slots, ${o.executors.reduce((a, e) => a + e.running_tasks, 0)} tasks running`)),
        h("div", { class: "card", id: "kpi-freshness" }, h("div", { class: "muted" }, "KPI freshness"),
          kpi.error ? h("div", { class: "status failed" }, "Redis unavailable")
            : kpi.last_update ? [h("div", { class: "big" }, `${fmtSpan(kpi.age_s)} old`), h("div", { class: "muted" }, `written ${kpi.last_update}, expires in ${kpi.expires_in_s} s`)]
            : h("div", { class: "big muted" }, "no KPIs cached")),
        h("div", { class: "card", id: "archive-status" }, h("div", { class: "muted" }, "Archive"),
          arch ? [h("div", { class: "big" }, status(arch.status)), h("div", { class: "muted", title: arch.error }, outcome(arch) || clip(arch.error, 140), " · ", runLink(arch.run_id), " ", fmtAgo(arch.started_at_ms))]
            : h("div", { class: "big muted" }, "no archive run yet"))),
      // end of fields
      h("h2", {}, "Executors"),
      // fields of Executor as e
      table([
        { label: "host", cell: (e) => `${e.host}:${e.flight_port}` },
        { label: "id", cell: (e) => h("span", { class: "muted" }, e.id) },
        { label: "slots", num: true, cell: (e) => e.task_slots },
        { label: "running tasks", num: true, cell: (e) => e.running_tasks },
        { label: "last heartbeat", cell: (e) => (e.last_heartbeat ? fmtAgo(e.last_heartbeat * 1000) : "") },
        { label: "state", cell: (e) => status(e.state) },
      ], rowsOf(o.executors, (e) => ({ "data-executor": e.id })), { id: "executors" }),
      // end of fields
      h("h2", {}, "Running"),
      runsTable(o.running_runs, cancelRun),
      h("h2", {}, "Recent runs"),
      runsTable(o.recent_runs));
  },
};

pages.runs = {
  title: "Job runs",
  mount(root) {
    const q = new URLSearchParams(location.search);
    const select = (name, options) => h("select", { name }, options.map((o) => h("option", { value: o, selected: q.get(name) === o }, o || "any")));
    this.form = h("form", { class: "filters", onsubmit: (ev) => { ev.preventDefault(); this.apply(); } },
      h("label", {}, "job", select("job", ["", "kpi", "archive", "compact", "sql"])),
      h("label", {}, "status", select("status", ["", "running", "succeeded", "failed", "skipped", "cancelled", "interrupted", "superseded"])),
      h("label", {}, "trigger starts with", h("input", { name: "trigger", value: q.get("trigger") || "", placeholder: "schedule:kpi" })),
      h("button", { type: "submit" }, "Filter"));
    this.form.addEventListener("change", () => this.apply());
    this.el = h("div");
    root.append(h("h1", {}, "Job runs"), this.form, this.el);
  },
  apply() {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(this.form)) if (v) q.set(k, v);
    history.replaceState(null, "", `/runs${q.toString() ? "?" + q : ""}`);
    refreshNow();
  },
  async refresh() {
    const runs = await api(`/api/runs${location.search}`);
    fill(this.el, runsTable(runs, cancelRun));
  },
};

pages.run = {
  title: "Run",
  heading: (id) => ["Run ", h("span", { id: "run-id" }, id)],
  // fields of RunDetail as r
  async refresh() {
    const r = await api(`/api/runs/${encodeURIComponent(this.id)}`);
    fill(this.el,
      h("div", { class: "row" }, h("span", { id: "run-status" }, status(r.status)),
        r.status === "running" ? h("button", { id: "cancel", class: "danger", onclick: () => cancelRun(r.run_id) }, "Cancel run") : null),
      r.error ? problem(r.error) : null,
      table([{ label: "field", cell: (x) => x[0] }, { label: "value", cell: (x) => x[1] }], rowsOf([
        ["job", r.job], ["trigger", r.trigger], ["parameters", Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join("  ") || "none"],
        ["started", fmtTime(r.started_at_ms)], ["ended", fmtTime(r.ended_at_ms)], ["duration", fmtMs(r.duration_ms ?? Date.now() - r.started_at_ms)],
        ["outcome", outcome(r)],
      ])),
      r.result ? [h("h2", {}, "Result"), resultTable(r.result)] : null,
      r.summary ? h("details", { "data-key": "summary" }, h("summary", {}, "Summary (JSON)"), h("pre", {}, JSON.stringify(r.summary, null, 2))) : null,
      h("h2", {}, `Ballista jobs (${r.jobs.length})`),
      r.jobs.map(jobView));
  },
  // end of fields
};

pages.job = {
  title: "Ballista job",
  heading: (id) => ["Ballista job ", id],
  async refresh() {
    fill(this.el, jobView(await api(`/api/jobs/${encodeURIComponent(this.id)}`)));
  },
};

// fields of JobDetail as j, StageDetail as st, TaskDetail as t
function jobView(j) {
  if (!j.stages) return h("div", { class: "card" }, h("b", {}, j.id), ": ", j.error);
  const stages = j.stages;
  return h("div", { class: "card job", "data-job": j.id },
    h("div", { class: "row" }, h("b", {}, h("a", { href: `/jobs/${j.id}`, "data-link": true }, j.id)), status(j.status),
      h("span", { class: "muted" }, `${j.completed_stages}/${j.stage_count} stages · ${fmtMs(j.duration_ms)} · ${j.name}`)),
    j.error ? problem(j.error) : null,
    h("h3", {}, "Stages"),
    stageGraph(stages),
    table([
      { label: "stage", cell: (st) => st.id },
      { label: "status", cell: (st) => status(st.status) },
      { label: "tasks", cell: (st) => h("div", { class: "row" }, h("div", { class: "progress" }, bar(st.tasks_succeeded, st.partitions)), `${st.tasks_succeeded}/${st.partitions}` + (st.tasks_running ? ` (${st.tasks_running} running)` : "") + (st.tasks_failed ? ` (${st.tasks_failed} failed)` : "")) },
      { label: "rows out", num: true, cell: (st) => fmtNum(st.output_rows) },
      { label: "bytes out", num: true, cell: (st) => fmtBytes(st.output_bytes) },
      { label: "duration", num: true, cell: (st) => fmtMs(st.duration_ms) },
      { label: "inputs", cell: (st) => st.inputs.join(", ") },
      { label: "error", cell: (st) => st.error },
    ], rowsOf(stages, (st) => ({ "data-stage": st.id }))),
    stages.map((st) => {
      const key = `${j.id}/${st.id}`;
      return h("details", { "data-key": key }, h("summary", {}, `Stage ${st.id}: plan and ${st.tasks.length} tasks`),
        h("ul", { class: "tree root" }, operatorTree(st.plan)),
        table([
          { label: "partition", num: true, cell: (t) => t.partition },
          { label: "status", cell: (t) => status(t.status) },
          { label: "executor", cell: (t) => t.executor || "" },
          { label: "duration", num: true, cell: (t) => (t.duration_ms !== undefined ? fmtMs(t.duration_ms) : "") },
          { label: "rows", num: true, cell: (t) => fmtNum(t.rows) },
          { label: "bytes", num: true, cell: (t) => (t.bytes !== undefined ? fmtBytes(t.bytes) : "") },
          { label: "error", cell: (t) => t.error || "" },
        ], rowsOf(st.tasks)));
    }));
}
// end of fields

// fields of Operator as op
function operatorTree(op) {
  return h("li", {}, h("span", { class: "op", title: op.detail }, h("b", {}, op.name), op.detail.startsWith(op.name) ? op.detail.slice(op.name.length) : ` ${op.detail}`),
    op.children.length ? h("ul", { class: "tree" }, op.children.map(operatorTree)) : null);
}
// end of fields

// The stages as a graph, each stage just left of the stage reading it.
// fields of StageDetail as st
function stageGraph(stages) {
  const byId = new Map(stages.map((st) => [st.id, st]));
  // Levels counted back from the final stage, so edges stay short.
  const level = new Map();
  const levelOf = (id) => {
    if (level.has(id)) return level.get(id);
    level.set(id, 0);
    const outs = (byId.get(id)?.outputs || []).filter((o) => byId.has(o));
    const l = outs.length ? 1 + Math.max(...outs.map(levelOf)) : 0;
    level.set(id, l);
    return l;
  };
  stages.forEach((st) => levelOf(st.id));
  const top = Math.max(0, ...level.values());
  const depth = new Map(stages.map((st) => [st.id, top - level.get(st.id)]));
  const columns = [];
  for (const st of stages) (columns[depth.get(st.id)] ||= []).push(st);
  const W = 210, H = 58, GX = 60, GY = 16;
  const pos = new Map();
  columns.forEach((col, x) => col.forEach((st, y) => pos.set(st.id, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const width = 20 + columns.length * (W + GX) - GX;
  const height = 20 + Math.max(...columns.map((c) => c.length)) * (H + GY) - GY;
  const colors = { succeeded: "#dafbe1", running: "#ddf4ff", failed: "#ffebe9", ready: "#fff8c5", waiting: "#f6f8fa" };
  const edges = stages.flatMap((st) => st.inputs.filter((i) => pos.has(i)).map((i) => {
    const a = pos.get(i), b = pos.get(st.id);
    return s("path", { d: `M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x},${b.y + H / 2}`, fill: "none", stroke: "#8c959f", "marker-end": "url(#arrow)" });
  }));
  const nodes = stages.map((st) => {
    const p = pos.get(st.id);
    const top = st.plan.children.length ? st.plan.children[0].name : st.plan.name;
    return s("g", { transform: `translate(${p.x},${p.y})`, "data-stage-node": st.id },
      s("rect", { width: W, height: H, rx: 6, fill: colors[st.status] || "#fff", stroke: "#8c959f" }),
      s("text", { x: 8, y: 18, "font-weight": 600 }, `Stage ${st.id} · ${st.status}`),
      s("text", { x: 8, y: 34 }, top.length > 30 ? top.slice(0, 29) + "…" : top),
      s("text", { x: 8, y: 50, fill: "#6b7482" }, `${st.tasks_succeeded}/${st.partitions} tasks · ${fmtNum(st.output_rows)} rows`));
  });
  return h("div", { class: "graph" }, s("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "stage graph" },
    s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" }, s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8c959f" }))),
    edges, nodes));
}
// end of fields

function resultTable(result) {
  const cols = result.columns.map((c) => ({ label: c.name, num: /Int|Float|Decimal/.test(c.type), cell: (row) => fmtCell(row[c.name]) }));
  return h("div", { id: "result" },
    h("div", { class: "muted" }, `${fmtNum(result.total_rows)} rows` + (result.truncated ? `, first ${result.rows.length} shown` : "")),
    table(cols, rowsOf(result.rows), { class: "result" }));
}
const fmtCell = (v) => (v === null || v === undefined ? h("span", { class: "muted" }, "null") : typeof v === "object" ? JSON.stringify(v) : String(v));

pages.schedules = {
  title: "Schedules",
  mount(root) {
    this.el = h("div");
    this.msg = h("div");
    root.append(h("h1", {}, "Schedules"), this.msg, this.el);
  },
  async act(name, action) {
    try {
      // fields of ScheduleChanged as r
      const r = await post(`/api/schedules/${encodeURIComponent(name)}/${action}`);
      // end of fields
      fill(this.msg, h("div", { class: "card", id: "schedule-message" }, `${name}: ${action} done`, r.run_id ? [" · run ", runLink(r.run_id)] : ""));
    } catch (e) {
      fill(this.msg, problem(`${name}: ${action} failed: ${e.message}`));
    }
    refreshNow();
  },
  async refresh() {
    const [list, runs] = await Promise.all([api("/api/schedules"), api("/api/runs?limit=500")]);
    const history = (name) => runs.filter((r) => r.trigger.startsWith(`schedule:${name} (`)).slice(0, 5);
    // fields of ScheduleView as x
    fill(this.el, table([
      { label: "name", cell: (x) => h("b", {}, x.name) },
      { label: "job", cell: (x) => x.job },
      { label: "when", cell: (x) => (x.every ? `every ${x.every}` : `cron ${x.cron}`) },
      { label: "parameters", cell: (x) => Object.entries(x.params).map(([k, v]) => `${k}=${v}`).join(" ") },
      { label: "state", cell: (x) => status(x.paused ? "paused" : "active") },
      { label: "next run", cell: (x) => (x.next_run_ms ? h("span", { title: fmtTime(x.next_run_ms) }, fmtAgo(x.next_run_ms)) : "") },
      { label: "last run", cell: (x) => (x.last_run_id ? [runLink(x.last_run_id), " ", status(x.last_status)] : "never") },
      { label: "history", cell: (x) => [history(x.name).map((r) => h("a", { href: `/runs/${r.run_id}`, "data-link": true, title: `${r.run_id} ${fmtTime(r.started_at_ms)}` }, status(r.status), " ")), h("a", { href: `/runs?trigger=${encodeURIComponent(`schedule:${x.name} (`)}`, "data-link": true }, "all")] },
      { label: "skipped ticks", num: true, cell: (x) => x.skipped_ticks },
      { label: "", cell: (x) => h("div", { class: "row" },
        h("button", { "data-action": "trigger", onclick: () => this.act(x.name, "trigger") }, "Trigger"),
        x.paused ? h("button", { "data-action": "resume", onclick: () => this.act(x.name, "resume") }, "Resume")
          : h("button", { "data-action": "pause", onclick: () => this.act(x.name, "pause") }, "Pause")) },
    ], rowsOf(list, (x) => ({ "data-schedule": x.name }))));
    // end of fields
  },
};

// Records per second of each stream over the last polls, for sparklines.
const streamHistory = new Map();

function sparkline(points) {
  const w = 120, hgt = 24;
  if (points.length < 2) return h("span", { class: "muted" }, "…");
  const max = Math.max(1, ...points);
  const step = w / (points.length - 1);
  const path = points.map((p, i) => `${(i * step).toFixed(1)},${(hgt - (hgt * p) / max).toFixed(1)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", hgt); svg.setAttribute("class", "spark");
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", path);
  svg.append(line);
  const t = document.createElementNS("http://www.w3.org/2000/svg", "title");
  t.textContent = `${fmtNum(points[points.length - 1], 0)} records/s now, ${fmtNum(max, 0)} at most`;
  svg.append(t);
  return svg;
}

pages.streams = {
  title: "Streams",
  mount(root) {
    this.el = h("div");
    this.msg = h("div");
    root.append(h("h1", {}, "Streams"), this.msg, this.el);
  },
  async act(name, action) {
    try {
      await post(`/api/streams/${encodeURIComponent(name)}/${action}`);
      fill(this.msg, h("div", { class: "card", id: "stream-message" }, `${name}: ${action} done`));
    } catch (e) {
      fill(this.msg, problem(`${name}: ${action} failed: ${e.message}`));
    }
    refreshNow();
  },
  async refresh() {
    const list = await api("/api/streams");
    const now = Date.now();
    for (const x of list) {
      const seen = streamHistory.get(x.name) || { rates: [] };
      if (seen.at && now > seen.at) seen.rates.push(Math.max(0, ((x.records - seen.records) * 1000) / (now - seen.at)));
      seen.rates = seen.rates.slice(-30);
      Object.assign(seen, { at: now, records: x.records });
      streamHistory.set(x.name, seen);
    }
    const maxLag = Math.max(1, ...list.map((x) => x.lag));
    fill(this.el, list.length ? table([
      { label: "name", cell: (x) => h("b", {}, x.name) },
      { label: "state", cell: (x) => [status(x.state), x.error ? h("div", { class: "status failed", "data-error": true }, x.error) : ""] },
      { label: "source", cell: (x) => x.sources.join(" ") },
      { label: "sink", cell: (x) => x.sink },
      { label: "lag", num: true, cell: (x) => h("div", {}, fmtNum(x.lag), bar(x.lag, maxLag, x.lag > 0)) },
      { label: "watermark", cell: (x) => (x.watermark_ms ? h("span", { title: x.watermark }, `${fmtSpan((now - x.watermark_ms) / 1000)} behind`) : h("span", { class: "muted" }, "none yet")) },
      { label: "throughput", cell: (x) => sparkline(streamHistory.get(x.name).rates) },
      { label: "batches", num: true, cell: (x) => fmtNum(x.batches) },
      { label: "rows in", num: true, cell: (x) => fmtNum(x.rows_in) },
      { label: "rows out", num: true, cell: (x) => fmtNum(x.rows_out) },
      { label: "late", num: true, cell: (x) => fmtNum(x.late_rows) },
      { label: "rejected", num: true, cell: (x) => h("span", { title: `not JSON ${x.rejected.not_json}, not an object ${x.rejected.not_an_object}, bad event time ${x.rejected.bad_event_time}` }, fmtNum(x.rejected_rows)) },
      { label: "last batch", num: true, cell: (x) => fmtMs(x.last_batch_ms) },
      { label: "", cell: (x) => h("div", { class: "row" },
        x.state === "paused" || x.state === "stopped"
          ? h("button", { "data-action": "resume", onclick: () => this.act(x.name, "resume") }, "Resume")
          : h("button", { "data-action": "pause", onclick: () => this.act(x.name, "pause") }, "Pause"),
        x.state !== "stopped" ? h("button", { "data-action": "stop", onclick: () => this.act(x.name, "stop") }, "Stop") : "") },
    ], rowsOf(list, (x) => ({ "data-stream": x.name }))) : h("p", { class: "muted" }, "No streams. Create one with stockyard streams create NAME --file stream.sql."));
  },
};

// A figure over time: one point per run, its window's end on the x axis.
function trendLine(points, digits) {
  const w = 220, hgt = 56;
  if (!points.length) return h("div", { class: "muted" }, "no runs yet");
  const t0 = points[0].t, t1 = points[points.length - 1].t, span = Math.max(1, t1 - t0);
  const lo = Math.min(...points.map((p) => p.v)), hi = Math.max(...points.map((p) => p.v)), range = hi - lo || 1;
  const xy = (p) => [points.length === 1 ? w / 2 : 4 + ((p.t - t0) / span) * (w - 8), hgt - 4 - ((p.v - lo) / range) * (hgt - 8)];
  const at = (t) => hhmm(new Date(t).toISOString());
  return s("svg", { width: w, height: hgt + 14, viewBox: `0 0 ${w} ${hgt + 14}`, role: "img", class: "trend", "data-points": points.length },
    points.length > 1
      ? s("polyline", { points: points.map((p) => xy(p).map((n) => n.toFixed(1)).join(",")).join(" ") })
      : s("circle", { cx: xy(points[0])[0], cy: xy(points[0])[1], r: 3 }),
    s("text", { x: 0, y: hgt + 12 }, at(t0)),
    s("text", { x: w, y: hgt + 12, "text-anchor": "end" }, at(t1)),
    s("title", {}, `${points.length} run(s): from ${fmtNum(lo, digits)} to ${fmtNum(hi, digits)}`));
}

// ---- live dashboard: the shipped streams' results ----
// Horizontal bars: one row per item, the value written at its end.
function hbars(items, fmt, cls) {
  const w = 460, row = 22, labelW = 190, hgt = Math.max(row, items.length * row);
  const max = Math.max(1e-9, ...items.map((i) => i.value));
  return s("svg", { width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, role: "img", class: `hbars ${cls || ""}` },
    items.map((it, i) => {
      const len = Math.max(1, ((w - labelW - 90) * it.value) / max);
      return s("g", { "data-item": it.label },
        s("text", { x: 0, y: i * row + 15 }, clip(it.label, 28)),
        s("rect", { x: labelW, y: i * row + 4, width: len, height: row - 8, class: it.cls || "" }, s("title", {}, it.title || "")),
        s("text", { x: labelW + len + 6, y: i * row + 15 }, fmt(it.value)));
    }));
}
// Stacked columns over windows: kept (blue) under left out (red).
function columns(points) {
  const w = 460, hgt = 110, gap = 2;
  const max = Math.max(1, ...points.map((p) => p.total));
  const cw = points.length ? (w - gap * points.length) / points.length : w;
  return s("svg", { width: w, height: hgt + 16, viewBox: `0 0 ${w} ${hgt + 16}`, role: "img", class: "columns" },
    points.map((p, i) => {
      const x = i * (cw + gap), kh = (hgt * p.kept) / max, th = (hgt * p.total) / max;
      return s("g", {},
        s("rect", { x, y: hgt - th, width: cw, height: th - kh, class: "bad" }),
        s("rect", { x, y: hgt - kh, width: cw, height: kh }),
        s("title", {}, `${p.label}: ${p.kept} of ${p.total} kept`));
    }),
    points.length ? s("text", { x: 0, y: hgt + 13 }, points[0].label) : "",
    points.length ? s("text", { x: w, y: hgt + 13, "text-anchor": "end" }, points[points.length - 1].label) : "");
}
const hhmm = (t) => (t ? String(t).slice(11, 16) : "");
// The newest window of a result, open ones first.
// fields of SinkView as r, WindowView as w
const newest = (r) => (r.windows || [])[0];
const newestFinal = (r) => (r.windows || []).find((w) => w.final);
// end of fields

pages.live = {
  title: "Live",
  mount(root) {
    this.el = h("div");
    root.append(h("h1", {}, "Live dashboard"), h("p", { class: "muted" }, "The shipped streams (jobs/streams/) as they run: each card says its window and how far behind its stream is."), this.el);
  },
  // A card for stream `name`: its heading and state, or why it has none.
  card(name, title, streams, body) {
    const st = streams.find((x) => x.name === name);
    const head = h("h3", {}, title, " ", h("span", { class: "muted" }, `(${name})`));
    if (!st) return h("div", { class: "card", "data-card": name }, head, h("p", { class: "muted" }, `Not created: stockyard streams create ${name} --file jobs/streams/${name}.sql --set …`));
    const behind = st.watermark_ms ? (Date.now() - st.watermark_ms) / 1000 : null;
    const late = st.state !== "running" || st.lag > 10000 || (behind !== null && behind > 15 * 60);
    const health = h("div", { class: late ? "health behind" : "health", "data-health": true },
      status(st.state), " · ",
      behind === null ? "no watermark yet" : `${fmtSpan(behind)} behind`,
      st.lag ? ` · ${fmtNum(st.lag)} records to read` : "",
      st.error ? h("div", { class: "status failed" }, st.error) : "");
    return h("div", { class: "card", "data-card": name }, head, health, body);
  },
  async refresh() {
    const [streams, services] = await Promise.all([api("/api/streams"), api("/api/services").catch(() => [])]);
    const names = ["top_products", "category_revenue", "inventory_alerts", "sales_metrics", "order_quality"];
    const results = {};
    await Promise.all(names.filter((n) => streams.some((x) => x.name === n)).map(async (n) => { results[n] = await api(`/api/streams/${n}/results`); }));
    // fields of WindowView as w, WindowView as top, WindowView as cat, WindowView as inv, SinkView as sales, SinkView as quality
    const windowLabel = (w) => (w ? h("div", { class: "muted", "data-window": w.window_start }, `window ${hhmm(w.window_start)}–${hhmm(w.window_end)} UTC · ${w.final ? "final" : "open, updating"}`) : h("p", { class: "muted" }, "no window yet"));
    const cards = [];
    const top = results.top_products && newest(results.top_products);
    cards.push(this.card("top_products", "Top products by revenue", streams, top ? [windowLabel(top),
      hbars(top.rows.map((r) => ({ label: r.product_name || r.product_id, value: r.revenue, title: `${r.product_id}: ${r.orders} orders, ${r.units} units` })), (v) => fmtNum(v, 0))] : windowLabel(null)));
    const cat = results.category_revenue && newest(results.category_revenue);
    cards.push(this.card("category_revenue", "Revenue by category", streams, cat ? [windowLabel(cat),
      hbars(cat.rows.map((r) => ({ label: r.category, value: r.revenue, title: `${r.orders} orders, average price ${fmtNum(r.avg_price)}` })), (v) => fmtNum(v, 0))] : windowLabel(null)));
    const inv = results.inventory_alerts && newestFinal(results.inventory_alerts);
    const severities = ["critical", "high", "medium"];
    cards.push(this.card("inventory_alerts", "Stock alerts by severity", streams, inv ? [windowLabel(inv),
      hbars(severities.map((sev) => ({ label: sev, value: inv.rows.filter((r) => r.severity === sev).length, cls: sev })), (v) => String(v), "severity"),
      table([
        { label: "store", cell: (r) => r.store_id }, { label: "product", cell: (r) => r.product_id },
        { label: "severity", cell: (r) => h("span", { class: `sev ${r.severity}` }, r.severity) },
        { label: "lowest", num: true, cell: (r) => r.lowest_stock }, { label: "turnover", num: true, cell: (r) => fmtNum(r.turnover) },
      ], rowsOf(inv.rows.slice(0, 8)), { class: "alerts" })] : windowLabel(null)));
    const sales = results.sales_metrics;
    const anomalies = sales ? (sales.windows || []).flatMap((w) => w.rows.filter((r) => r.anomaly)) : [];
    cards.push(this.card("sales_metrics", "Sales anomalies", streams, sales ? [windowLabel(newestFinal(sales)),
      anomalies.length ? table([
        { label: "window", cell: (r) => hhmm(r.window_start) }, { label: "store", cell: (r) => r.store_id }, { label: "category", cell: (r) => r.category },
        { label: "revenue", num: true, cell: (r) => fmtNum(r.revenue, 0) }, { label: "recent average", num: true, cell: (r) => fmtNum(r.recent_revenue, 0) },
      ], rowsOf(anomalies.slice(0, 8)), { class: "anomalies" }) : h("p", { class: "muted", "data-anomalies": 0 }, "No anomalous window in the last ones: revenue within half to twice the store's recent average.")] : windowLabel(null)));
    const quality = results.order_quality;
    const points = quality ? (quality.windows || []).filter((w) => w.final && w.rows[0]).reverse().map((w) => ({ label: hhmm(w.window_start), kept: w.rows[0].kept, total: w.rows[0].orders })) : [];
    cards.push(this.card("order_quality", "Orders kept by the cleaning, per minute", streams, points.length ? columns(points) : windowLabel(null)));
    // end of fields
    // fields of Service as x
    const panel = h("div", { class: "card", "data-card": "services" }, h("h3", {}, "Services"),
      table([
        { label: "service", cell: (x) => x.name }, { label: "address", cell: (x) => x.address },
        { label: "state", cell: (x) => h("span", { class: x.up ? "status active" : "status failed", "data-service": x.name }, x.up ? "up" : "down") },
        { label: "", cell: (x) => (x.cpu_seconds !== undefined ? `CPU ${fmtNum(x.cpu_seconds, 1)} s · memory ${fmtBytes(x.memory_bytes)}` : x.error || x.state || "") },
      ], rowsOf(services)));
    // end of fields
    fill(this.el, h("div", { class: "dash" }, cards, panel));
  },
};

pages.kpis = {
  title: "KPIs",
  heading: () => "Supply-chain KPIs",
  async refresh() {
    // fields of KpiCache as k
    const [k, runs] = await Promise.all([api("/api/kpis"), api("/api/runs?job=kpi&status=succeeded&limit=240").catch(() => [])]);
    // The KPIs' history is the runs': each keeps its headline figures.
    const past = runs.filter((r) => r.summary && r.summary.headline && r.summary.window_end).reverse();
    // [field, label, digits, scale]: rates are shown as percentages.
    const figures = [["available_units", "Units available", 0, 1], ["stockout_alerts", "Stockout alerts", 0, 1],
      ["mean_utilization_pct", "Mean DC utilisation %", 2, 1], ["on_time_rate", "Supplier on-time %", 1, 100],
      ["fulfillment_rate", "Orders fulfilled %", 1, 100], ["revenue", "Revenue", 0, 1]];
    const trends = h("div", { class: "cards", id: "kpi-trends" }, figures.map(([key, label, digits, scale]) => {
      const points = past.filter((r) => typeof r.summary.headline[key] === "number")
        .map((r) => ({ t: Date.parse(r.summary.window_end), v: r.summary.headline[key] * scale }))
        .filter((p) => !Number.isNaN(p.t));
      const last = points.length ? points[points.length - 1].v : null;
      return h("div", { class: "card", "data-trend": key }, h("div", { class: "muted" }, label),
        h("div", { class: "big" }, last === null ? "–" : fmtNum(last, digits)), trendLine(points, digits));
    }));
    const any = Object.values(k.kpis).find((v) => v);
    if (!any) {
      fill(this.el, h("p", { class: "muted", id: "kpi-window" }, "No KPIs in Redis: the KPI job has not run within the TTL."),
        h("h2", {}, "Over the last runs"), trends);
      return;
    }
    const rows = (name) => (k.kpis[name] && k.kpis[name].rows) || [];
    const alerts = rows("stockout_alerts");
    const dcs = rows("dc_utilization");
    const suppliers = rows("supplier_performance");
    const regions = rows("regional_performance");
    const inventory = rows("inventory_level");
    const maxRevenue = Math.max(0, ...regions.map((r) => r.revenue || 0));
    fill(this.el,
      h("p", { id: "kpi-window" }, `Window ${any.window_start} to ${any.window_end} · written ${k.last_update} · `,
        h("b", {}, `data age ${fmtSpan(k.age_s)}`), ` · expires in ${k.expires_in_s} s`),
      h("h2", {}, `Over the last ${past.length} run(s)`), trends,
      h("h2", {}, `Stockout alerts (${alerts.length}), most at risk first`),
      table([
        { label: "SKU", cell: (r) => r.sku_id }, { label: "product", cell: (r) => r.product_name }, { label: "DC", cell: (r) => r.dc_id },
        { label: "stock", num: true, cell: (r) => fmtNum(r.current_stock) }, { label: "sold", num: true, cell: (r) => fmtNum(r.units_sold) },
        { label: "units/day", num: true, cell: (r) => fmtNum(r.units_per_day) }, { label: "days to stockout", num: true, cell: (r) => fmtNum(r.days_to_stockout) },
        { label: "", cell: (r) => bar(7 - Math.min(7, r.days_to_stockout), 7, true) },
      ], rowsOf(alerts), { id: "kpi-stockout_alerts" }),
      h("h2", {}, "DC utilisation"),
      table([
        { label: "DC", cell: (r) => r.dc_id }, { label: "name", cell: (r) => r.dc_name }, { label: "region", cell: (r) => r.region },
        { label: "used / capacity", num: true, cell: (r) => `${fmtNum(r.used_units)} / ${fmtNum(r.capacity_units)}` },
        { label: "utilisation %", num: true, cell: (r) => fmtNum(r.utilization_pct) },
        { label: "", cell: (r) => bar(r.utilization_pct, 100, r.utilization_pct > 90) },
      ], rowsOf(dcs), { id: "kpi-dc_utilization" }),
      h("h2", {}, "Supplier on-time rates"),
      table([
        { label: "supplier", cell: (r) => `${r.supplier_id} ${r.supplier_name ?? ""}` }, { label: "shipments", num: true, cell: (r) => r.shipments },
        { label: "late", num: true, cell: (r) => r.late_shipments }, { label: "lead time (days)", num: true, cell: (r) => fmtNum(r.avg_lead_time_days) },
        { label: "promised", num: true, cell: (r) => fmtNum(r.promised_lead_time_days) },
        { label: "on time", num: true, cell: (r) => `${fmtNum(100 * r.on_time_rate, 1)} %` }, { label: "", cell: (r) => bar(r.on_time_rate, 1) },
      ], rowsOf(suppliers), { id: "kpi-supplier_performance" }),
      h("h2", {}, "Regional revenue"),
      table([
        { label: "region", cell: (r) => r.region }, { label: "orders", num: true, cell: (r) => r.total_orders },
        { label: "fulfilled", num: true, cell: (r) => `${fmtNum(100 * r.fulfillment_rate, 1)} %` }, { label: "units", num: true, cell: (r) => fmtNum(r.units) },
        { label: "revenue", num: true, cell: (r) => fmtNum(r.revenue) }, { label: "", cell: (r) => bar(r.revenue, maxRevenue) },
      ], rowsOf(regions), { id: "kpi-regional_performance" }),
      h("h2", {}, `Inventory levels (${inventory.length})`),
      h("details", { "data-key": "inventory" }, h("summary", {}, "show the latest reading per SKU and DC"),
        table([
          { label: "SKU", cell: (r) => r.sku_id }, { label: "product", cell: (r) => r.product_name }, { label: "DC", cell: (r) => r.dc_id },
          { label: "on hand", num: true, cell: (r) => fmtNum(r.on_hand_qty) }, { label: "reserved", num: true, cell: (r) => fmtNum(r.reserved_qty) },
          { label: "available", num: true, cell: (r) => fmtNum(r.available_qty) }, { label: "as of", cell: (r) => r.as_of },
        ], rowsOf(inventory.slice(0, 500)), { id: "kpi-inventory_level" })),
      h("h2", {}, "Data quality"),
      h("pre", { id: "kpi-data_quality" }, JSON.stringify(k.data_quality, null, 2)));
    // end of fields
  },
};

pages.archives = {
  title: "Archives",
  heading: () => "Archives",
  async refresh() {
    const runs = await api("/api/archives");
    // fields of Run as r
    fill(this.el, table([
      { label: "run", cell: (r) => runLink(r.run_id) },
      { label: "status", cell: (r) => status(r.status) },
      { label: "started", cell: (r) => fmtTime(r.started_at_ms) },
      { label: "cutoff", cell: (r) => r.summary?.cutoff || "" },
      { label: "documents", num: true, cell: (r) => fmtNum(r.summary?.total_records) },
      { label: "Parquet", num: true, cell: (r) => (r.summary?.total_size_mb !== undefined ? `${fmtNum(r.summary.total_size_mb, 3)} MiB` : "") },
      { label: "collections and date ranges", cell: (r) => (r.summary?.collections || []).map((c) =>
        h("div", {}, `${c.collection}: ${fmtNum(c.record_count)} (${c.date_range?.min ?? ""} to ${c.date_range?.max ?? ""})`)) },
      { label: "database size", num: true, cell: (r) => (r.summary?.data_size_bytes !== undefined ? `${fmtBytes(r.summary.data_size_bytes)} (threshold ${fmtBytes(r.summary.threshold_bytes)})` : "") },
      { label: "metadata / error", cell: (r) => r.error || r.summary?.metadata || "" },
    ], rowsOf(runs, (r) => ({ "data-run": r.run_id })), { id: "archives" }));
    // end of fields
  },
};

pages.sql = {
  title: "SQL",
  mount(root) {
    this.text = h("textarea", { id: "sql", spellcheck: "false" }, sessionStorage.getItem("sql") || "SELECT * FROM dcs_dim ORDER BY dc_id LIMIT 20");
    this.state = h("div", { id: "sql-status" });
    this.out = h("div", { id: "sql-result" });
    root.append(h("h1", {}, "SQL"),
      h("p", { class: "muted" }, "Runs on the cluster as a sql job; MongoDB collections are tables. Statements separated by ; run in order, the last one's rows are shown (up to 1,000)."),
      this.text, h("div", { class: "row" }, h("button", { id: "run-sql", onclick: () => this.run() }, "Run")), this.state, this.out);
  },
  async run() {
    sessionStorage.setItem("sql", this.text.value);
    fill(this.out);
    try {
      const r = await post("/api/runs", { job: "sql", params: { sql: this.text.value } });
      this.runId = r.run_id;
    } catch (e) {
      this.runId = null;
      fill(this.state, problem(e.message));
      return;
    }
    refreshNow();
  },
  async refresh() {
    if (!this.runId) return;
    const r = await api(`/api/runs/${encodeURIComponent(this.runId)}`);
    fill(this.state, h("div", { class: "row" }, "run ", runLink(r.run_id), status(r.status), fmtMs(r.duration_ms ?? Date.now() - r.started_at_ms),
      r.status === "running" ? h("button", { class: "danger", id: "cancel", onclick: () => cancelRun(r.run_id) }, "Cancel") : null));
    if (r.status === "running") return;
    this.runId = null;
    fill(this.out, r.error ? problem(r.error) : r.result ? resultTable(r.result) : h("p", { class: "muted" }, "the result is no longer kept"));
  },
};

// ---- routing ----
let current = null;
let timer = null;

function route() {
  const path = location.pathname;
  let m;
  if (path === "/") return ["overview"];
  if (path === "/runs") return ["runs"];
  if ((m = path.match(/^\/runs\/([^/]+)$/))) return ["run", decodeURIComponent(m[1])];
  if ((m = path.match(/^\/jobs\/([^/]+)$/))) return ["job", decodeURIComponent(m[1])];
  const name = path.slice(1);
  return pages[name] ? [name] : ["overview"];
}

function show() {
  const [name, arg] = route();
  const page = Object.create(pages[name]);
  current = page;
  const main = document.getElementById("main");
  main.replaceChildren();
  (page.mount || mountHeading).call(page, main, arg);
  document.title = `${page.title} · Stockyard`;
  const section = { run: "runs", job: "runs" }[name] || name;
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("current", a.dataset.page === section));
  refreshNow();
}

async function refreshNow() {
  clearTimeout(timer);
  const page = current;
  const live = document.getElementById("live");
  const offline = document.getElementById("offline");
  const main = document.getElementById("main");
  // Refreshes rebuild the page: sections the reader opened stay open.
  const opened = new Set([...main.querySelectorAll("details[open]")].map((d) => d.dataset.key));
  try {
    await page.refresh();
    main.querySelectorAll("details").forEach((d) => { if (opened.has(d.dataset.key)) d.open = true; });
    document.getElementById("page-error")?.remove();
    offline.hidden = true;
    live.className = "";
    live.textContent = `live · ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (page !== current) return;
    const shown = document.getElementById("page-error");
    const text = `Cannot load this page's data: ${e.message}`;
    if (e instanceof TypeError) {
      offline.hidden = false;
      offline.textContent = `Cannot reach the scheduler (${e.message}); retrying every 2 s.`;
    } else if (shown) {
      shown.textContent = text;
    } else {
      main.append(h("div", { class: "problem", id: "page-error", role: "alert" }, text));
    }
    live.className = "stale";
    live.textContent = "not live";
  }
  if (page === current) timer = setTimeout(refreshNow, POLL_MS);
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a");
  if (!a || a.origin !== location.origin || ev.metaKey || ev.ctrlKey || ev.shiftKey || a.target) return;
  ev.preventDefault();
  history.pushState(null, "", a.pathname + a.search);
  show();
});
window.addEventListener("popstate", show);
show();
