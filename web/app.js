// Fast-Flow status page: plain JavaScript, no build step. Reads /api/state, follows /events (SSE)
// and, for an open run, /events?run=<id> (log lines, resource samples, the end of the run).
"use strict";

const token = new URLSearchParams(location.search).get("token");
const withToken = (url) => (token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url);
const $ = (selector) => document.querySelector(selector);
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
let state = null;
let openRun = null; // { id, source, lastId, lines }
const liveStats = new Map(); // run id -> latest resource sample

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) : "–");
function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (seconds < 60) return `${Math.round(seconds)}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  if (seconds < 60 * 86400) return `${Math.round(seconds / 86400)} d ago`;
  if (seconds < 365 * 86400) return `${Math.round(seconds / (30.44 * 86400))} months ago`;
  return `${(seconds / (365.25 * 86400)).toFixed(1)} years ago`;
}
const bytes = (n) => (n >= 2 ** 30 ? (n / 2 ** 30).toFixed(2) + " GiB" : (n / 2 ** 20).toFixed(1) + " MiB");
const secs = (s) => (s === null || s === undefined ? "–" : s < 60 ? s.toFixed(2) + "s" : (s / 60).toFixed(1) + " min");

async function getJSON(url) {
  const response = await fetch(withToken(url), { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function refresh() {
  state = await getJSON("api/state");
  renderSource(state.source);
  renderProblems(state);
  renderPipelines(state.pipelines);
  renderCommits(state.commits);
}

function renderSource(source) {
  const applied = source.applied;
  const parts = [el("b", {}, source.repo), " · ", source.branch];
  if (applied) parts.push(" · applied ", el("code", {}, applied.id.slice(0, 8)), ` “${applied.summary}” by ${applied.author}, ${ago(applied.time)}`);
  parts.push(` · fetched ${ago(source.last_fetch)}`);
  if (source.branch_missing) parts.push(el("span", { class: "badge quarantined" }, "branch missing"));
  if (source.last_pass && source.last_pass.error) parts.push(el("span", { class: "badge quarantined", title: source.last_pass.error }, "source unreachable"));
  $("#source").replaceChildren(...parts);
  $("#source").title = source.healthy ? "healthy" : "unhealthy";
}

function renderProblems(current) {
  const box = $("#problems");
  const rejected = current.source.rejected;
  const parts = [];
  if (rejected) {
    parts.push(el("h3", {}, `Commit ${rejected.commit.slice(0, 8)} was not applied (the applied commit keeps running)`),
      ...rejected.problems.map((p) => el("code", {}, p.text)));
  }
  if (current.source.problems.length) {
    parts.push(el("h3", {}, "Invalid at the applied commit (the last good spec keeps running)"),
      ...current.source.problems.map((p) => el("code", {}, p.text)));
  }
  box.hidden = !parts.length;
  box.replaceChildren(...parts);
}

function schedulesCell(pipeline) {
  if (!pipeline.schedules || !pipeline.schedules.length) {
    const triggers = [];
    if (pipeline.on_push) triggers.push("on push");
    for (const after of pipeline.after || []) triggers.push(`after ${after.pipeline} (${after.on})`);
    return triggers.join(", ") || "manual only";
  }
  return pipeline.schedules.map((s) => el("div", { title: s.expression }, s.words));
}

function nextCell(pipeline) {
  if (pipeline.suspend) return "suspended";
  const next = (pipeline.schedules || []).flatMap((s) => s.next).sort()[0];
  return next ? el("span", { title: next }, when(next)) : "–";
}

function marks(runs) {
  return el("div", { class: "marks" }, runs.slice(0, 20).reverse().map((run) =>
    el("button", {
      class: `mark ${run.state}`, type: "button", "data-run": run.run_id,
      title: `${run.state} · ${run.trigger} · ${secs(run.duration_s)} · ${when(run.finished_at || run.started_at || run.queued_at)}`,
      onclick: () => showRun(run.run_id),
    })));
}

function nowCell(pipeline) {
  const running = (pipeline.last_runs || []).find((r) => r.state === "running");
  if (!running) return "";
  const sample = liveStats.get(running.run_id);
  if (!sample) return el("span", {}, "running…");
  const share = sample.memory_limit_bytes ? sample.memory_bytes / sample.memory_limit_bytes : 0;
  return el("div", { "data-stats": running.run_id },
    `${bytes(sample.memory_bytes)} of ${bytes(sample.memory_limit_bytes)} · CPU ${sample.cpu_seconds.toFixed(1)}s`,
    el("div", { class: share > 0.85 ? "bar hot" : "bar" }, el("i", { style: `width:${Math.min(100, share * 100).toFixed(1)}%` })));
}

function renderPipelines(pipelines) {
  const rows = pipelines.map((p) => el("tr", { "data-pipeline": p.name },
    el("td", {}, el("div", { class: "name" }, p.name, p.quarantined ? el("span", { class: "badge quarantined" }, "quarantined") : null),
      el("div", { class: "desc" }, p.description || "")),
    el("td", {}, schedulesCell(p)),
    el("td", {}, nextCell(p)),
    el("td", {}, marks(p.last_runs || [])),
    el("td", { class: "now" }, nowCell(p))));
  $("#pipelines tbody").replaceChildren(...rows);
}

function renderCommits(commits) {
  $("#commits").replaceChildren(...commits.map((c) => el("li", {},
    el("span", { class: `dot ${c.state || ""}`, title: c.state || "no status" }),
    el("code", {}, c.id.slice(0, 8)), el("span", {}, c.summary), el("span", { class: "desc" }, `${c.author}, ${ago(c.time)}`),
    c.applied ? el("span", { class: "badge" }, "applied") : null,
    ...c.statuses.map((s) => el("span", { class: `ctx ${s.state}`, title: s.description }, `${s.context.replace("fastflow/", "")}: ${s.state}`)))));
}

function fact(name, value, cls) {
  return el("div", {}, el("dt", {}, name), el("dd", cls ? { class: cls } : {}, value));
}

function renderRunFacts(run) {
  $("#run-title").textContent = `${run.pipeline} · ${run.run_id}`;
  const facts = [
    fact("state", run.state, `state-${run.state}`), fact("trigger", run.trigger), fact("attempt", run.attempt),
    fact("started", when(run.started_at)), fact("duration", secs(run.duration_s)), fact("setup", secs(run.setup_s)),
  ];
  if (run.exit_code !== null && run.exit_code !== undefined) facts.push(fact("exit code", run.exit_code));
  if (run.peak_memory_bytes) facts.push(fact("peak memory", `${bytes(run.peak_memory_bytes)} of ${bytes(run.memory_limit_bytes)}`));
  if (run.cpu_seconds !== undefined && run.cpu_seconds !== null) facts.push(fact("CPU time", secs(run.cpu_seconds)));
  $("#run-facts").replaceChildren(...facts);
  const why = $("#run-why");
  if (run.state === "oom") {
    why.hidden = false;
    why.textContent = `Killed for memory: it used ${bytes(run.peak_memory_bytes || run.memory_limit_bytes || 0)} and the limit is ${bytes(run.memory_limit_bytes || 0)}. Raise resources.memory or use less.`;
  } else if (["failed", "timed_out", "error", "cancelled"].includes(run.state) && run.message) {
    why.hidden = false;
    why.textContent = run.message;
  } else {
    why.hidden = true;
  }
}

function appendLine(stream, at, text) {
  const line = el("div", { class: stream }, el("span", { class: "t" }, new Date(at).toLocaleTimeString() + " "), text);
  const log = $("#run-log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
  log.append(line);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

async function showRun(runId) {
  if (openRun && openRun.source) openRun.source.close();
  location.hash = `#/runs/${runId}`;
  $("#run").hidden = false;
  $("#run-log").replaceChildren();
  $("#run-cpu").textContent = $("#run-mem").textContent = "";
  const run = await getJSON(`api/runs/${encodeURIComponent(runId)}`);
  renderRunFacts(run);
  openRun = { id: runId, source: null };
  if (run.state !== "running" && run.state !== "queued") {
    const log = await getJSON(`api/runs/${encodeURIComponent(runId)}/log`);
    for (const line of log.lines) appendLine(line.stream, line.at, line.text);
    return;
  }
  const source = new EventSource(withToken(`events?run=${encodeURIComponent(runId)}`));
  openRun.source = source;
  source.addEventListener("log_line", (event) => {
    const data = JSON.parse(event.data);
    appendLine(data.stream, data.at, data.text);
  });
  source.addEventListener("stats_sampled", (event) => {
    const data = JSON.parse(event.data);
    $("#run-mem").textContent = `memory ${bytes(data.memory_bytes)} of ${bytes(data.memory_limit_bytes)} (peak ${bytes(data.peak_memory_bytes)})`;
    $("#run-cpu").textContent = `CPU ${data.cpu_seconds.toFixed(2)}s`;
  });
  for (const kind of ["run_started", "run_finished"]) {
    source.addEventListener(kind, (event) => {
      renderRunFacts(JSON.parse(event.data));
      if (kind === "run_finished") source.close();
    });
  }
}

