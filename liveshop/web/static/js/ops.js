// Operations dashboard: sales, audiences and top lists every 5 s (GET /ops/overview), and
// each channel's emergency controls with their audit log (POST /channels/{id}/controls/
// {action}, GET /channels/{id}/audit). Needs a token with the service role on every room.

import { explain, hasRole, http, money, session, signIn, signOut } from "./api.js";
import { $, busy, dateTime, el, signInForm, timeOfDay, toast } from "./ui.js";

const POLL_MS = 5_000;
const AUDIT_PAGE = 500;
const AUDIT_KEEP = 200; // entries shown per channel, newest first
const SIGNED_OUT = new Set(["unauthenticated", "token_invalid", "token_expired", "forbidden"]);

// `ask` words the confirmation (destructive controls only): what viewers will notice.
const CONTROLS = [
  { action: "cut_to_slate", label: "Cut to slate", danger: true,
    ask: (c) => `Cut ${c.title} to the slate? Every viewer sees the channel's artwork until you resume the schedule.` },
  { action: "resume", label: "Resume schedule" },
  { action: "end_show", label: "End show", danger: true,
    ask: (c) => `End ${c.now ? `"${c.now.title}"` : "the show on air"} on ${c.title} now? An ended show cannot go back on air.` },
  { action: "freeze_chat", label: "Freeze chat", danger: true,
    ask: (c) => `Freeze chat on ${c.title}? Only staff can write until you unfreeze it.` },
  { action: "unfreeze_chat", label: "Unfreeze chat" },
];
const SWITCH = { action: "switch_stream", label: "Switch to stream", danger: true,
  ask: (c, room) => `Put room ${room}'s stream on ${c.title} for every viewer?` };
const LABELS = Object.fromEntries([...CONTROLS, SWITCH].map((c) => [c.action, c.label]));

const cards = new Map(); // channel id → its controls card (built once: typed reasons survive refreshes)
const drawn = new Map(); // region → JSON of what it shows (redraw only on change)
let timer = null;
let inFlight = null;
let again = false;
let failing = false;

const windowSelect = $("#window");
const hours = () => windowSelect.value;
const count = (n) => Number(n).toLocaleString();

// -- sign-in --------------------------------------------------------------------------------

const isService = (who) => hasRole(who, "*", ["service"]);

function askToSignIn(message) {
  clearTimeout(timer);
  $("#dashboard").classList.add("hidden");
  $("#sign-out").classList.add("hidden");
  $("#signin").replaceChildren(signInForm((token) => {
    try {
      if (!isService(signIn(token))) {
        toast("That token has no service role on every room ('*').", "error");
        return;
      }
      start();
    } catch (error) {
      toast(explain(error), "error");
    }
  }, message));
  $("#token-input")?.focus();
}

function start() {
  $("#signin").replaceChildren();
  $("#dashboard").classList.remove("hidden");
  $("#sign-out").classList.remove("hidden");
  refresh();
}

$("#sign-out").addEventListener("click", () => {
  signOut();
  askToSignIn("Signed out. Paste an operator token to continue.");
});

// -- rendering helpers ----------------------------------------------------------------------

/** Money per currency, one line each (currencies are never added together). */
function gmvLines(gmv) {
  const entries = Object.entries(gmv || {}).sort(([a], [b]) => a.localeCompare(b));
  return entries.length ? entries.map(([cur, minor]) => el("div", {}, money(minor, cur))) : ["—"];
}

/** A table; `columns` are [label, numeric?], rows arrays of cell contents. */
function table(labelledBy, columns, rows, empty) {
  if (!rows.length) return el("p", { class: "muted" }, empty);
  const cls = (numeric) => (numeric ? "num" : undefined);
  return el("table", { "aria-labelledby": labelledBy },
    el("thead", {}, el("tr", {}, columns.map(([label, numeric]) => el("th", { scope: "col", class: cls(numeric) }, label)))),
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((cell, i) => el("td", { class: cls(columns[i][1]) }, cell))))));
}

/** Replace a region's content only when its data changed (no flicker, no focus loss). */
function draw(key, node, data, build) {
  const json = JSON.stringify(data);
  if (drawn.get(key) === json) return;
  drawn.set(key, json);
  node.replaceChildren(...[build()].flat());
}

