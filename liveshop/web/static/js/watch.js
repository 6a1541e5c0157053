// The viewer page: /app/watch/<room> watches a room, /app/tv/<channel> follows a channel
// (its feed room says what to play; the show's own room carries chat, pins and deals).
// Everything arrives as room events and state over one WebSocket (live.js recovers what a
// dropped connection missed); buying goes to the SKU actors through the same socket.

import { ApiError, config, explain, fromMinor, http, money, newKey, session, toMinor } from "./api.js";
import { ChatLog } from "./chat.js";
import { Live } from "./live.js";
import { Player } from "./player.js";
import { cardFields, markCardError, orderName, saveCard, savedMethods } from "./shop.js";
import { RoomModel, Redraw } from "./room.js";
import { $, $$, attempt, busy, clock, connectionBadge, el, formData, sync, timeOfDay, toast } from "./ui.js";

const [, , kind, rawId] = location.pathname.split("/");
const id = decodeURIComponent(rawId || "");
const channelMode = kind === "tv";
const feed = channelMode ? `channel:${id}` : null;
const params = new URLSearchParams(location.search);

const live = new Live();
const player = new Player($("#video"), { onMode: (mode) => { $("#mode").textContent = { hls: "HLS", webrtc: "WebRTC", off: "" }[mode]; } });
let skew = 0; // server clock minus ours, in ms (deal and auction countdowns)
let whepMax = 20;
let preferWebRtc = params.get("player") !== "hls";

/** The room we take part in: the one watched, or the show's room the channel plays. */
let roomId = channelMode ? null : id;
let model = new RoomModel();
let route = null; // channel mode: what the channel plays
/** The stream whose recording the viewer chose to watch ("Watch the replay"). */
let replayOf = null;
/** What the player was last set to (its key): health pushes every second change nothing. */
let playing = null;

// ---- the video --------------------------------------------------------------------
// The page shows what the server decided, nothing else: the room's `state.stream` (watch)
// or the channel's `route` (tv). A stream on slate (the publisher stalled or left, a
// failover under way) keeps the live player on the live edge, where the server's slate
// picture plays, and says the host will be right back; an ended stream stops the player
// and offers its recording, which plays only when the viewer asks.

const BRB = "The host will be right back.";

/** What to show now: {key, play?: {kind, url, room?, startAt?}, live, slate?: {text, note,
 *  replay, over}} — `over`: the slate is laid over a playing picture. */
function target() {
  return channelMode ? routeTarget() : streamTarget(model.stream, roomId);
}

function streamTarget(s, room) {
  if (!s) {
    return { key: "none", live: false,
      slate: { text: "The host is not live yet.", note: "Stay here: the video starts by itself." } };
  }
  if (s.status === "ended") {
    if (replayOf === s.stream_id && s.replay) {
      return { key: `replay ${s.replay}`, live: false, play: { kind: "replay", url: s.replay, startAt: 0 } };
    }
    return { key: `ended ${s.stream_id}`, live: false,
      slate: { text: "The show has ended.", replay: Boolean(s.replay),
        note: s.replay ? "Thanks for watching! The recording is ready." : "Thanks for watching!" } };
  }
  const paused = { text: BRB, note: "The stream paused. Stay here: it continues by itself." };
  if (!s.hls) { // no picture to play (yet, or not since the transcoder restarted)
    return { key: "none", live: false, slate: s.status === "slate" ? paused
      : { text: "The host is getting ready…", note: "The video starts by itself." } };
  }
  const play = { kind: "live", url: s.hls, room };
  if (s.status === "live") return { key: `live ${s.hls}`, live: true, play };
  // "slate": stalled or left; the server decides when the show ends.
  return { key: `live ${s.hls}`, live: false, play, slate: { ...paused, over: true } };
}

