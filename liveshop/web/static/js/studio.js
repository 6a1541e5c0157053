// Host studio: go live from the camera, watch stream health and live analytics, pin and
// queue products, run deals, auctions, polls, giveaways and Q&A, fire cues and moderate chat.
// Uses only what docs/protocol.md documents (room operations over the WebSocket).

import {
  explain, fromMinor, hasRole, http, minorDigits, money, SELLERS, session, signIn, STAFF, toMinor,
} from "./api.js";
import { ChatLog } from "./chat.js";
import { Live } from "./live.js";
import { publish } from "./player.js";
import { RoomModel, Redraw } from "./room.js";
import { setError } from "./shop.js";
import {
  $, $$, attempt, busy, clock, connectionBadge, dateTime, el, formData, signInForm, sync, timeOfDay,
  toast,
} from "./ui.js";

const room = decodeURIComponent(location.pathname.split("/")[3] || "");
const live = new Live({ guest: false });
const ALERTS = {
  no_input: "No input: nobody is sending video, viewers see the slate.",
  no_video: "The source sends no video (audio only?).",
  undecodable: "Data arrives but no picture decodes from it.",
  encoder_behind: "The encoder is falling behind.",
  rungs_shed: "The top quality levels are off: the encoder could not keep up. They come back once there is room.",
  frames_dropped: "Frames are being dropped.",
  long_keyframe_interval: "Keyframes are too far apart: set the encoder's keyframe interval to 1–2 s.",
};

// The page's own state; the room's is `model` (room.js, shared with the viewer page).
const S = {
  me: null, canSell: false, report: {}, analyticsAt: 0, publishing: null, slowMode: "0",
};
let model = new RoomModel();

// -- small helpers ---------------------------------------------------------------------------

const int = (value) => (value === "" || value === undefined ? undefined : Number(value));
const shown = (value) => (value === undefined || value === null || value === false ? "—" : String(value));
const text = (value) => (value && typeof value === "object" ? explain(value) : String(value));
let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

/** Run one operation from `button`: disabled meanwhile, the outcome in a toast; the result or null. */
function act(button, op, fields, done) {
  return busy(button, () => attempt(() => live.request(op, { room, ...fields }), done));
}

function button(label, onclick, attrs = {}) {
  const node = el("button", { type: "button", ...attrs }, label);
  node.addEventListener("click", () => onclick(node));
  return node;
}

function onSubmit(selector, handler) {
  const form = $(selector);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    handler(formData(form), event.submitter || form.querySelector("button[type=submit]"), form);
  });
}

// -- camera ----------------------------------------------------------------------------------

function showOnAir() {
  const on = Boolean(S.publishing);
  const go = $("#go-live");
  go.textContent = on ? "Stop" : "Go live";
  go.className = on ? "danger" : "primary";
  $("#onair").classList.toggle("hidden", !on);
}

async function toggleLive(go) {
  await busy(go, async () => {
    try {
      if (S.publishing) {
        const was = S.publishing;
        S.publishing = null;
        await was.stop();
        toast("Stopped publishing.");
      } else {
        S.publishing = await publish(room, $("#preview"));
        watchPublisher(S.publishing);
        toast("You are live.");
      }
    } catch (error) {
      toast(error.name === "NotAllowedError" ? "Allow the camera and microphone to go live."
        : explain(error), "error");
    }
  });
  showOnAir();
}

/** The WHIP session dies with the transcoder (protocol: "publish again"): say so. */
function watchPublisher(pub) {
  pub.pc.addEventListener("connectionstatechange", () => {
    if (!["failed", "closed"].includes(pub.pc.connectionState) || S.publishing !== pub) return;
    S.publishing = null;
    pub.stop();
    showOnAir();
    toast("The camera connection dropped: press Go live again.", "error");
  });
}

