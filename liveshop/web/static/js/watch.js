// The viewer page: /app/watch/<room> watches a room, /app/tv/<channel> follows a channel
// (its feed room says what to play; the show's own room carries chat, pins and deals).
// Everything arrives as room events and state over one WebSocket (live.js recovers what a
// dropped connection missed); buying goes to the SKU actors through the same socket.

import { ApiError, config, explain, fromMinor, http, money, newKey, session, toMinor } from "./api.js";
import { Live } from "./live.js";
import { Player } from "./player.js";
import { $, $$, busy, clock, connectionBadge, el, formData, toast } from "./ui.js";

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
const room = {
  id: channelMode ? null : id,
  pinned: null,
  stock: {},
  polls: new Map(),
  questions: new Map(),
  giveaways: new Map(),
  auctions: {},
  stream: null,
  viewers: 0,
  reactions: {},
};
let route = null; // channel mode: what the channel plays

// ---- the video --------------------------------------------------------------------

async function playStream(roomId, stream) {
  const slate = $("#slate");
  $("#live-badge").classList.toggle("hidden", !(stream && stream.status === "live"));
  if (stream && stream.status === "live") {
    slate.classList.add("hidden");
    if (preferWebRtc && room.viewers <= whepMax) {
      try {
        await player.playWhep(roomId);
        return;
      } catch {
        // Full, not yet on air, or no WebRTC path: everyone can play HLS.
      }
    }
    await player.playHls(stream.hls);
  } else if (stream && stream.replay) {
    slate.classList.add("hidden");
    await player.playHls(stream.replay, 0);
  } else {
    player.stop();
    $("#slate-text").textContent = "The host is not live yet. Stay here: the video starts by itself.";
    slate.classList.remove("hidden");
  }
}

async function playRoute() {
  const slate = $("#slate");
  const r = route && route.route;
  const show = route && route.now;
  $("#now-playing").textContent = show ? `Now: ${show.title}` : "";
  $("#live-badge").classList.toggle("hidden", !(r && r.source === "live"));
  if (!r || !r.playlist) {
    player.stop();
    $("#slate-text").textContent = route && route.next
      ? `Up next: ${route.next.title}` : "Nothing on air right now.";
    slate.classList.remove("hidden");
    return;
  }
  slate.classList.add("hidden");
  if (r.source === "live" || r.source === "override") {
    if (preferWebRtc && r.room_id && room.viewers <= whepMax) {
      try {
        await player.playWhep(r.room_id);
        return;
      } catch {
        // fall back to HLS
      }
    }
    await player.playHls(r.playlist);
  } else {
    // Premieres and replays play at the same position for everyone.
    await player.playHls(r.playlist, r.offset + (Date.now() + skew) / 1000 - r.at);
  }
}

function refreshVideo() {
  const work = channelMode ? playRoute() : playStream(room.id, room.stream);
  work.catch((error) => toast(explain(error), "error"));
}

// ---- the room's state ---------------------------------------------------------------

function snapshot(s) {
  $("#title").textContent = s.room.title;
  document.title = `${s.room.title} · liveshop`;
  room.pinned = s.pinned;
  room.stock = s.stock || {};
  // Keyed by string: state pushes key tallies by string (JSON object keys).
  room.polls = new Map((s.polls || []).map((p) => [String(p.poll_id), p]));
  room.questions = new Map((s.questions || []).map((q) => [String(q.question_id), q]));
  room.giveaways = new Map((s.giveaways || []).map((g) => [String(g.giveaway_id), g]));
  room.auctions = s.auctions || {};
  room.reactions = s.reactions || {};
  room.viewers = s.viewers || 0;
  room.stream = s.stream || null;
  $("#chat-log").replaceChildren();
  for (const event of s.recent_chat || []) addChat(event);
  showPinnedMessage(s.pinned_message);
  renderAll();
  if (!channelMode) refreshVideo();
}

