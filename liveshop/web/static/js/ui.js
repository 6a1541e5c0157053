// DOM helpers shared by the pages. Text from users is only ever set as text (never HTML).

import { explain } from "./api.js";

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** el("button", {class: "x", onclick: f}, "text", child) */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** A short message for everyone (and screen readers: the region is aria-live). */
export function toast(text, kind = "info") {
  let region = $("#toasts");
  if (!region) {
    region = el("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(region);
  }
  const item = el("div", { class: `toast toast-${kind}` }, text);
  region.append(item);
  setTimeout(() => item.remove(), 4000);
}

/** "1:05" / "12:00:05" for a number of seconds. */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${rest}` : `${m}:${rest}`;
}

export function timeOfDay(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

export function dateTime(epochSeconds) {
  return new Date(epochSeconds * 1000).toLocaleString([], {
    dateStyle: "medium",
    timeStyle: "short",
  });
}

/** Show the connection state in the header badge (#conn). */
export function connectionBadge(live) {
  const badge = $("#conn");
  if (!badge) return;
  live.onStatus((status) => {
    const words = {
      connecting: "Connecting…",
      online: "Live",
      reconnecting: "Reconnecting…",
      signed_out: "Signed out",
    };
    badge.textContent = words[status] || status;
    badge.dataset.status = status;
  });
}

/** Disable a button while `work` runs (no double submits), then re-enable it. */
export async function busy(button, work) {
  if (button.disabled) return undefined;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

export function formData(form) {
  return Object.fromEntries(new FormData(form).entries());
}

/** The header's signed-in line and a sign-in form for pasted tokens (staff pages). */
export function signInForm(onToken, message) {
  const input = el("input", { id: "token-input", name: "token", type: "password", required: true,
    autocomplete: "off" });
  const form = el("form", { class: "card signin", "aria-labelledby": "signin-title" },
    el("h2", { id: "signin-title" }, "Sign in"),
    el("p", {}, message),
    el("label", { for: "token-input" }, "Access token"),
    input,
    el("button", { type: "submit", class: "primary" }, "Sign in"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onToken(input.value.trim());
  });
  return form;
}

/** Run `work`; say how it went in a toast (`done`: a text, or a function of the result).
 *  The result, or null after an error (already shown). */
export async function attempt(work, done) {
  try {
    const result = await work();
    if (done) toast(typeof done === "function" ? done(result) : done);
    return result;
  } catch (error) {
    toast(explain(error), "error");
    return null;
  }
}

/** Keep one node per key in `list`, in order. Existing nodes are refreshed in place
 *  (`node.refresh(item)`), not rebuilt, so a tally ticking many times a second neither takes
 *  the focus nor re-enables a busy button. */
export function sync(list, items, keyOf, make) {
  const old = new Map([...list.children].map((node) => [node.dataset.key, node]));
  const nodes = items.map((item) => {
    const key = String(keyOf(item));
    let node = old.get(key);
    if (!node) {
      node = make(item);
      node.dataset.key = key;
    }
    if (node.refresh) node.refresh(item);
    return node;
  });
  const keep = new Set(nodes);
  for (const node of old.values()) if (!keep.has(node)) node.remove();
  nodes.forEach((node, i) => {
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
}
