// Host studio: go live from the camera, watch stream health and live analytics, pin and
// queue products, run deals, auctions, polls, giveaways and Q&A, fire cues and moderate chat.
// Uses only what docs/protocol.md documents (room operations over the WebSocket).

import { explain, hasRole, http, money, SELLERS, session, signIn, STAFF } from "./api.js";
import { Live } from "./live.js";
import { publish } from "./player.js";
import { RoomModel, Redraw } from "./room.js";
import {
  $, $$, attempt, busy, clock, connectionBadge, dateTime, el, formData, signInForm, sync, timeOfDay,
  toast,
} from "./ui.js";

const room = decodeURIComponent(location.pathname.split("/")[3] || "");
const live = new Live({ guest: false });
const MAX_CHAT = 200;
const ALERTS = {
  no_input: "No input: nobody is sending video, viewers see the slate.",
  no_video: "The source sends no video (audio only?).",
  undecodable: "Data arrives but no picture decodes from it.",
  encoder_behind: "The encoder is falling behind.",
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
  $("#skus").replaceChildren(...Object.keys(model.stock).map((sku) => el("option", { value: sku })));
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
    el("strong", {}, `${a.sku} · ${a.phase}`), " ",
    a.result ? auctionResult(a.result, a.currency)
      : `${a.price == null ? "no bids yet" : `${money(a.price, a.currency)} by ${a.leader}`}, ${a.bids} bids, ends ${timeOfDay(a.ends_at)}`))
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

function appendChat(line) {
  const log = $("#chat-log");
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(line);
  while (log.children.length > MAX_CHAT) log.firstElementChild.remove();
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function addChat(e) {
  if (e.kind === "system") {
    appendChat(el("li", { class: "system", dataset: { offset: e.offset } }, e.text));
    return;
  }
  appendChat(el("li", { dataset: { offset: e.offset } }, el("span", { class: "who" }, e.user.name), e.text,
    e.user.id !== S.me.id && modTools(e)));
}

const note = (words) => appendChat(el("li", { class: "muted" }, words));

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
  message_deleted: (e) => $$("#chat-log li").find((li) => li.dataset.offset === String(e.message_id))?.remove(),
  user_muted: (e) => note(`${e.user_id} muted until ${timeOfDay(e.until)} by ${e.by}.`),
  user_banned: (e) => note(`${e.user_id} banned by ${e.by}.`),
  gift: (e) => note(`${e.user.name} sent ${e.quantity} × ${e.gift.name} (${e.coins} coins).`),
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
  $("#chat-log").replaceChildren();
  redraw.mark(model.view(view));
  for (const e of view.recent_chat || []) addChat(e);
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
    if (await act(b, b.value, { product_id: f.product_id.trim() }, queued ? "Queued." : "Pinned.")) form.reset();
  });
  onSubmit("#deal-form", async (f, b) => {
    const sku = f.sku.trim();
    if (!sku) return toast("Enter a SKU.", "error");
    if (b.value === "end_deal") return act(b, "end_deal", { sku }, `Deal ended on ${sku}.`);
    return act(b, "start_deal", { sku, price_minor: int(f.price_minor), duration: int(f.duration),
      quantity: int(f.quantity), limit_per_buyer: int(f.limit_per_buyer) }, `Deal started on ${sku}.`);
  });
  onSubmit("#auction-form", (f, b) => act(b, "start_auction", { sku: f.sku.trim(), start_price: int(f.start_price),
    min_increment: int(f.min_increment), duration: int(f.duration), mode: f.mode }, "Auction started."));
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