async function endStream(end) {
  if (!confirm("End the stream? Players stop and the recording becomes the replay.")) return;
  await busy(end, async () => {
    try {
      if (S.publishing) await S.publishing.stop();
      S.publishing = null;
      showOnAir();
      await http("POST", `/media/rooms/${encodeURIComponent(room)}/stream/stop`);
      toast("Stream ended.");
    } catch (error) {
      toast(explain(error), "error");
    }
  });
}

function stat(label, value) {
  return el("div", {}, el("div", { class: "muted" }, label), el("div", { class: "stat" }, shown(value)));
}

function renderHealth(stream) {
  const body = $("#health-body");
  if (!stream) {
    body.replaceChildren(el("p", { class: "muted" }, "Not live yet."));
    return;
  }
  if (stream.status === "ended") {
    body.replaceChildren(el("p", { class: "muted" }, stream.replay
      ? "The stream ended: its recording is the replay. Go live to start a new stream."
      : "The stream ended. Go live to start a new stream."));
    return;
  }
  const h = stream.health || {};
  const alerts = h.alerts || [];
  body.replaceChildren(
    el("div", { class: "stats" },
      stat("Status", stream.status),
      stat("Source", h.source ?? stream.source),
      stat("Input", h.input_kbps != null && `${Math.round(h.input_kbps)} kbps`),
      stat("Frame rate", h.fps != null && `${Number(h.fps).toFixed(1)} fps`),
      stat("Dropped frames", h.dropped_frames),
      stat("Keyframe interval", h.keyframe_interval != null && `${h.keyframe_interval} s`),
      stat("Encoder speed", h.encoder_speed != null && `${Number(h.encoder_speed).toFixed(2)}×`)),
    alerts.length
      ? el("ul", { class: "warn", "aria-label": "Alerts" }, alerts.map((a) => el("li", {}, ALERTS[a] || a)))
      : el("p", { class: "ok" }, "No alerts."),
    h.error ? el("p", { class: "warn" }, `Error: ${text(h.error)}`) : "");
}

// -- analytics -------------------------------------------------------------------------------

const STATS = [
  ["Viewers", (a) => a.viewers],
  ["Peak", (a) => a.peak_viewers],
  ["Unique", (a) => a.unique_viewers],
  ["Avg watch", (a) => a.average_watch_seconds != null && clock(a.average_watch_seconds)],
  ["Chat/min", (a) => a.chat_per_minute],
  ["Reactions/min", (a) => a.reactions_per_minute],
  ["Add-to-carts", (a) => a.add_to_carts],
  ["Orders", (a) => a.orders],
  ["GMV", (a) => a.gmv_minor && (Object.entries(a.gmv_minor).map(([c, m]) => money(m, c)).join(" · ") || "0")],
  ["Conversion", (a) => a.conversion_bps != null && `${(a.conversion_bps / 100).toFixed(2)} %`],
];

function renderAnalytics() {
  const a = S.report;
  $("#stats").replaceChildren(...STATS.map(([label, get]) => stat(label, get(a))));
  const rows = Object.entries(a.products || {});
  $("#product-stats").classList.toggle("hidden", !rows.length);
  const num = (v) => el("td", { class: "num" }, shown(v));
  $("#product-rows").replaceChildren(...rows.map(([sku, p]) =>
    el("tr", {}, el("th", { scope: "row" }, sku), num(p.views), num(p.add_to_carts), num(p.units_sold))));
  $("#analytics-note").textContent = a.at ? `Updated ${new Date(a.at * 1000).toLocaleTimeString()}.`
    : "Full figures arrive every second while the show is on air.";
}

function onAnalytics(report) {
  S.report = report;
  S.analyticsAt = Date.now();
  renderAnalytics();
}

/** Room counters stand in for the report while no analytics push arrives (off air). */
function counts(state) {
  if (Date.now() - S.analyticsAt < 3000) return;
  const fresh = {};
  for (const key of ["viewers", "peak_viewers", "unique_viewers"]) {
    if (state[key] !== undefined) fresh[key] = state[key];
  }
  if (!Object.keys(fresh).length) return;
  S.report = { ...S.report, ...fresh };
  renderAnalytics();
}