function render(data) {
  draw("gmv", $("#gmv"), data.gmv_minor, () => gmvLines(data.gmv_minor));
  $("#orders").textContent = count(data.orders);
  $("#buyers").textContent = count(data.buyers);
  $("#sales-title").textContent = `Sales, ${windowSelect.selectedOptions[0].textContent.toLowerCase()}`;

  const channels = data.channels || [];
  const known = channels.filter((c) => typeof c.viewers === "number");
  const silent = channels.filter((c) => c.now && c.viewers === null).length;
  $("#viewers-total").textContent = count(known.reduce((sum, c) => sum + c.viewers, 0));
  $("#viewers-note").textContent = silent ? `(${silent} channel${silent > 1 ? "s" : ""} not reporting)` : "";
  draw("viewers", $("#viewers [data-rows]"), channels, () => table("viewers-title",
    [["Channel"], ["On now"], ["Viewers", true]],
    channels.map((c) => [c.channel.title, c.now ? c.now.title : el("span", { class: "muted" }, "Between shows"),
      c.viewers === null ? "—" : count(c.viewers)]),
    "No channels."));

  draw("shows", $("#top-shows [data-rows]"), data.top_shows, () => table("top-shows-title",
    [["Show"], ["GMV", true], ["Orders", true]],
    data.top_shows.map((s) => [[s.title, el("div", { class: "muted" }, s.channel_id)], gmvLines(s.gmv_minor), count(s.orders)]),
    "No sales in this window."));
  draw("products", $("#top-products [data-rows]"), data.top_products, () => table("top-products-title",
    [["Product"], ["Units", true], ["GMV", true]],
    data.top_products.map((p) => [[p.title || p.product_id, el("div", { class: "muted" }, p.sku)], count(p.units), gmvLines(p.gmv_minor)]),
    "No sales in this window."));
  draw("creators", $("#top-creators [data-rows]"), data.top_creators, () => table("top-creators-title",
    [["Creator"], ["GMV", true], ["Orders", true]],
    data.top_creators.map((c) => [c.creator_id, gmvLines(c.gmv_minor), count(c.orders)]),
    "No sales in this window."));

  renderControls(channels);
}

// -- emergency controls ---------------------------------------------------------------------

function renderControls(channels) {
  const list = $("#control-list");
  list.querySelector(":scope > p")?.remove(); // the "No channels." placeholder
  const seen = new Set();
  channels.forEach((entry, index) => {
    const id = entry.channel.id;
    seen.add(id);
    const card = cards.get(id) || buildCard(id);
    Object.assign(card, { title: entry.channel.title, now: entry.now });
    card.heading.textContent = entry.channel.title;
    card.status.replaceChildren(...describe(entry));
    // Cards are updated in place and moved only when the order changes: moving a node
    // drops keyboard focus, and an operator may be typing a reason in it.
    if (list.children[index] !== card.root) list.insertBefore(card.root, list.children[index] || null);
    if (card.details.open) loadAudit(card);
  });
  for (const [id, card] of cards) {
    if (!seen.has(id)) {
      card.root.remove();
      cards.delete(id);
    }
  }
  if (!channels.length) list.replaceChildren(el("p", { class: "muted" }, "No channels."));
}

function describe({ now, viewers, override }) {
  const parts = [now
    ? el("div", {}, "On now: ", el("strong", {}, now.title),
      el("span", { class: "muted" }, ` until ${timeOfDay(now.ends_at)} · ${viewers === null ? "viewers unknown" : `${count(viewers)} watching`}`))
    : el("div", { class: "muted" }, "Between shows (replays).")];
  if (override) {
    const what = override.kind === "slate" ? "Cut to slate" : `Showing room ${override.room_id}'s stream`;
    parts.push(el("div", { class: "warn" }, `${what} by ${override.by} at ${dateTime(override.at)}: ${override.reason}`));
  }
  return parts;
}

function buildCard(id) {
  const key = `ctl-${id}`;
  const card = { id, title: id, now: null, entries: [], lastId: null, loading: null };
  card.heading = el("h3", { id: `${key}-title` }, id);
  card.status = el("div", { class: "stack" });
  card.error = el("p", { id: `${key}-error`, class: "warn", role: "alert" });
  card.reason = el("input", { id: `${key}-reason`, type: "text", maxlength: 500, required: true,
    "aria-required": "true", "aria-describedby": `${key}-error`, autocomplete: "off" });
  card.room = el("input", { id: `${key}-room`, type: "text", maxlength: 64, autocomplete: "off",
    pattern: "[A-Za-z0-9_.:\\-]+", "aria-describedby": `${key}-error` });
  card.audit = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  card.details = el("details", {}, el("summary", {}, "Audit log"), card.audit);
  card.details.addEventListener("toggle", () => card.details.open && loadAudit(card));
  for (const input of [card.reason, card.room]) {
    input.addEventListener("input", () => {
      input.removeAttribute("aria-invalid");
      card.error.textContent = "";
    });
  }
  const button = (spec) => {
    const node = el("button", { type: "button", class: spec.danger ? "danger" : undefined }, spec.label);
    node.addEventListener("click", () => control(card, spec, node));
    return node;
  };
  card.root = el("article", { class: "card stack", "data-channel": id, "aria-labelledby": `${key}-title` },
    card.heading,
    card.status,
    el("label", { for: `${key}-reason` }, "Reason (required, audited)"),
    card.reason,
    card.error,
    el("div", { class: "row" }, CONTROLS.map(button)),
    el("div", { class: "row" },
      el("div", { class: "grow" }, el("label", { for: `${key}-room` }, "Room to put on air"), card.room),
      button(SWITCH)),
    card.details);
  cards.set(id, card);
  return card;
}