function routeTarget() {
  const r = route && route.route;
  if (!r || !r.playlist) {
    const now = route && route.now;
    const next = route && route.next;
    const upNext = next ? `Up next: ${next.title} at ${timeOfDay(next.starts_at)}.` : "";
    if (route && route.override) return { key: "none", live: false, slate: { text: "We'll be right back.", note: "" } };
    if (now && now.kind === "live") { // in its slot, but its host is not on air
      return { key: "none", live: false,
        slate: { text: "Waiting for the host.", note: `${now.title} plays here as soon as the host is live.` } };
    }
    return { key: "none", live: false, slate: { text: "Nothing on air right now.", note: upNext } };
  }
  if (r.source === "live" || r.source === "override") {
    // The show's room says whether its stream is on air, paused or over.
    const s = r.room_id && r.room_id === roomId ? model.stream : null;
    const play = { kind: "live", url: r.playlist, room: r.room_id };
    if (s && s.status === "ended") {
      return { key: `ended ${s.stream_id}`, live: false,
        slate: { text: "The show has ended.", note: "The channel continues in a moment." } };
    }
    if (s && s.status === "slate") {
      return { key: `live ${r.playlist}`, live: false, play,
        slate: { text: BRB, note: "The stream paused. Stay here: it continues by itself.", over: true } };
    }
    return { key: `live ${r.playlist}`, live: true, play };
  }
  // Premieres and replays play at the same position for everyone.
  const startAt = r.offset + (Date.now() + skew) / 1000 - r.at;
  return { key: `${r.source} ${r.playlist}`, live: false, play: { kind: "vod", url: r.playlist, startAt } };
}

function showSlate(slate) {
  const node = $("#slate");
  node.classList.toggle("hidden", !slate);
  // Over a picture that still plays (the server's slate), the picture dims.
  $(".stage").classList.toggle("dim", Boolean(slate && slate.over));
  if (!slate) return;
  $("#slate-text").textContent = slate.text;
  $("#slate-note").textContent = slate.note || "";
  $("#watch-replay").classList.toggle("hidden", !slate.replay);
}

async function play(p) {
  const video = $("#video");
  video.controls = p.kind === "replay"; // a recording the viewer chose: seek, pause
  if (p.kind === "live") {
    if (preferWebRtc && p.room && (model.counts.viewers || 0) <= whepMax) {
      try {
        await player.playWhep(p.room);
        return;
      } catch {
        // Full, not yet on air, or no WebRTC path: everyone can play HLS.
      }
    }
    await player.playHls(p.url);
  } else {
    await player.playHls(p.url, p.startAt);
  }
}

function refreshVideo({ force = false } = {}) {
  const t = target();
  $("#live-badge").classList.toggle("hidden", !t.live);
  showSlate(t.slate);
  if (t.key === playing && !force) return;
  playing = t.key;
  if (!t.play) {
    player.stop();
    $("#video").controls = false;
    return;
  }
  play(t.play).catch((error) => toast(explain(error), "error"));
}

// ---- the room's state ---------------------------------------------------------------

const redraw = new Redraw({
  info: () => {
    $("#title").textContent = model.info.title;
    document.title = `${model.info.title} · liveshop`;
  },
  counts: renderCounts,
  pinned: renderPinned,
  pinned_message: renderPinnedMessage,
  polls: renderPolls,
  questions: renderQuestions,
  giveaways: renderGiveaways,
  auctions: renderAuctions,
  stream: () => refreshVideo(),
});

function snapshot(s) {
  model = new RoomModel();
  chat.reset();
  for (const event of s.recent_chat || []) chat.add(event);
  chat.fill();
  redraw.mark(model.view(s));
}

function state(s, recovered) {
  redraw.mark(recovered ? model.view(s) : model.state(s));
}

function events(list) {
  const parts = [];
  for (const e of list) {
    parts.push(model.event(e));
    switch (e.kind) {
      case "chat": case "system": case "gift": chat.add(e); break;
      case "message_deleted": chat.remove(e.message_id); break;
      case "giveaway_drawn":
        if (live.user && e.winners.includes(live.user.id)) toast("You won the giveaway! 🎉");
        break;
      case "auction_ended":
        if (live.user && e.result && e.result.winner === live.user.id) toast("You won the auction! Check your orders.");
        break;
      case "user_banned":
        if (live.user && e.user_id === live.user.id) toast("You were removed from this room.", "error");
        break;
      default:
        break;
    }
  }
  redraw.mark(parts);
}

// ---- rendering ----------------------------------------------------------------------

function renderCounts() {
  $("#viewers").textContent = `${model.counts.viewers || 0} watching`;
  for (const button of $$("[data-react]")) {
    button.querySelector("span").textContent = model.reactions[button.dataset.react] || 0;
  }
}