// -- products --------------------------------------------------------------------------------

function productCard(p, ...extra) {
  return el("div", { class: "product" },
    p.image_url ? el("img", { src: p.image_url, alt: "" }) : el("div"),
    el("div", { class: "stack" }, el("strong", {}, p.title),
      el("div", { class: "price" }, money(p.price_minor, p.currency)), ...extra));
}

function renderPinned() {
  const p = model.pinned;
  $("#pinned").replaceChildren(p ? productCard(p) : el("p", { class: "muted" }, "Nothing pinned."));
  $("#unpin").classList.toggle("hidden", !p);
  if (p) sellProduct(p.product_id);
  renderStock();
}

function renderStock() {
  const now = Date.now() / 1000;
  const skus = Object.values(model.stock).filter((s) => model.pinned && s.product_id === model.pinned.product_id);
  $("#stock").replaceChildren(...skus.map((s) => {
    const d = s.deal && s.deal.phase !== "ended" ? s.deal : null;
    const when = d && (d.phase === "live" ? `ends in ${clock(d.ends_at - now)}` : `starts in ${clock(d.starts_at - now)}`);
    return el("li", {}, el("strong", {}, s.sku), ` ${s.available} available · ${s.sold} sold`,
      d && el("span", { class: "deal" }, ` · deal ${money(d.price_minor, s.currency)}, ${d.remaining} left, ${when}`));
  }));
}

// -- the catalog: products and SKUs are picked, prices typed in the currency's units ----------

const CATALOG_PAGE = 500;
const CATALOG_MAX = 5000;
const catalog = { products: [], byId: new Map(), sku: null, touched: false };

/** The room's catalog (GET /rooms/{room}/products, paged): the products its sellers let it
 * pin and sell on deals and auctions (docs/protocol.md, "Ownership"). */
async function loadCatalog() {
  const products = [];
  let after = null;
  while (products.length < CATALOG_MAX) {
    const query = new URLSearchParams({ limit: CATALOG_PAGE });
    if (after) query.set("after", after);
    const page = await http("GET", `/rooms/${encodeURIComponent(room)}/products?${query}`);
    products.push(...page);
    if (page.length < CATALOG_PAGE) break;
    after = page.at(-1).product_id;
  }
  products.sort((a, b) => a.title.localeCompare(b.title));
  catalog.products = products;
  catalog.byId = new Map(products.map((p) => [p.product_id, p]));
  const options = (first) => [el("option", { value: "" }, first), ...products.map((p) =>
    el("option", { value: p.product_id }, `${p.title} · ${money(p.price_minor, p.currency)}`))];
  const pin = $("#pin-product-id");
  pin.replaceChildren(...options(products.length ? "Choose a product" : "No products are listed in this room"));
  const sell = $("#sell-product");
  sell.replaceChildren(...options(products.length ? "Choose a product" : "No products are listed in this room"));
  if (model.pinned) sellProduct(model.pinned.product_id);
}

/** Sell `productId` (the pinned product, until the host picks another one). */
function sellProduct(productId, { byHost = false } = {}) {
  if (byHost) catalog.touched = true;
  const select = $("#sell-product");
  if (!byHost && (catalog.touched || !catalog.byId.has(productId) || select.value === productId)) return;
  select.value = productId;
  loadSkus(productId);
}

async function loadSkus(productId) {
  const select = $("#sell-sku");
  catalog.sku = null;
  showSku();
  if (!productId) {
    select.replaceChildren();
    return;
  }
  select.replaceChildren(el("option", { value: "" }, "Loading…"));
  try {
    const ids = await http("GET", `/skus?${new URLSearchParams({ product_id: productId, limit: 500 })}`);
    if ($("#sell-product").value !== productId) return; // picked another meanwhile
    select.replaceChildren(...(ids.length ? ids.map((id) => el("option", { value: id }, id))
      : [el("option", { value: "" }, "No SKUs: nothing to sell")]));
    await pickSku(select.value);
  } catch (error) {
    select.replaceChildren(el("option", { value: "" }, "Could not load the SKUs"));
    toast(explain(error), "error");
  }
}

