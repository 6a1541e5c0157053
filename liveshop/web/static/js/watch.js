// The viewer page: /app/watch/<room> watches a room, /app/tv/<channel> follows a channel
// (its feed room says what to play; the show's own room carries chat, pins and deals).
// Everything arrives as room events and state over one WebSocket (live.js recovers what a
// dropped connection missed); buying goes to the SKU actors through the same socket.

import { ApiError, config, explain, fromMinor, http, money, newKey, session, toMinor } from "./api.js";
import { Live } from "./live.js";
import { Player } from "./player.js";
import { cardFields, markCardError, saveCard, savedMethods } from "./shop.js";
import { RoomModel, Redraw } from "./room.js";
import { $, $$, attempt, busy, clock, connectionBadge, el, formData, sync, toast } from "./ui.js";

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
/** The stream the player was last set to (health updates every second change nothing);
 *  undefined until the first snapshot says whether there is one. */
let playing;

// ---- the video --------------------------------------------------------------------

async function playStream(roomId, stream) {
  const slate = $("#slate");
  $("#live-badge").classList.toggle("hidden", !(stream && stream.status === "live"));
  if (stream && stream.status === "live") {
    slate.classList.add("hidden");
    if (preferWebRtc && (model.counts.viewers || 0) <= whepMax) {
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
    if (preferWebRtc && r.room_id && (model.counts.viewers || 0) <= whepMax) {
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
  const work = channelMode ? playRoute() : playStream(roomId, model.stream);
  work.catch((error) => toast(explain(error), "error"));
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
  stream: () => {
    const s = model.stream;
    const key = s ? `${s.status} ${s.hls} ${s.replay}` : null;
    if (key !== playing && !channelMode) {
      playing = key;
      refreshVideo();
    }
  },
});

function snapshot(s) {
  model = new RoomModel();
  $("#chat-log").replaceChildren();
  for (const event of s.recent_chat || []) addChat(event);
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
      case "chat": case "system": case "gift": addChat(e); break;
      case "message_deleted": {
        const item = $(`#chat-log [data-offset="${e.message_id}"]`);
        if (item) item.remove();
        break;
      }
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

function addChat(e) {
  // Each event arrives once (live.js follows offsets): no duplicate check per message.
  const log = $("#chat-log");
  let item;
  if (e.kind === "chat") item = el("li", { dataset: { offset: e.offset } }, el("span", { class: "who" }, e.user.name), e.text);
  else if (e.kind === "gift") item = el("li", { class: "system", dataset: { offset: e.offset } }, `${e.user.name} sent ${e.quantity} × ${e.gift.name} 🎁`);
  else item = el("li", { class: "system", dataset: { offset: e.offset } }, e.text);
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  log.append(item);
  if (log.children.length > 200) log.firstElementChild.remove();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

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
    // No saved card: ask for one here, without leaving the stream.
    $("#card-form").classList.remove("hidden");
    card.inputs.number.focus();
    return;
  }
  await purchase(sku);
}

async function purchase(sku) {
  const quantity = Number($("#quantity").value);
  await attempt(() => keyed("buy", { sku: sku.sku, quantity, pay: true }), (result) => (
    result.payment && result.payment.status === "succeeded" ? `Bought! Order ${result.order}`
      : `Order ${result.order} placed: ${result.payment ? "payment needs attention in Orders" : "pay in Orders"}`));
}

async function saveCardAndBuy(form) {
  try {
    await saveCard(session(), card.read());
  } catch (error) {
    if (!markCardError(card, error)) toast(explain(error), "error");
    return;
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
  $("#card-slot").append(card.node);
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
  if (showRoom !== roomId) {
    if (roomId) await live.unfollow(roomId);
    roomId = showRoom || null;
    if (roomId) await live.follow(roomId, roomHandlers);
  }
  if (!roomId) $("#title").textContent = route && route.channel ? route.channel.title : id;
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