/** The pinned product's SKU to buy (the first one in stock, else the first). */
function pinnedSku() {
  const skus = Object.values(model.stock);
  return (skus.find((s) => s.available > 0) || skus[0] || null);
}

function renderPinned() {
  const product = model.pinned;
  $("#pinned").classList.toggle("hidden", !product);
  if (!product) return;
  $("#pinned-title").textContent = product.title;
  const image = $("#pinned-image");
  if (product.image_url) image.src = product.image_url;
  image.classList.toggle("hidden", !product.image_url);
  const sku = pinnedSku();
  const deal = sku && sku.deal;
  const dealLive = deal && deal.phase === "live";
  const currency = (sku && sku.currency) || product.currency;
  $("#pinned-price").textContent = money(dealLive ? deal.price_minor : (sku ? sku.price_minor : product.price_minor), currency);
  $("#pinned-was").textContent = dealLive ? money(sku.price_minor, currency) : "";
  const available = Object.values(model.stock).reduce((n, s) => n + (s.available || 0), 0);
  const stock = $("#stock");
  if (sku) {
    stock.textContent = available > 0 ? `${dealLive ? deal.remaining : available} left` : "Sold out";
    stock.className = available > 0 ? "ok" : "warn";
  } else {
    stock.textContent = "";
  }
  $("#buy").disabled = !sku || available <= 0;
  $("#add-to-cart").disabled = !sku || available <= 0;
  tickCountdowns();
}

function tickCountdowns() {
  const now = (Date.now() + skew) / 1000;
  const sku = pinnedSku();
  const deal = sku && sku.deal;
  const countdown = $("#deal-countdown");
  if (deal && deal.phase === "upcoming") countdown.textContent = `Deal starts in ${clock(deal.starts_at - now)}`;
  else if (deal && deal.phase === "live") countdown.textContent = `Deal ends in ${clock(deal.ends_at - now)}`;
  else countdown.textContent = "";
  for (const node of $$("[data-ends-at]")) node.textContent = clock(Number(node.dataset.endsAt) - now);
}

// Lists are kept in place (ui.sync): tallies tick many times a second, and a rebuilt list
// would take the focus, or a half-typed bid, from the viewer.

function renderPolls() {
  const polls = [...model.polls.values()];
  const list = [...polls.filter((p) => !p.closed).slice(-3), ...polls.filter((p) => p.closed).slice(-1)];
  $("#polls").classList.toggle("hidden", !list.length);
  sync($("#poll-list"), list, (p) => p.poll_id, pollItem);
}

function pollItem(poll) {
  const legend = el("legend");
  const options = poll.options.map((option, i) => {
    const votes = el("span");
    const meter = el("span");
    const button = el("button", { type: "button", class: "poll-option",
      onclick: () => busy(button, () => act("vote", { poll_id: poll.poll_id, option: i }, "Vote counted")) },
    el("span", {}, option), votes, el("span", { class: "meter", "aria-hidden": "true" }, meter));
    return { button, votes, meter, option };
  });
  const node = el("fieldset", {}, legend, options.map((o) => o.button));
  node.refresh = (p) => {
    legend.textContent = p.question + (p.closed ? " (closed)" : "");
    const tallies = p.tallies || [];
    const total = tallies.reduce((a, b) => a + b, 0) || 1;
    options.forEach((o, i) => {
      const count = tallies[i] || 0;
      o.votes.textContent = String(count);
      // Through the CSSOM: the page's CSP allows no inline style attributes.
      o.meter.style.width = `${Math.round((count / total) * 100)}%`;
      o.button.setAttribute("aria-label", `Vote ${o.option}: ${count} votes`);
      if (p.closed) o.button.disabled = true;
    });
  };
  return node;
}

function renderQuestions() {
  const list = [...model.questions.values()]
    .sort((a, b) => (a.answered - b.answered) || (b.votes - a.votes)).slice(0, 20);
  sync($("#questions"), list, (q) => q.question_id, (q) => {
    const upvote = el("button", { type: "button", "aria-label": `Upvote: ${q.text}`,
      onclick: () => busy(upvote, () => act("upvote", { question_id: q.question_id })) });
    const answered = el("span");
    const node = el("li", {}, el("span", { class: "who" }, q.user.name), q.text, " ", upvote, answered);
    node.refresh = (fresh) => {
      upvote.textContent = `▲ ${fresh.votes}`;
      node.className = fresh.answered ? "muted" : "";
      answered.textContent = fresh.answered ? " answered" : "";
      if (fresh.answered) upvote.disabled = true;
    };
    return node;
  });
}