async function pickSku(sku) {
  catalog.sku = null;
  showSku();
  if (!sku) return;
  try {
    const view = await http("GET", `/skus/${encodeURIComponent(sku)}`);
    if ($("#sell-sku").value !== sku) return;
    catalog.sku = view;
  } catch (error) {
    toast(explain(error), "error");
  }
  showSku();
}

/** The chosen SKU's price and stock, and its currency on every price field. */
function showSku() {
  const view = catalog.sku;
  const product = catalog.byId.get($("#sell-product").value);
  const currency = (view && view.currency) || (product && product.currency) || "";
  $("#sell-sku-info").textContent = view
    ? `${money(view.price_minor, view.currency)} · ${view.available} available${view.deal && view.deal.phase !== "ended" ? ` · deal ${view.deal.phase}` : ""}`
    : "";
  for (const node of $$("[data-currency]")) node.textContent = currency ? `(${currency})` : "";
  if (!currency) return;
  const places = minorDigits(currency);
  const example = fromMinor(10 ** places * 12 + Math.floor(10 ** places / 2), currency);
  for (const input of [$("#deal-price"), $("#auction-start")]) input.placeholder = example;
  const increment = $("#auction-increment");
  if (document.activeElement !== increment) increment.value = fromMinor(10 ** places, currency);
}

/** A typed price in the chosen SKU's currency as integer minor units; null (and the field
 *  marked) if it is not one. */
function priceField(input) {
  const currency = catalog.sku && catalog.sku.currency;
  setError(input, "");
  if (!currency) {
    toast("Choose a SKU first.", "error");
    $("#sell-sku").focus();
    return null;
  }
  const minor = toMinor(input.value, currency);
  if (minor === null) {
    const places = minorDigits(currency);
    setError(input, places
      ? `enter an amount with at most ${places} decimals, e.g. ${fromMinor(1250 * 10 ** Math.max(0, places - 2), currency)}`
      : "enter a whole amount (this currency has no decimals)");
    input.focus();
    return null;
  }
  return minor;
}

function chosenSku() {
  const sku = $("#sell-sku").value;
  if (!sku) {
    toast("Choose a product and a SKU.", "error");
    $("#sell-product").focus();
  }
  return sku;
}

function queueItem(p) {
  const pin = button("Pin", (b) => act(b, "pin_product", { product_id: p.product_id }, "Pinned."),
    { class: "primary", "aria-label": `Pin ${p.title}` });
  const drop = button("Remove", (b) => act(b, "unqueue_product", { product_id: p.product_id }, "Removed from the queue."),
    { "aria-label": `Remove ${p.title} from the queue` });
  return el("li", { class: "slot" }, productCard(p, el("div", { class: "row" }, pin, drop)));
}

const renderQueue = () => sync($("#queue"), model.queue, (p) => p.product_id, queueItem);

function renderAuctions() {
  const views = Object.values(model.auctions || {});
  $("#auctions").replaceChildren(...(views.length ? views.map((a) => el("li", { class: "slot" },
    el("strong", {}, `${a.sku ?? a.auction_id} · ${a.phase}`), " ",
    a.result ? auctionResult(a.result, a.currency)
      : `${a.price == null ? `no bids yet (opening bid ${money(a.minimum_bid, a.currency)})` : `${money(a.price, a.currency)} by ${a.leader}`}, ${a.bids} bids, ends ${timeOfDay(a.ends_at)}`))
    : [el("li", { class: "muted" }, "No auctions yet.")]));
}

function auctionResult(r, currency) {
  return r.reason === "sold" ? `Sold to ${r.winner} for ${money(r.price, currency)}.` : `Ended: ${r.reason}.`;
}

// -- polls, questions, giveaways ----------------------------------------------------------------

