// The monitor page: signing in and out, the tabs (kept in the address's
// fragment, so a reload or a link opens the same one), refreshing what the
// open tab shows, and the live job events.
"use strict";

import { $, call, dropTokens, flash, jobEvents, keepTokens, onSignedOut, token } from "/monitor/api.js";
import * as overview from "/monitor/charts.js";
import * as jobs from "/monitor/jobs.js";
import * as ops from "/monitor/ops.js";

// Each tab: how to show it, and how often to refresh it while it is open
// (the Jobs tab is kept current by the WebSocket instead).
const TABS = {
  overview: { show: overview.show, every: 5000 },
  jobs: { show: jobs.show, every: 0 },
  queues: { show: ops.showQueues, every: 2000 },
  workers: { show: ops.showWorkers, every: 2000 },
  schedules: { show: ops.showSchedules, every: 10000 },
};
let current = null;
let timer = null;
let stopEvents = null;
let admin = false;

function signedOut() {
  clearTimeout(timer);
  if (stopEvents) stopEvents();
  stopEvents = null;
  dropTokens();
  for (const id of ["tabs", "logout", "live"]) $(id).hidden = true;
  for (const name of Object.keys(TABS)) $(name).hidden = true;
  $("who").textContent = "";
  $("login").hidden = false;
}

async function signedIn() {
  $("login").hidden = true;
  $("logout").hidden = false;
  try {
    const me = await call("GET", "/auth/me");
    $("who").textContent = ((me.user || {}).username || "") + ((me.tenant || {}).slug ? " @ " + me.tenant.slug : "");
    // Queues and workers are for platform administrators: the monitor's
    // cluster section is there only for them.
    admin = Boolean((await call("GET", "/monitor")).cluster);
  } catch (err) {
    if (!token()) return;
    flash(err.message, true);
  }
  for (const b of $("tabs").querySelectorAll("[data-admin]")) b.hidden = !admin;
  $("tabs").hidden = false;
  $("live").hidden = false;
  stopEvents = jobEvents(jobs.onEvent, (up) => { $("live").className = up ? "live" : "live off"; $("live").textContent = up ? "live" : "reconnecting"; });
  open(fromHash(), false);
}

function fromHash() {
  const name = location.hash.slice(1);
  return TABS[name] && (admin || !$("tab-" + name).hasAttribute("data-admin")) ? name : "overview";
}

async function open(name, focus) {
  current = name;
  for (const b of $("tabs").querySelectorAll("[role=tab]")) {
    const on = b.dataset.tab === name;
    b.setAttribute("aria-selected", String(on));
    b.tabIndex = on ? 0 : -1;
    $(b.dataset.tab).hidden = !on;
  }
  if (location.hash.slice(1) !== name) history.replaceState(null, "", "#" + name);
  if (focus) $("tab-" + name).focus();
  clearTimeout(timer);
  await refresh(name);
}

async function refresh(name) {
  if (current !== name || !token()) return;
  try {
    await TABS[name].show();
    document.body.dataset.loaded = name;
  } catch (err) {
    if (token()) flash(err.message, true);
  }
  if (TABS[name].every && current === name) timer = setTimeout(() => refresh(name), TABS[name].every);
}

// Tabs: click, or the arrow keys, Home and End (the ARIA tabs pattern).
$("tabs").addEventListener("click", (e) => {
  const tab = e.target.closest("[role=tab]");
  if (tab) open(tab.dataset.tab, false);
});
$("tabs").addEventListener("keydown", (e) => {
  const tabs = [...$("tabs").querySelectorAll("[role=tab]")].filter((b) => !b.hidden);
  const at = tabs.findIndex((b) => b.dataset.tab === current);
  const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[e.key];
  if (to === undefined) return;
  e.preventDefault();
  open(tabs[(to + tabs.length) % tabs.length].dataset.tab, true);
});
window.addEventListener("hashchange", () => { if (token() && fromHash() !== current) open(fromHash(), false); });

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { username: form.get("username"), password: form.get("password") };
  if (form.get("tenant")) body.tenant = form.get("tenant");
  $("login-error").textContent = "";
  const res = await fetch("/api/v1/auth/login", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  let data = {};
  try { data = await res.json(); } catch (_) { /* no body */ }
  if (!res.ok) { $("login-error").textContent = data.detail || res.statusText; return; }
  keepTokens(data);
  event.target.reset();
  signedIn();
});

$("logout").addEventListener("click", async () => {
  try { await call("POST", "/auth/logout"); } catch (_) { /* signed out either way */ }
  signedOut();
});

onSignedOut(signedOut);
overview.init();
jobs.init();
if (token()) signedIn(); else signedOut();
