// The Jobs tab: search with filters, the list (updated live from the job
// WebSocket), a job's detail (attempts, events, results), its actions, and
// bulk actions on everything a search matches.
"use strict";

import { $, el, call, act, confirmAction, flash, when } from "/monitor/api.js";

const OPEN = ["scheduled", "queued", "running", "retrying"];
const FINAL = ["succeeded", "failed", "cancelled"];
let cursor = null;
let detailId = null;
let detailEvents = [];
let detailJob = null;

export function init() {
  const form = $("job-filter");
  form.addEventListener("submit", (e) => { e.preventDefault(); search(false); });
  form.addEventListener("reset", () => setTimeout(() => search(false), 0));
  $("jobs-more").addEventListener("click", () => search(true));
  for (const button of $("bulk").querySelectorAll("button")) {
    button.addEventListener("click", () => bulk(button.dataset.bulk));
  }
}

export function show() { return search(false); }

// The search form as the bulk endpoint's filter: only what is filled in.
function filter() {
  const form = new FormData($("job-filter"));
  const out = {};
  const statuses = form.getAll("status");
  if (statuses.length) out.status = statuses;
  for (const key of ["q", "queue", "kind"]) {
    const v = String(form.get(key) || "").trim();
    if (v) out[key] = v;
  }
  for (const key of ["created_after", "created_before"]) {
    const v = form.get(key);
    if (v) out[key] = new Date(v).toISOString();
  }
  return out;
}

function query(f) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) {
    for (const one of [].concat(v)) params.append(k, one);
  }
  params.set("sort", new FormData($("job-filter")).get("sort") || "-created_at");
  params.set("size", "50");
  return params;
}

async function search(more) {
  const params = query(filter());
  if (more && cursor) params.set("cursor", cursor);
  let page;
  try {
    page = await call("GET", "/jobs?" + params);
  } catch (err) {
    flash("Search failed: " + err.message, true);
    return;
  }
  cursor = page.next_cursor;
  const rows = page.items.map(row);
  if (more) $("job-rows").append(...rows);
  else $("job-rows").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "7", class: "muted" }, "no job matches"))]));
  $("jobs-more").hidden = !cursor;
  $("jobs-total").textContent = page.total_capped
    ? "more than " + page.total.toLocaleString() + " jobs match"
    : page.total.toLocaleString() + (page.total === 1 ? " job matches" : " jobs match");
}

function actions(job) {
  const id = job.id;
  return [
    el("button", { class: "plain small", "data-action": "detail", onclick: () => openDetail(id) }, "Details"),
    ["failed", "cancelled"].includes(job.status) && el("button", { class: "small", "data-action": "retry", onclick: () => retry(id) }, "Retry"),
    OPEN.includes(job.status) && el("button", { class: "plain small", "data-action": "cancel", onclick: () => cancel(id) }, "Cancel"),
    FINAL.includes(job.status) && el("button", { class: "plain danger small", "data-action": "discard", onclick: () => discard(id) }, "Discard"),
  ];
}

function row(job) {
  return el("tr", { "data-id": job.id, class: job.id === detailId ? "selected" : "" },
    el("td", {}, when(job.created_at)),
    el("td", {}, job.kind),
    el("td", {}, job.queue),
    el("td", { class: "status status-" + job.status }, job.status),
    el("td", { class: "num attempts" }, job.attempts + " / " + job.max_attempts),
    el("td", { class: "error" }, job.error || ""),
    el("td", { class: "actions" }, actions(job)));
}

function findRow(id) { return $("job-rows").querySelector('tr[data-id="' + CSS.escape(id) + '"]'); }

// A live event: the job's row and, when it is open, its detail.
export function onEvent(ev) {
  updateRow({ id: ev.job_id, status: ev.status, attempts: ev.attempts, error: ev.error });
  if (ev.job_id === detailId) {
    detailEvents.push(ev);
    renderEvents();
    if (FINAL.includes(ev.status)) loadDetail(ev.job_id);
  }
}

function updateRow(job) {
  const tr = findRow(job.id);
  if (!tr) return;
  const status = tr.querySelector("td.status");
  status.textContent = job.status;
  status.className = "status status-" + job.status;
  const attempts = tr.querySelector("td.attempts");
  attempts.textContent = job.attempts + attempts.textContent.replace(/^\d+/, "");
  tr.querySelector("td.error").textContent = job.error || "";
  tr.querySelector("td.actions").replaceChildren(...actions(job).filter(Boolean));
}

async function retry(id) {
  const job = await act("Retried", () => call("POST", "/jobs/" + id + "/retry"));
  if (!job) return;
  flash("Retried as job " + job.id);
  const placeholder = $("job-rows").querySelector("tr:not([data-id])");
  if (placeholder) placeholder.remove();
  $("job-rows").prepend(row(job));
  // An event may have come before the row was there: start from now.
  const now = await call("GET", "/jobs/" + job.id).catch(() => null);
  if (now) updateRow(now);
  openDetail(job.id);
}