function pollItem(poll) {
  const tally = poll.options.map(() => el("span", { class: "muted" }));
  const bars = poll.options.map((o) => el("progress", { max: 1, value: 0, "aria-label": `Votes for ${o}` }));
  const status = el("span", { class: "muted grow" });
  const close = button("Close poll", (b) => act(b, "close_poll", { poll_id: poll.poll_id }, "Poll closed."));
  const node = el("li", { class: "slot stack" }, el("h3", {}, poll.question),
    poll.options.map((o, i) => el("div", {}, el("div", { class: "row" }, el("span", { class: "grow" }, o), tally[i]), bars[i])),
    el("div", { class: "row" }, status, close));
  node.refresh = (p) => {
    const tallies = p.tallies || [];
    const total = tallies.reduce((sum, n) => sum + n, 0);
    tallies.forEach((n, i) => {
      if (!tally[i]) return;
      tally[i].textContent = `${n} (${total ? Math.round((100 * n) / total) : 0} %)`;
      bars[i].max = Math.max(total, 1);
      bars[i].value = n;
    });
    status.textContent = p.closed ? `Closed · ${total} votes` : `${total} votes · closes ${timeOfDay(p.closes_at)}`;
    close.classList.toggle("hidden", Boolean(p.closed));
  };
  return node;
}

const renderPolls = () => sync($("#polls"), [...model.polls.values()].slice(-10).reverse(), (p) => p.poll_id, pollItem);

function questionItem(q) {
  const votes = el("span", { class: "muted grow" });
  const answer = button("Mark answered", (b) => act(b, "answer", { question_id: q.question_id }, "Marked answered."),
    { "aria-label": `Mark answered: ${q.text}` });
  const node = el("li", { class: "slot stack" },
    el("div", {}, el("span", { class: "who" }, q.user.name), q.text), el("div", { class: "row" }, votes, answer));
  node.refresh = (x) => {
    votes.textContent = `${x.votes} ${x.votes === 1 ? "vote" : "votes"}${x.answered ? " · answered" : ""}`;
    answer.classList.toggle("hidden", Boolean(x.answered));
  };
  return node;
}

function renderQuestions() {
  // Unanswered first; within each group the order of arrival, so nothing jumps under the pointer.
  const all = [...model.questions.values()];
  const ordered = [...all.filter((q) => !q.answered), ...all.filter((q) => q.answered)].slice(0, 50);
  sync($("#questions"), ordered, (q) => q.question_id, questionItem);
  if (!ordered.length) $("#questions").replaceChildren(el("li", { class: "muted" }, "No questions yet."));
}

function giveawayItem(g) {
  const info = el("span", { class: "muted grow" });
  const winners = el("p", { class: "ok" });
  const draw = button("Draw a winner", async (b) => {
    const r = await act(b, "draw_giveaway", { giveaway_id: g.giveaway_id, winners: 1 });
    if (r) toast(r.winners.length ? `Winner: ${r.winners.join(", ")}` : "Nobody entered.");
  }, { class: "primary", "aria-label": `Draw a winner: ${g.prize}` });
  const node = el("li", { class: "slot stack" }, el("strong", {}, g.prize),
    el("div", { class: "row" }, info, draw), winners);
  node.refresh = (x) => {
    const conditions = (x.eligibility || []).join(", ");
    info.textContent = `${x.entrants} entered${conditions ? ` · needs ${conditions}` : ""}`;
    const won = x.drawn && x.drawn.winners;
    draw.classList.toggle("hidden", Boolean(x.drawn));
    winners.textContent = won ? (won.length ? `Winners: ${won.join(", ")}` : "Drawn: nobody entered.") : "";
  };
  return node;
}

const renderGiveaways = () => sync($("#giveaways"), [...model.giveaways.values()].slice(-10).reverse(), (g) => g.giveaway_id, giveawayItem);

// -- chat ------------------------------------------------------------------------------------