function refuse(card, input, message) {
  card.error.textContent = message;
  input.setAttribute("aria-invalid", "true");
  input.focus();
}

/** A `<dialog>` asking to confirm; resolves true for "Confirm". */
function confirmed(text, label) {
  const dialog = $("#confirm");
  if (typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(text));
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = label;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
  });
}

async function control(card, spec, button) {
  // Every control is audited with a reason: refuse to send without one.
  const reason = card.reason.value.trim();
  if (!reason) return refuse(card, card.reason, "Give a reason first: it goes into the audit log.");
  const body = { reason };
  if (spec.action === "switch_stream") {
    body.room_id = card.room.value.trim();
    if (!body.room_id) return refuse(card, card.room, "Which room's stream? Enter its id.");
  }
  // Name the show the operator saw, so a show that just started is not ended by mistake.
  if (spec.action === "end_show" && card.now) body.show_id = card.now.show_id;
  if (spec.ask && !(await confirmed(spec.ask(card, body.room_id), spec.label))) return;
  await busy(button, async () => {
    try {
      await http("POST", `/channels/${encodeURIComponent(card.id)}/controls/${spec.action}`, body);
      toast(`${spec.label}: done on ${card.title}.`);
      card.reason.value = "";
      if (card.details.open) loadAudit(card);
      refresh();
    } catch (error) {
      if (error.code === "unauthenticated" || error.code === "token_expired") {
        askToSignIn("Your session ended. Sign in again to use the controls.");
        return;
      }
      toast(`${spec.label} failed on ${card.title}: ${explain(error)}`, "error");
    }
  });
}

// -- audit log: fetched once, then only what is new (it pages oldest first) -------------------

function loadAudit(card) {
  card.loading ??= (async () => {
    try {
      for (;;) {
        const query = new URLSearchParams({ limit: String(AUDIT_PAGE) });
        if (card.lastId !== null) query.set("after", String(card.lastId));
        const page = await http("GET", `/channels/${encodeURIComponent(card.id)}/audit?${query}`);
        card.entries.push(...page);
        if (page.length) card.lastId = page[page.length - 1].id;
        if (page.length < AUDIT_PAGE) break;
      }
      card.entries = card.entries.slice(-AUDIT_KEEP);
      const titleId = `ctl-${card.id}-title`;
      draw(`audit-${card.id}`, card.audit, card.lastId, () => table(titleId,
        [["When"], ["Control"], ["By"], ["Reason"]],
        [...card.entries].reverse().map((e) => [dateTime(e.at), LABELS[e.action] || e.action, e.by, e.reason]),
        "No control has been used on this channel."));
    } catch (error) {
      drawn.delete(`audit-${card.id}`);
      card.audit.replaceChildren(el("p", { class: "warn" }, `Could not load the audit log: ${explain(error)}`));
    } finally {
      card.loading = null;
    }
  })();
  return card.loading;
}

// -- refresh every 5 s while the page is visible --------------------------------------------

async function poll() {
  try {
    render(await http("GET", `/ops/overview?hours=${hours()}`));
    if (failing) toast("Updating again.");
    failing = false;
    $("#ops-status").textContent = `Updated at ${new Date().toLocaleTimeString()}.`;
  } catch (error) {
    if (SIGNED_OUT.has(error.code)) {
      askToSignIn(error.code === "forbidden"
        ? "This page needs a token with the service role on every room ('*')."
        : "Your session ended. Sign in again.");
      return false;
    }
    if (!failing) toast(`Could not refresh: ${explain(error)}`, "error");
    failing = true;
    $("#ops-status").textContent = `Not updating (${explain(error)}); numbers may be stale. Retrying…`;
  }
  return true;
}

/** One overview request at a time; asked again meanwhile, it runs once more after. */
async function refresh() {
  clearTimeout(timer);
  if (inFlight) {
    again = true;
    return;
  }
  if (document.hidden) return; // nobody looking: resume when the page shows again
  inFlight = poll();
  const keepGoing = await inFlight;
  inFlight = null;
  if (!keepGoing) return;
  if (again) {
    again = false;
    refresh();
  } else {
    timer = setTimeout(refresh, POLL_MS);
  }
}

windowSelect.addEventListener("change", refresh);
document.addEventListener("visibilitychange", () => {
  if (!document.hidden && !$("#dashboard").classList.contains("hidden")) refresh();
});

if (isService(session())) start();
else askToSignIn("The operations dashboard needs a token with the service role on every room ('*').");