function renderGiveaways() {
  const list = [...model.giveaways.values()].slice(-3);
  $("#giveaways").classList.toggle("hidden", !list.length);
  sync($("#giveaway-list"), list, (g) => g.giveaway_id, (g) => {
    const label = el("span", { class: "grow" });
    const enter = el("button", { type: "button",
      onclick: () => busy(enter, () => act("enter_giveaway", { giveaway_id: g.giveaway_id }, "You're in!")) }, "Enter");
    const winners = el("span");
    const node = el("div", { class: "row" }, label, enter, winners);
    node.refresh = (fresh) => {
      label.textContent = `${fresh.prize} · ${fresh.entrants || 0} entered`;
      enter.classList.toggle("hidden", Boolean(fresh.drawn));
      winners.textContent = fresh.drawn ? `Winners: ${fresh.drawn.winners.join(", ") || "—"}` : "";
    };
    return node;
  });
}

function renderAuctions() {
  const list = Object.values(model.auctions).filter((a) => a.phase !== "ended" || a.result).slice(-2);
  $("#auctions").classList.toggle("hidden", !list.length);
  sync($("#auction-list"), list, (a) => a.auction_id, auctionItem);
}

function auctionItem(a) {
  const inputId = `bid-${a.auction_id}`;
  const price = el("strong");
  const leader = el("span");
  const when = el("span");
  const timer = el("span", { role: "timer" });
  const label = el("label", { for: inputId });
  const amount = el("input", { id: inputId, name: "amount", inputmode: "decimal", class: "grow",
    value: fromMinor(a.minimum_bid, a.currency), required: true });
  const submit = el("button", { type: "submit", class: "primary" }, "Bid");
  const ended = el("p", { class: "hidden" });
  const form = el("form", { class: "stack", onsubmit: (ev) => { ev.preventDefault(); bid(a, form); } },
    el("p", {}, price, leader, " · ", when, timer), label, el("div", { class: "row" }, amount, submit));
  const node = el("div", {}, form, ended);
  let minimum = a.minimum_bid;
  node.refresh = (fresh) => {
    if (fresh.phase === "ended") {
      const r = fresh.result || {};
      form.classList.add("hidden");
      ended.classList.remove("hidden");
      ended.textContent = `Ended: ${r.reason === "sold" ? `sold to ${r.winner} for ${money(r.price, fresh.currency)}` : r.reason || ""}`;
      return;
    }
    price.textContent = fresh.price === null ? "No bids yet" : money(fresh.price, fresh.currency);
    leader.textContent = fresh.leader ? ` · leading: ${fresh.leader}` : "";
    when.textContent = fresh.phase === "live" ? "ends in " : "starts in ";
    timer.dataset.endsAt = fresh.phase === "live" ? fresh.ends_at : fresh.starts_at;
    label.textContent = `Your bid (minimum ${money(fresh.minimum_bid, fresh.currency)})`;
    // Raise the suggested bid with the minimum, unless the viewer typed their own.
    if (fresh.minimum_bid !== minimum && document.activeElement !== amount) {
      amount.value = fromMinor(fresh.minimum_bid, fresh.currency);
    }
    minimum = fresh.minimum_bid;
    submit.disabled = fresh.phase !== "live";
  };
  return node;
}

async function bid(auction, form) {
  const amount = toMinor(formData(form).amount, auction.currency);
  if (amount === null || amount <= 0) return toast("Enter an amount.", "error");
  await busy(form.querySelector("button"), () => act("bid", { auction: auction.auction_id, amount, key: newKey("bid") }, "Bid placed"));
}

function chatLine(e) {
  const offset = { offset: e.offset };
  if (e.kind === "chat") return el("li", { dataset: offset }, el("span", { class: "who" }, e.user.name), e.text);
  if (e.kind === "gift") return el("li", { class: "system", dataset: offset }, `${e.user.name} sent ${e.quantity} × ${e.gift.name} 🎁`);
  return el("li", { class: "system", dataset: offset }, e.text);
}