function modTools(e) {
  const { id, name } = e.user;
  return el("span", { class: "row" },
    button("Delete", (b) => act(b, "delete_message", { message_id: e.offset }, "Message deleted."),
      { "aria-label": `Delete message from ${name}` }),
    button("Mute 10 min", (b) => act(b, "mute", { user_id: id, seconds: 600 }, `${name} muted for 10 minutes.`),
      { "aria-label": `Mute 10 min: ${name}` }),
    button("Ban", (b) => confirm(`Ban ${name} from this room?`) && act(b, "ban", { user_id: id }, `${name} banned.`),
      { class: "danger", "aria-label": `Ban ${name}` }));
}

function chatLine(e) {
  const offset = { offset: e.offset };
  if (e.kind === "system") return el("li", { class: "system", dataset: offset }, e.text);
  if (e.kind === "gift") {
    return el("li", { class: "system", dataset: offset },
      `${e.user.name} sent ${e.quantity} × ${e.gift.name} (${e.coins} coins).`);
  }
  return el("li", { dataset: offset }, el("span", { class: "who" }, e.user.name), e.text,
    e.user.id !== S.me.id && modTools(e));
}

/** The room's chat, live and from its history (older messages load at the top). */
const chat = new ChatLog($("#chat-log"), {
  render: chatLine,
  read: (before, limit) => live.request("history", { room, limit, ...(before ? { before } : {}) }),
});

const addChat = (e) => chat.add(e);
const note = (words) => chat.note(el("li", { class: "muted" }, words));

function showSettings(settings) {
  const select = $("#slow-mode");
  const value = String(settings.slow_mode ?? 0);
  if (![...select.options].some((o) => o.value === value)) select.append(el("option", { value }, `${value} seconds`));
  select.value = value;
  S.slowMode = value;
}

// -- run of show -----------------------------------------------------------------------------

async function cueAction(b, op, fields, done) {
  const r = await act(b, op, fields, done);
  if (r && r.result && r.result.error) toast(`The cue ran but failed: ${text(r.result.error)}`, "error");
  await loadShow();
}

function cueItem(cue) {
  const what = el("strong", {});
  const params = el("div", { class: "muted" }, Object.entries(cue.params || {})
    .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", "));
  const at = el("input", { id: nextId("cue-at"), type: "number", min: 0, max: 86400, step: 1,
    value: Math.round(cue.at), inputmode: "numeric" });
  const name = cue.cue_id;
  const controls = el("div", { class: "stack" },
    el("div", { class: "row" },
      button("Fire", (b) => cueAction(b, "fire_cue", { cue: name }, "Cue fired."), { class: "primary", "aria-label": `Fire ${name}` }),
      button("Skip", (b) => cueAction(b, "skip_cue", { cue: name }, "Cue skipped."), { "aria-label": `Skip ${name}` })),
    el("label", { for: at.id }, "New time (seconds after the start)"),
    el("div", { class: "row" }, el("div", { class: "grow" }, at),
      button("Reschedule", (b) => cueAction(b, "reschedule_cue", { cue: name, at: Number(at.value) }, "Cue rescheduled."),
        { "aria-label": `Reschedule ${name}` })));
  const node = el("li", { class: "slot stack" }, what, params, controls);
  node.refresh = (c) => {
    what.textContent = `T+${clock(c.at)} · ${c.action} · ${c.cue_id} · ${c.status || "pending"}`;
    controls.classList.toggle("hidden", !S.canSell || (c.status && c.status !== "pending"));
  };
  return node;
}

function logLine(entry) {
  const how = entry.how ? ` (${entry.how})` : "";
  const by = entry.by ? ` by ${entry.by}` : "";
  const error = entry.error ? `: ${text(entry.error)}` : "";
  return el("li", {}, `${timeOfDay(entry.at)} ${entry.cue_id} ${entry.event}${how}${by}${error}`);
}