function state(s) {
  if (s.stock) Object.assign(room.stock, s.stock);
  if (s.reactions) room.reactions = s.reactions;
  if (s.viewers !== undefined) room.viewers = s.viewers;
  if (s.pinned !== undefined) room.pinned = s.pinned;
  if (s.polls) for (const [pid, tallies] of Object.entries(s.polls)) {
    const poll = room.polls.get(pid);
    if (poll) poll.tallies = Array.isArray(tallies) ? tallies : poll.tallies;
  }
  if (s.questions) for (const [qid, votes] of Object.entries(s.questions)) {
    const question = room.questions.get(qid);
    if (question) question.votes = typeof votes === "number" ? votes : question.votes;
  }
  if (s.giveaways) for (const [gid, entrants] of Object.entries(s.giveaways)) {
    const giveaway = room.giveaways.get(gid);
    if (giveaway && typeof entrants === "number") giveaway.entrants = entrants;
  }
  if (s.auctions) Object.assign(room.auctions, s.auctions);
  if (s.stream !== undefined && JSON.stringify(s.stream && [s.stream.status, s.stream.hls, s.stream.replay])
      !== JSON.stringify(room.stream && [room.stream.status, room.stream.hls, room.stream.replay])) {
    room.stream = s.stream;
    if (!channelMode) refreshVideo();
  } else if (s.stream !== undefined) {
    room.stream = s.stream;
  }
  renderAll();
}

function events(list) {
  for (const e of list) {
    switch (e.kind) {
      case "chat":
      case "system":
      case "gift":
        addChat(e);
        break;
      case "message_deleted": {
        const item = $(`#chat-log [data-offset="${e.message_id}"]`);
        if (item) item.remove();
        break;
      }
      case "message_pinned": showPinnedMessage(e.message); break;
      case "message_unpinned": showPinnedMessage(null); break;
      case "pin": room.pinned = e.product; room.stock = {}; break;
      case "unpin": room.pinned = null; room.stock = {}; break;
      case "poll_created": case "poll_closed": room.polls.set(String(e.poll.poll_id), e.poll); break;
      case "question": room.questions.set(String(e.question.question_id), e.question); break;
      case "question_answered": {
        const q = room.questions.get(String(e.question_id));
        if (q) q.answered = true;
        break;
      }
      case "giveaway_opened": room.giveaways.set(String(e.giveaway.giveaway_id), e.giveaway); break;
      case "giveaway_drawn": {
        const g = room.giveaways.get(String(e.giveaway_id));
        if (g) Object.assign(g, { drawn: true, winners: e.winners });
        if (live.user && e.winners.includes(live.user.id)) toast("You won the giveaway! 🎉");
        break;
      }
      case "deal_started": case "deal_ended":
        if (room.stock[e.sku]) room.stock[e.sku].deal = e.deal;
        break;
      case "auction_started": room.auctions[e.auction.auction_id] = e.auction; break;
      case "auction_ended": {
        const a = room.auctions[e.auction_id];
        if (a) Object.assign(a, { phase: "ended", result: e.result });
        if (live.user && e.result && e.result.winner === live.user.id) toast("You won the auction! Check your orders.");
        break;
      }
      case "user_banned":
        if (live.user && e.user_id === live.user.id) toast("You were removed from this room.", "error");
        break;
      default:
        break;
    }
  }
  renderAll();
}

// ---- rendering ----------------------------------------------------------------------

function renderAll() {
  $("#viewers").textContent = `${room.viewers} watching`;
  for (const button of $$("[data-react]")) {
    button.querySelector("span").textContent = room.reactions[button.dataset.react] || 0;
  }
  renderPinned();
  renderPolls();
  renderQuestions();
  renderGiveaways();
  renderAuctions();
}

/** The pinned product's SKU to buy (the first one in stock, else the first). */
function pinnedSku() {
  const skus = Object.values(room.stock);
  return (skus.find((s) => s.available > 0) || skus[0] || null);
}