function closeRun() {
  if (openRun && openRun.source) openRun.source.close();
  openRun = null;
  $("#run").hidden = true;
  history.replaceState(null, "", location.pathname + location.search);
}

let pending = null;
function refreshSoon() {
  if (pending) return;
  pending = setTimeout(() => { pending = null; refresh().catch(console.error); }, 250);
}

function follow() {
  const source = new EventSource(withToken("events"));
  source.onopen = () => $("#live").classList.add("on");
  source.onerror = () => $("#live").classList.remove("on");
  for (const kind of ["run_queued", "run_started", "run_finished", "run_skipped", "pass_completed", "tick_missed"]) {
    source.addEventListener(kind, refreshSoon);
  }
  source.addEventListener("stats_sampled", (event) => {
    const data = JSON.parse(event.data);
    liveStats.set(data.run_id, data);
    const cell = document.querySelector(`[data-stats="${CSS.escape(data.run_id)}"]`);
    if (cell || !state) refreshSoon();
    else if (state && state.pipelines.some((p) => (p.last_runs || []).some((r) => r.run_id === data.run_id && r.state === "running"))) renderPipelines(state.pipelines);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#tz").textContent = zone;
  $("#run-close").addEventListener("click", closeRun);
  refresh().then(() => {
    const match = location.hash.match(/^#\/runs\/(.+)$/);
    if (match) showRun(decodeURIComponent(match[1]));
  }).catch((error) => { $("#source").textContent = `cannot load the state: ${error.message}`; });
  follow();
  setInterval(() => { if (state) renderSource(state.source); }, 30000);
});