/** The room's chat: live and recovered events, and its history further back. */
const chat = new ChatLog($("#chat-log"), {
  render: chatLine,
  read: (before, limit) => {
    const room = roomId;
    if (!room) return Promise.resolve({ messages: [], more: false });
    return live.request("history", { room, limit, ...(before ? { before } : {}) })
      .then((page) => (room === roomId ? page : { messages: [], more: false }));
  },
});

function renderPinnedMessage() {
  const message = model.pinnedMessage;
  const node = $("#pinned-message");
  node.classList.toggle("hidden", !message);
  node.textContent = message ? `📌 ${message.user ? `${message.user.name}: ` : ""}${message.text}` : "";
}

// ---- actions ------------------------------------------------------------------------

/** A room operation in the room we take part in; a toast says how it went. */
async function act(op, fields, done) {
  if (!roomId) return toast("Nothing to take part in right now.", "error");
  return attempt(() => live.request(op, { room: roomId, ...fields }), done);
}

/** Send `op` with an idempotency key; a temporary failure is retried with the same key, so a
 *  lost answer never buys twice. */
async function keyed(op, fields) {
  const key = newKey(op);
  const deadline = Date.now() + 60000; // outlasts a reconnect (backoff tops out at 8 s)
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await live.request(op, { room: roomId, ...fields, key });
    } catch (error) {
      if (!error.temporary || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, Math.min(4000, 500 * (attempt + 1))));
    }
  }
}

/** The card form shown to a first-time buyer (the shop pages' fields: one card form). */
const card = cardFields("Your card");

async function buy() {
  const sku = pinnedSku();
  if (!sku) return;
  if (!(await savedMethods(session())).length) {
    // No saved card: ask for one here, over the stream, without leaving it.
    $("#card-sheet").showModal();
    card.inputs.number.focus();
    return;
  }
  await purchase(sku);
}

/** The order's readable number (`LS-10427`); its id where the server gives none. */
async function orderNumber(result) {
  if (result.number) return result.number;
  const order = await http("GET", `/orders/${encodeURIComponent(result.order)}`).catch(() => null);
  return orderName(order || { id: result.order });
}

async function purchase(sku) {
  const quantity = Number($("#quantity").value);
  const result = await attempt(() => keyed("buy", { sku: sku.sku, quantity, pay: true }));
  if (!result) return;
  const number = await orderNumber(result);
  toast(result.payment && result.payment.status === "succeeded" ? `Bought! Order ${number}`
    : `Order ${number} placed: ${result.payment ? "payment needs attention in Orders" : "pay in Orders"}`);
}

async function saveCardAndBuy(form) {
  try {
    await saveCard(session(), card.read());
  } catch (error) {
    if (!markCardError(card, error)) toast(explain(error), "error");
    return;
  }
  $("#card-sheet").close();
  form.reset();
  const sku = pinnedSku();
  if (sku) await purchase(sku);
}

async function addToCart() {
  const sku = pinnedSku();
  if (!sku) return;
  const result = await act("add_to_cart", { sku: sku.sku, quantity: Number($("#quantity").value) }, "Added to cart");
  if (result) $("#cart-count").textContent = result.units ?? result.cart?.units ?? "";
}

async function loadGifts() {
  const who = session();
  const [gifts, wallet] = await Promise.all([
    http("GET", "/gifts").catch(() => []),
    who ? http("GET", `/wallets/${encodeURIComponent(who.user.id)}`).catch(() => null) : null,
  ]);
  if (wallet) $("#coins").textContent = wallet.coins;
  if (who) {
    const cart = await http("GET", `/users/${encodeURIComponent(who.user.id)}/cart`).catch(() => null);
    if (cart) $("#cart-count").textContent = cart.units;
  }
  $("#gift-list").replaceChildren(...gifts.map((g) => el("button", { type: "button",
    "aria-label": `Send ${g.name} for ${g.price_coins} coins`,
    onclick: (ev) => busy(ev.currentTarget, async () => {
      const sent = await attempt(() => keyed("send_gift", { gift_id: g.id, quantity: 1 }));
      if (sent) $("#coins").textContent = sent.balance;
    }) }, `${g.name} · ${g.price_coins}`)));
}

// ---- wiring -------------------------------------------------------------------------