async function loadShow() {
  const status = $("#ros-status");
  let show;
  try {
    show = await live.request("run_of_show", { room });
  } catch (error) {
    status.textContent = error.code === "not_found" ? "No show on a channel in this room" : explain(error);
    if (error.code === "not_found") {
      $("#cues").replaceChildren();
      $("#cue-log").replaceChildren();
    }
    return;
  }
  const cues = show.cues || [];
  status.textContent = `Show ${show.show_id}, starts ${dateTime(show.starts_at)}.${cues.length ? "" : " No cues."}`;
  sync($("#cues"), cues, (c) => c.cue_id, cueItem);
  $("#cue-log").replaceChildren(...(show.log || []).slice(-10).reverse().map(logLine));
}

// -- the room --------------------------------------------------------------------------------

const ON = {
  chat: addChat,
  system: addChat,
  message_deleted: (e) => chat.remove(e.message_id),
  user_muted: (e) => note(`${e.user_id} muted until ${timeOfDay(e.until)} by ${e.by}.`),
  user_banned: (e) => note(`${e.user_id} banned by ${e.by}.`),
  gift: addChat,
  deal_started: (e) => toast(`Deal live on ${e.sku}.`),
  deal_ended: (e) => toast(`Deal ended on ${e.sku}.`),
  auction_ended: (e) => toast(`Auction: ${auctionResult(e.result, (model.auctions[e.auction_id] || {}).currency)}`),
  stream_started: () => toast("The stream is on air."),
  stream_ended: () => toast("The stream ended."),
  stream_alert: (e) => toast(`Stream: ${e.alerts.map((a) => ALERTS[a] || a).join(" ")}`, "error"),
};

function onEvents(events) {
  const parts = [];
  for (const event of events) {
    parts.push(model.event(event));
    if (ON[event.kind]) ON[event.kind](event);
  }
  redraw.mark(parts);
}

const redraw = new Redraw({
  info: () => {
    $("#room-title").textContent = model.info.title;
    document.title = `Studio: ${model.info.title} · liveshop`;
  },
  counts: () => counts(model.counts),
  pinned: () => renderPinned(),
  queue: () => renderQueue(),
  auctions: () => renderAuctions(),
  polls: () => renderPolls(),
  questions: () => renderQuestions(),
  giveaways: () => renderGiveaways(),
  chat_settings: () => showSettings(model.chatSettings),
  stream: () => renderHealth(model.stream),
});

function onSnapshot(view) {
  model = new RoomModel();
  chat.reset();
  redraw.mark(model.view(view));
  for (const e of view.recent_chat || []) addChat(e);
  chat.fill();
  $("#status").textContent = "";
}

function onState(s, recovered) {
  redraw.mark(recovered ? model.view(s) : model.state(s));
}

// -- forms -----------------------------------------------------------------------------------