function renderPinned() {
  const card = $("#pinned");
  const product = room.pinned;
  card.classList.toggle("hidden", !product);
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
  const available = Object.values(room.stock).reduce((n, s) => n + (s.available || 0), 0);
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

function renderPolls() {
  const open = [...room.polls.values()].filter((p) => !p.closed).slice(-3);
  const closed = [...room.polls.values()].filter((p) => p.closed).slice(-1);
  const list = [...open, ...closed];
  $("#polls").classList.toggle("hidden", !list.length);
  $("#poll-list").replaceChildren(...list.map((poll) => {
    const total = (poll.tallies || []).reduce((a, b) => a + b, 0) || 1;
    return el("fieldset", {}, el("legend", {}, poll.question + (poll.closed ? " (closed)" : "")),
      ...poll.options.map((option, i) => {
        const votes = (poll.tallies || [])[i] || 0;
        return el("button", { type: "button", class: "poll-option", disabled: poll.closed,
          "aria-label": `Vote ${option}: ${votes} votes`,
          onclick: (ev) => busy(ev.currentTarget, () => act("vote", { poll_id: poll.poll_id, option: i }, "Vote counted")) },
        el("span", {}, option), el("span", {}, String(votes)),
        el("span", { class: "meter", "aria-hidden": "true" }, bar(votes / total)));
      }));
  }));
}

/** A meter's bar (set through the CSSOM: the page's CSP allows no inline styles). */
function bar(fraction) {
  const node = el("span");
  node.style.width = `${Math.round(fraction * 100)}%`;
  return node;
}

function renderQuestions() {
  const list = [...room.questions.values()]
    .sort((a, b) => (a.answered - b.answered) || (b.votes - a.votes)).slice(0, 20);
  $("#questions").replaceChildren(...list.map((q) => el("li", { class: q.answered ? "muted" : "" },
    el("span", { class: "who" }, q.user.name), q.text, " ",
    el("button", { type: "button", "aria-label": `Upvote: ${q.text}`, disabled: q.answered,
      onclick: (ev) => busy(ev.currentTarget, () => act("upvote", { question_id: q.question_id })) }, `▲ ${q.votes}`),
    q.answered ? " answered" : "")));
}

function renderGiveaways() {
  const list = [...room.giveaways.values()].slice(-3);
  $("#giveaways").classList.toggle("hidden", !list.length);
  $("#giveaway-list").replaceChildren(...list.map((g) => el("div", { class: "row" },
    el("span", { class: "grow" }, `${g.prize} · ${g.entrants || 0} entered`),
    g.drawn ? el("span", {}, `Winners: ${(g.winners || g.drawn.winners || []).join(", ") || "—"}`)
      : el("button", { type: "button", onclick: (ev) => busy(ev.currentTarget, () => act("enter_giveaway", { giveaway_id: g.giveaway_id }, "You're in!")) }, "Enter"))));
}

function renderAuctions() {
  const list = Object.values(room.auctions).filter((a) => a.phase !== "ended" || a.result).slice(-2);
  $("#auctions").classList.toggle("hidden", !list.length);
  $("#auction-list").replaceChildren(...list.map((a) => {
    const price = a.price === null ? "No bids yet" : money(a.price, a.currency);
    if (a.phase === "ended") {
      const r = a.result || {};
      return el("p", {}, `Ended: ${r.reason === "sold" ? `sold to ${r.winner} for ${money(r.price, a.currency)}` : r.reason || ""}`);
    }
    const inputId = `bid-${a.auction_id}`;
    return el("form", { class: "stack", onsubmit: (ev) => { ev.preventDefault(); bid(a, ev.currentTarget); } },
      el("p", {}, el("strong", {}, price), a.leader ? ` · leading: ${a.leader}` : "",
        " · ", a.phase === "live" ? "ends in " : "starts in ",
        el("span", { role: "timer", dataset: { endsAt: a.phase === "live" ? a.ends_at : a.starts_at } }, "")),
      el("label", { for: inputId }, `Your bid (minimum ${money(a.minimum_bid, a.currency)})`),
      el("div", { class: "row" },
        el("input", { id: inputId, name: "amount", inputmode: "decimal", class: "grow", value: fromMinor(a.minimum_bid, a.currency), required: true }),
        el("button", { type: "submit", class: "primary", disabled: a.phase !== "live" }, "Bid")));
  }));
}

async function bid(auction, form) {
  const amount = toMinor(formData(form).amount, auction.currency);
  if (amount === null || amount <= 0) return toast("Enter an amount.", "error");
  await busy(form.querySelector("button"), () => act("bid", { auction: auction.auction_id, amount, key: newKey("bid") }, "Bid placed"));
}

function addChat(e) {
  const log = $("#chat-log");
  if (log.querySelector(`[data-offset="${e.offset}"]`)) return;
  let item;
  if (e.kind === "chat") item = el("li", { dataset: { offset: e.offset } }, el("span", { class: "who" }, e.user.name), e.text);
  else if (e.kind === "gift") item = el("li", { class: "system", dataset: { offset: e.offset } }, `${e.user.name} sent ${e.quantity} × ${e.gift.name} 🎁`);
  else item = el("li", { class: "system", dataset: { offset: e.offset } }, e.text);
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(item);
  while (log.children.length > 200) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function showPinnedMessage(message) {
  const node = $("#pinned-message");
  node.classList.toggle("hidden", !message);
  node.textContent = message ? `📌 ${message.user ? `${message.user.name}: ` : ""}${message.text}` : "";
}

// ---- actions ------------------------------------------------------------------------

/** A room operation in the room we take part in; a toast says how it went. */
async function act(op, fields, done) {
  if (!room.id) return toast("Nothing to take part in right now.", "error");
  try {
    const result = await live.request(op, { room: room.id, ...fields });
    if (done) toast(done);
    return result;
  } catch (error) {
    toast(explain(error), "error");
    return null;
  }
}

/** Send `op` with an idempotency key; a temporary failure is retried with the same key, so a
 *  lost answer never buys twice. */
async function keyed(op, fields) {
  const key = newKey(op);
  const deadline = Date.now() + 60000; // outlasts a reconnect (backoff tops out at 8 s)
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await live.request(op, { room: room.id, ...fields, key });
    } catch (error) {
      if (!error.temporary || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, Math.min(4000, 500 * (attempt + 1))));
    }
  }
}

