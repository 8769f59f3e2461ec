// The Queues, Workers and Schedules tabs: what a platform administrator
// (queues, workers) or the tenant (schedules) can see and do.
"use strict";

import { $, el, call, act, confirmAction, when, ago } from "/monitor/api.js";

const empty = (cols, text) => [el("tr", {}, el("td", { colspan: String(cols), class: "muted" }, text))];

export async function showQueues() {
  const queues = await call("GET", "/queues");
  $("queue-rows").replaceChildren(...(queues.length ? queues.map((q) => {
    const name = encodeURIComponent(q.name);
    const toggle = q.paused
      ? el("button", { class: "small", "data-action": "resume", onclick: () => queueAction(q.name, "resume", "Resumed") }, "Resume")
      : el("button", { class: "plain small", "data-action": "pause", onclick: () => queueAction(q.name, "pause", "Paused") }, "Pause");
    const purge = el("button", { class: "plain danger small", "data-action": "purge", onclick: async () => {
      if (!await confirmAction("Purge queue " + q.name + "? Every job waiting in it ends cancelled.")) return;
      const out = await act("Purged " + q.name, () => call("POST", "/queues/" + name + "/purge"));
      if (out) showQueues();
    } }, "Purge");
    const limits = [q.rate_limit, q.tenant_rate_limit && q.tenant_rate_limit + " per tenant"].filter(Boolean).join(", ");
    return el("tr", { "data-queue": q.name },
      el("td", {}, q.name),
      el("td", { class: "num waiting" }, q.waiting),
      el("td", { class: "num" }, q.running),
      el("td", { class: "num" }, q.scheduled),
      el("td", { class: "num depth" }, q.depth === null ? "not answering" : q.depth),
      el("td", { class: "num" }, q.consumers),
      el("td", {}, limits || "none"),
      el("td", { class: "state " + (q.paused ? "paused" : "alive") }, q.paused ? "paused" : "running"),
      el("td", { class: "actions" }, el("div", { class: "buttons" }, toggle, purge)));
  }) : empty(9, "no queue is configured")));
}

async function queueAction(queue, action, said) {
  const out = await act(said + " " + queue, () => call("POST", "/queues/" + encodeURIComponent(queue) + "/" + action));
  if (out !== undefined) showQueues();
}

export async function showWorkers() {
  const workers = await call("GET", "/workers");
  $("worker-rows").replaceChildren(...(workers.length ? workers.map((w) => {
    const id = encodeURIComponent(w.id);
    const size = el("input", { type: "number", min: "1", max: String(w.max_concurrency), value: String(w.concurrency),
      "aria-label": "concurrency of " + w.id });
    const setSize = el("button", { class: "plain small", "data-action": "concurrency", onclick: async () => {
      const out = await act("Concurrency of " + w.id + " set to " + size.value,
        () => call("PUT", "/workers/" + id + "/concurrency", { concurrency: Number(size.value) }));
      if (out !== undefined) showWorkers();
    } }, "Set");
    const stop = el("button", { class: "plain danger small", "data-action": "shutdown", onclick: async () => {
      if (!await confirmAction("Shut down worker " + w.id + "? It finishes its running jobs first.")) return;
      const out = await act("Shutdown asked of " + w.id, () => call("POST", "/workers/" + id + "/shutdown"));
      if (out !== undefined) showWorkers();
    } }, "Shut down");
    return el("tr", { "data-worker": w.id },
      el("td", {}, w.id, el("div", { class: "muted" }, w.host + " pid " + w.pid)),
      el("td", {}, w.queues.join(", ")),
      el("td", { class: "num" }, w.active.length, w.active.length ? el("div", { class: "muted" }, w.active.join(" ")) : ""),
      el("td", { class: "num" }, w.concurrency + " of at most " + w.max_concurrency),
      el("td", { class: "num" }, w.processed),
      el("td", { class: "num" }, w.failed),
      el("td", {}, when(w.started_at)),
      el("td", {}, ago(w.last_beat_at)),
      el("td", { class: "actions" }, el("div", { class: "buttons" }, size, setSize, stop)));
  }) : empty(9, "no worker has a heartbeat")));
}

export async function showSchedules() {
  const page = await call("GET", "/schedules?size=100");
  $("schedule-rows").replaceChildren(...(page.items.length ? page.items.map((s) => {
    const id = encodeURIComponent(s.id);
    const run = el("button", { class: "small", "data-action": "run", onclick: async () => {
      const job = await act("Ran " + s.name, () => call("POST", "/schedules/" + id + "/run"));
      if (job) showSchedules();
    } }, "Run now");
    const toggle = el("button", { class: "plain small", "data-action": s.enabled ? "disable" : "enable", onclick: async () => {
      const out = await act((s.enabled ? "Disabled " : "Enabled ") + s.name,
        () => call("POST", "/schedules/" + id + "/" + (s.enabled ? "disable" : "enable")));
      if (out !== undefined) showSchedules();
    } }, s.enabled ? "Disable" : "Enable");
    return el("tr", { "data-schedule": s.id },
      el("td", {}, s.name), el("td", {}, el("code", {}, s.cron), " ", el("span", { class: "muted" }, s.timezone)),
      el("td", {}, s.kind),
      el("td", { class: s.enabled ? "alive" : "paused" }, s.enabled ? "enabled" : "disabled"),
      el("td", {}, when(s.last_run_at)), el("td", {}, when(s.next_run_at)),
      el("td", { class: "actions" }, el("div", { class: "buttons" }, run, toggle)));
  }) : empty(7, "no schedule yet")));
}