async function cancel(id) {
  const job = await act("Cancel requested", () => call("POST", "/jobs/" + id + "/cancel"));
  if (job) updateRow(job);
}

async function discard(id) {
  if (!await confirmAction("Discard this job and its results? This cannot be undone.")) return;
  const done = await act("Discarded", () => call("DELETE", "/jobs/" + id).then(() => true));
  if (!done) return;
  const tr = findRow(id);
  if (tr) tr.remove();
  if (detailId === id) { detailId = null; $("job-detail").hidden = true; }
}

async function bulk(action) {
  const f = filter();
  if (!Object.keys(f).length) {
    flash("Narrow the search first: a bulk action needs at least one filter.", true);
    return;
  }
  const count = $("jobs-total").textContent || "the jobs that match";
  if (!await confirmAction("Apply \u201c" + action + "\u201d to every job the search matches (" + count + ")?")) return;
  const out = await act("Bulk " + action, () => call("POST", "/jobs/bulk", { action, filter: f }));
  if (!out) return;
  flash("Bulk " + action + ": " + out.affected + " jobs changed" + (out.more ? " (more match: run it again)" : ""));
  search(false);
}

async function openDetail(id) {
  detailId = id;
  detailEvents = [];
  detailJob = null;
  for (const tr of $("job-rows").querySelectorAll("tr.selected")) tr.classList.remove("selected");
  const tr = findRow(id);
  if (tr) tr.classList.add("selected");
  await loadDetail(id);
  $("job-detail").scrollIntoView({ block: "nearest" });
}

async function loadDetail(id) {
  let job, attempts, results;
  try {
    [job, attempts, results] = await Promise.all([
      call("GET", "/jobs/" + id),
      call("GET", "/jobs/" + id + "/attempts"),
      call("GET", "/jobs/" + id + "/results?size=20"),
    ]);
  } catch (err) {
    flash("Cannot load job " + id + ": " + err.message, true);
    return;
  }
  if (detailId !== id) return;
  const box = $("job-detail");
  const facts = [
    ["id", job.id], ["kind", job.kind], ["queue", job.queue + " (priority " + job.priority + ")"],
    ["status", el("span", { class: "status-" + job.status, id: "detail-status" }, job.status)],
    ["attempts", job.attempts + " / " + job.max_attempts], ["error", job.error],
    ["created", when(job.created_at)], ["run at", when(job.run_at)], ["started", when(job.started_at)],
    ["finished", when(job.finished_at)], ["workflow", job.workflow_id], ["schedule", job.schedule_id],
    ["retry of", job.retry_of && el("button", { class: "plain small", onclick: () => openDetail(job.retry_of) }, job.retry_of)],
  ].filter(([, v]) => v);
  box.replaceChildren(
    el("div", { class: "row-head" }, el("h2", {}, "Job " + job.kind),
      el("div", { class: "buttons" }, actions(job).slice(1),
        el("button", { class: "plain small", onclick: () => { detailId = null; box.hidden = true; } }, "Close"))),
    el("dl", {}, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
    el("h3", {}, "Parameters"), el("pre", {}, JSON.stringify(job.params, null, 2)),
    el("h3", {}, "Attempts"),
    attempts.length
      ? el("div", { class: "scroll" }, el("table", {}, el("thead", {}, el("tr", {}, ["#", "worker", "started", "finished", "outcome", "error"].map((h) => el("th", {}, h)))),
        el("tbody", { id: "detail-attempts" }, attempts.map((a) => el("tr", {}, el("td", {}, a.attempt), el("td", {}, a.worker),
          el("td", {}, when(a.started_at)), el("td", {}, when(a.finished_at)),
          el("td", { class: "status-" + a.outcome }, a.outcome || "running"), el("td", { class: "error" }, a.error || ""))))))
      : el("p", { class: "muted" }, "no attempt yet"),
    el("h3", {}, "Events"), el("ol", { class: "events", id: "detail-events" }),
    el("h3", {}, "Results"),
    el("div", { id: "detail-results" }, results.items.length
      ? results.items.map((r) => el("pre", {}, "attempt " + r.attempt + ": " + JSON.stringify(r.data, null, 2)))
      : el("p", { class: "muted" }, "no results")));
  box.hidden = false;
  detailJob = job;
  renderEvents();
}

// The job's timeline: what its row says happened, then what arrived live
// while the detail was open.
function renderEvents() {
  const list = $("detail-events");
  if (!list || !detailJob) return;
  const job = detailJob;
  const known = [["created", job.created_at], ["due", job.run_at], ["started", job.started_at],
    ["cancel requested", job.cancel_requested_at], ["finished " + job.status, job.finished_at]]
    .filter(([, at]) => at).map(([what, at]) => el("li", {}, when(at) + " \u2014 " + what));
  const live = detailEvents.map((ev) => el("li", { class: "status-" + ev.status }, when(ev.at) + " \u2014 live: " + ev.status +
    (ev.progress ? " " + ev.progress + "%" : "") + (ev.error ? " (" + ev.error + ")" : "")));
  list.replaceChildren(...known, ...live);
}