function wireForms() {
  $("#go-live").addEventListener("click", (e) => toggleLive(e.currentTarget));
  $("#end-stream").addEventListener("click", (e) => endStream(e.currentTarget));
  $("#unpin").addEventListener("click", (e) => act(e.currentTarget, "unpin_product", {}, "Unpinned."));
  onSubmit("#product-form", async (f, b, form) => {
    const queued = b.value === "queue_product";
    if (!f.product_id) return toast("Choose a product.", "error");
    if (await act(b, b.value, { product_id: f.product_id }, queued ? "Queued." : "Pinned.")) form.reset();
    return undefined;
  });
  $("#sell-product").addEventListener("change", (e) => sellProduct(e.currentTarget.value, { byHost: true }));
  $("#sell-sku").addEventListener("change", (e) => pickSku(e.currentTarget.value));
  onSubmit("#deal-form", async (f, b) => {
    const sku = chosenSku();
    if (!sku) return;
    if (b.value === "end_deal") {
      await act(b, "end_deal", { sku }, `Deal ended on ${sku}.`);
    } else {
      const price = priceField($("#deal-price"));
      if (price === null) return;
      await act(b, "start_deal", { sku, price_minor: price, duration: int(f.duration),
        quantity: int(f.quantity), limit_per_buyer: int(f.limit_per_buyer) },
      `Deal started on ${sku} at ${money(price, catalog.sku.currency)}.`);
    }
    pickSku(sku); // its deal changed
  });
  onSubmit("#auction-form", async (f, b) => {
    const sku = chosenSku();
    if (!sku) return;
    const start = priceField($("#auction-start"));
    if (start === null) return;
    const increment = priceField($("#auction-increment"));
    if (increment === null) return;
    await act(b, "start_auction", { sku, start_price: start, min_increment: increment,
      duration: int(f.duration), mode: f.mode }, "Auction started.");
  });
  onSubmit("#poll-form", async (f, b, form) => {
    const options = f.options.split("\n").map((o) => o.trim()).filter(Boolean);
    if (options.length < 2 || options.length > 6) return toast("Give 2 to 6 options, one per line.", "error");
    if (await act(b, "create_poll", { question: f.question.trim(), options, duration: int(f.duration) }, "Poll open.")) form.reset();
  });
  onSubmit("#giveaway-form", async (f, b, form) => {
    const eligibility = f.eligibility.split(",").map((c) => c.trim()).filter(Boolean);
    if (await act(b, "open_giveaway", { prize: f.prize.trim(), eligibility }, "Giveaway open.")) form.reset();
  });
  onSubmit("#chat-form", async (f, b, form) => {
    if (await act(b, "chat", { text: f.text })) form.reset();
  });
  $("#slow-mode").addEventListener("change", async (e) => {
    const select = e.currentTarget;
    const seconds = Number(select.value);
    const ok = await act(select, "chat_settings", { slow_mode: seconds },
      seconds ? `Slow mode: one message per ${seconds} s.` : "Slow mode off.");
    if (!ok) select.value = S.slowMode; // refused: show what is in force
  });
}

// -- start -----------------------------------------------------------------------------------

function askToSignIn(who) {
  $("#conn").textContent = "Signed out";
  const message = who
    ? `${who.user.name} is not staff in room ${room}. Paste a host, co-host or moderator token.`
    : `Paste a host, co-host or moderator token for room ${room}.`;
  $("#signin").append(signInForm((token) => {
    try {
      signIn(token);
      location.reload();
    } catch (error) {
      toast(explain(error), "error");
    }
  }, message));
}

function boot(who) {
  S.me = who.user;
  // Go live needs the host role (WHIP); deals, auctions and cues need host, co-host or service.
  S.canSell = hasRole(who, room, SELLERS);
  for (const node of $$("[data-needs=host]")) node.classList.toggle("hidden", !hasRole(who, room, ["host"]));
  for (const node of $$("[data-needs=seller]")) node.classList.toggle("hidden", !S.canSell);
  $("#studio").classList.remove("hidden");
  wireForms();
  renderAnalytics();
  connectionBadge(live);
  loadCatalog().catch((error) => toast(`The catalog did not load: ${explain(error)}`, "error"));
  live.follow(room, {
    snapshot: onSnapshot,
    events: onEvents,
    state: onState,
    analytics: onAnalytics,
    kicked: (reason) => { $("#status").textContent = `Removed from the room (${reason}).`; },
    error: (error) => { $("#status").textContent = explain(error); toast(explain(error), "error"); },
  }).then(loadShow, (error) => toast(explain(error), "error"));
  setInterval(loadShow, 10000);
  // Deal countdowns move between pushes.
  setInterval(() => {
    if (Object.values(model.stock).some((s) => s.deal && s.deal.phase !== "ended")) renderStock();
  }, 1000);
  addEventListener("pagehide", () => S.publishing && S.publishing.stop());
}

$("#watch-link").href = `/app/watch/${encodeURIComponent(room)}`;
const who = session();
if (!room) $("#status").textContent = "No room in the address: open /app/studio/<room>.";
else if (!who || !hasRole(who, room, STAFF)) askToSignIn(who);
else boot(who);