async function buy() {
  const sku = pinnedSku();
  if (!sku) return;
  const who = session();
  const methods = await http("GET", `/users/${encodeURIComponent(who.user.id)}/payment-methods`).catch(() => []);
  if (!methods.length) {
    // No saved card: ask for one here, without leaving the stream.
    $("#card-form").classList.remove("hidden");
    $("#card-number").focus();
    return;
  }
  await purchase(sku);
}

async function purchase(sku) {
  const quantity = Number($("#quantity").value);
  try {
    const result = await keyed("buy", { sku: sku.sku, quantity, pay: true });
    const paid = result.payment && result.payment.status === "succeeded";
    toast(paid ? `Bought! Order ${result.order}` : `Order ${result.order} placed: ${result.payment ? "payment needs attention in Orders" : "pay in Orders"}`);
  } catch (error) {
    toast(explain(error), "error");
  }
}

async function saveCardAndBuy(form) {
  const who = session();
  const data = formData(form);
  try {
    await http("POST", `/users/${encodeURIComponent(who.user.id)}/payment-methods`, {
      number: data.number.replace(/\s+/g, ""), exp_month: Number(data.exp_month), exp_year: Number(data.exp_year),
    });
  } catch (error) {
    return toast(explain(error), "error");
  }
  form.classList.add("hidden");
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
      try {
        const sent = await keyed("send_gift", { gift_id: g.id, quantity: 1 });
        $("#coins").textContent = sent.balance;
      } catch (error) {
        toast(explain(error), "error");
      }
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
  for (const button of $$("[data-emoji]")) {
    button.addEventListener("click", () => {
      const input = $("#chat-input");
      input.value += button.dataset.emoji;
      input.focus();
    });
  }
  for (const button of $$("[data-react]")) {
    button.addEventListener("click", () => act("react", { kind: button.dataset.react, count: 1 }));
  }
  $("#buy").addEventListener("click", (ev) => busy(ev.currentTarget, buy));
  $("#add-to-cart").addEventListener("click", (ev) => busy(ev.currentTarget, addToCart));
  $("#card-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(ev.currentTarget.querySelector("button"), () => saveCardAndBuy(ev.currentTarget));
  });
  $("#unmute").addEventListener("click", (ev) => {
    const video = $("#video");
    video.muted = !video.muted;
    ev.currentTarget.textContent = video.muted ? "Unmute" : "Mute";
    ev.currentTarget.setAttribute("aria-pressed", String(!video.muted));
    video.play().catch(() => {});
  });
  const latency = $("#latency");
  latency.setAttribute("aria-pressed", String(preferWebRtc));
  latency.addEventListener("click", () => {
    preferWebRtc = !preferWebRtc;
    latency.setAttribute("aria-pressed", String(preferWebRtc));
    player.reset(null);
    refreshVideo();
  });
  $("#video").addEventListener("whepfailed", () => {
    player.reset(null);
    preferWebRtc = false;
    refreshVideo();
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
  if (showRoom !== room.id) {
    if (room.id) await live.unfollow(room.id);
    room.id = showRoom || null;
    if (room.id) await live.follow(room.id, roomHandlers);
  }
  if (!room.id) $("#title").textContent = route && route.channel ? route.channel.title : id;
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