function wire() {
  $("#chat-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("#chat-input");
    const text = input.value.trim();
    if (!text) return;
    const sent = await busy($("#chat-send"), () => act("chat", { text }));
    if (sent) input.value = "";
  });
  $("#ask-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("#ask-input");
    if (await act("ask", { text: input.value.trim() }, "Question sent")) input.value = "";
  });
  for (const button of $$("[data-react]")) {
    button.addEventListener("click", () => act("react", { kind: button.dataset.react, count: 1 }));
  }
  $("#buy").addEventListener("click", (ev) => busy(ev.currentTarget, buy));
  $("#add-to-cart").addEventListener("click", (ev) => busy(ev.currentTarget, addToCart));
  $("#card-slot").append(card.node);
  $("#card-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(ev.currentTarget.querySelector("button[type=submit]"), () => saveCardAndBuy(ev.currentTarget));
  });
  $("#card-close").addEventListener("click", () => $("#card-sheet").close());
  $("#unmute").addEventListener("click", (ev) => {
    const video = $("#video");
    video.muted = !video.muted;
    ev.currentTarget.textContent = video.muted ? "🔇" : "🔊";
    ev.currentTarget.setAttribute("aria-pressed", String(!video.muted));
    video.play().catch(() => {});
  });
  const latency = $("#latency");
  latency.setAttribute("aria-pressed", String(preferWebRtc));
  latency.addEventListener("click", () => {
    preferWebRtc = !preferWebRtc;
    latency.setAttribute("aria-pressed", String(preferWebRtc));
    player.reset(null);
    refreshVideo({ force: true });
  });
  $("#video").addEventListener("whepfailed", () => {
    player.reset(null);
    preferWebRtc = false;
    refreshVideo({ force: true });
  });
  $("#watch-replay").addEventListener("click", () => {
    // The viewer asked for the recording: it plays from its start, with controls.
    replayOf = model.stream && model.stream.stream_id;
    refreshVideo();
    $("#video").focus();
  });
  // Vertical video fills a phone; a landscape stream gets a landscape stage.
  $("#video").addEventListener("resize", (ev) => {
    const { videoWidth: w, videoHeight: h } = ev.currentTarget;
    $(".stage").classList.toggle("landscape", w > h);
  });
  setInterval(tickCountdowns, 250);
}

const roomHandlers = {
  snapshot,
  state,
  events,
  kicked: () => toast("You were removed from this room.", "error"),
  error: (error) => toast(explain(error), "error"),
};

/** Channel mode: take part in the room the channel plays now (chat, pins, deals). */
let routing = Promise.resolve();

function followRoute(next) {
  // One switch at a time: a push carries both `route_changed` and `state.channel`.
  routing = routing.then(() => switchRoute(next)).catch((error) => toast(explain(error), "error"));
  return routing;
}

async function switchRoute(next) {
  route = next;
  const showRoom = route && route.route && route.route.room_id;
  if (showRoom !== roomId) {
    if (roomId) await live.unfollow(roomId);
    roomId = showRoom || null;
    // Nothing of the previous show's room stays on screen (its pin, its chat, its stream).
    model = new RoomModel();
    chat.reset();
    redraw.mark(["counts", "pinned", "pinned_message", "polls", "questions", "giveaways", "auctions"]);
    if (roomId) await live.follow(roomId, roomHandlers);
  }
  if (!roomId) $("#title").textContent = route && route.channel ? route.channel.title : id;
  const show = route && route.now;
  $("#now-playing").textContent = show ? `Now: ${show.title}` : "";
  $("#now-playing").classList.toggle("hidden", !show);
  refreshVideo();
}

async function main() {
  wire();
  connectionBadge(live);
  try {
    config().then((cfg) => { whepMax = cfg.whep_max_subscribers ?? whepMax; }).catch(() => {});
    if (channelMode) {
      await live.follow(feed, {
        snapshot: (s) => followRoute(s.channel),
        state: (s) => { if (s.channel) followRoute(s.channel); },
        events: (list) => {
          for (const e of list) {
            if (e.kind === "route_changed") followRoute({ ...route, route: e.route, now: e.now, override: e.override });
          }
        },
        error: (error) => toast(explain(error), "error"),
      });
    } else {
      await live.follow(id, roomHandlers);
    }
    loadGifts();
    const t0 = Date.now();
    const pong = await live.request("ping");
    skew = pong.pong - (t0 + Date.now()) / 2;
  } catch (error) {
    if (error instanceof ApiError) toast(explain(error), "error");
    else throw error;
  }
}

main();
