// The monitor's talk with the api: tokens (kept in the tab's
// sessionStorage), calls that refresh an expired access token once, the
// tenant's job WebSocket, and the small DOM helpers every tab uses.
"use strict";

const base = "/api/v1";
const store = window.sessionStorage;
let signedOutHook = () => {};

export const $ = (id) => document.getElementById(id);

export function onSignedOut(hook) { signedOutHook = hook; }

export function token() { return store.getItem("access_token"); }

export function keepTokens(body) {
  store.setItem("access_token", body.access_token);
  store.setItem("refresh_token", body.refresh_token);
}

export function dropTokens() {
  store.removeItem("access_token");
  store.removeItem("refresh_token");
}

export async function refreshTokens() {
  const refresh = store.getItem("refresh_token");
  if (!refresh) return false;
  const res = await fetch(base + "/auth/refresh", { method: "POST",
    headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: refresh }) });
  if (!res.ok) return false;
  keepTokens(await res.json());
  return true;
}

// Calls the api; answers the JSON body (null for 204) or throws an Error
// whose message is the problem's detail.
export async function call(method, path, body, retried) {
  const headers = {};
  if (token()) headers.authorization = "Bearer " + token();
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401 && !retried && await refreshTokens()) return call(method, path, body, true);
  if (res.status === 401) { signedOutHook(); throw new Error("signed out"); }
  if (!res.ok) {
    let detail = res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (_) { /* not a problem document */ }
    throw new Error(detail);
  }
  return res.status === 204 ? null : res.json();
}

// The tenant's job events, live: calls `onEvent` with each event, `onState`
// with true/false as the socket opens and closes; reconnects (refreshing
// the token) until `stop` is called.
export function jobEvents(onEvent, onState) {
  let socket = null;
  let stopped = false;
  let delay = 500;
  const open = () => {
    if (stopped || !token()) return;
    const url = (location.protocol === "https:" ? "wss:" : "ws:") + "//" + location.host + base + "/jobs/ws";
    socket = new WebSocket(url, ["bearer", token()]);
    socket.onopen = () => { delay = 500; onState(true); };
    socket.onmessage = (msg) => { try { onEvent(JSON.parse(msg.data)); } catch (_) { /* not an event */ } };
    socket.onclose = async () => {
      onState(false);
      if (stopped) return;
      await refreshTokens().catch(() => false);
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return () => { stopped = true; if (socket) socket.close(); };
}

export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function when(iso) { return iso ? new Date(iso).toLocaleString() : ""; }

export function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

let flashTimer = null;
export function flash(message, bad) {
  const box = $("flash");
  box.textContent = message;
  box.className = "flash" + (bad ? " bad" : "");
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { box.textContent = ""; }, 8000);
}

// Runs an action, saying what happened (or what went wrong) in the flash line.
export async function act(what, action) {
  try {
    const out = await action();
    flash(what);
    return out;
  } catch (err) {
    flash(what + " failed: " + err.message, true);
    return undefined;
  }
}

// Asks in the page's own dialog (keyboard-reachable, and no native dialog
// that would block the page); resolves true when the operator goes ahead.
export function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}
