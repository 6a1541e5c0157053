// The channel grid: every channel with what is on now (and how far it is) and next, filters
// by category and region, and the rooms live outside the grid. Public: no sign-in needed.
// Uses GET /grid and GET /rooms (docs/protocol.md).

import { explain, http } from "./api.js";
import { $, dateTime, el, timeOfDay } from "./ui.js";

const POLL_MS = 30_000;
// Refresh a little after a show boundary, so the server has moved the slot on.
const BOUNDARY_SLACK_MS = 1_500;

const grid = $("#grid");
const status = $("#grid-status");
const filters = { category: $("#filter-category"), region: $("#filter-region") };

let channels = []; // the last GET /grid answer
let timer = null;

const nowSec = () => Date.now() / 1000;

// -- filters (kept in the address, so a filtered grid can be shared or bookmarked) -----------

for (const [key, select] of Object.entries(filters)) {
  select.addEventListener("change", () => {
    const next = new URLSearchParams(location.search);
    if (select.value) next.set(key, select.value);
    else next.delete(key);
    const query = next.toString();
    history.replaceState(null, "", query ? `?${query}` : location.pathname);
    render();
  });
}

/** Offer every value the channels have, and keep the chosen one even if it went away. */
function fillOptions(select, key, values) {
  const chosen = new URLSearchParams(location.search).get(key) || "";
  const all = [...new Set([...values, chosen].filter(Boolean))].sort((a, b) => a.localeCompare(b));
  const first = select.options[0];
  select.replaceChildren(first, ...all.map((v) => el("option", { value: v, selected: v === chosen }, v)));
  select.value = chosen;
}

// -- rendering ------------------------------------------------------------------------------

function timeOrDate(epoch) {
  // Later today: the time is enough; further off, say which day.
  return epoch - nowSec() < 18 * 3600 ? timeOfDay(epoch) : dateTime(epoch);
}

function nowSlot(show) {
  if (!show) {
    return el("div", { class: "slot" },
      el("h4", {}, "Now"),
      el("p", { class: "muted" }, "Between shows: replays and highlights."));
  }
  const length = Math.max(1, show.ends_at - show.starts_at);
  const done = Math.min(length, Math.max(0, nowSec() - show.starts_at));
  const left = Math.max(1, Math.ceil((show.ends_at - nowSec()) / 60));
  const percent = Math.round((done / length) * 100);
  return el("div", { class: "slot" },
    el("h4", {}, "Now ", show.status === "live" ? el("span", { class: "badge", "data-status": "online" }, "Live") : null),
    el("p", {}, el("strong", {}, show.title)),
    el("p", { class: "muted" }, `${timeOfDay(show.starts_at)}–${timeOfDay(show.ends_at)} · ${left} min left`),
    el("progress", { max: length, value: done, "aria-label": `${show.title}: ${percent}% done` }));
}

function nextSlot(show) {
  return el("div", { class: "slot" },
    el("h4", {}, "Next"),
    show
      ? el("p", {}, el("strong", {}, show.title), " ", el("span", { class: "muted" }, `at ${timeOrDate(show.starts_at)}`))
      : el("p", { class: "muted" }, "Nothing scheduled yet."));
}

function card({ channel, now, next }) {
  const titleId = `ch-${channel.id}`;
  const where = [channel.category, channel.region].filter(Boolean).join(" · ");
  return el("article", { class: "card channel", "data-channel": channel.id, "aria-labelledby": titleId },
    el("div", { class: "row" },
      el("div", { class: "grow" },
        el("h3", { id: titleId }, channel.title),
        el("p", { class: "muted" }, where)),
      el("a", { class: "button primary", href: `/app/tv/${encodeURIComponent(channel.id)}`,
        "aria-label": `Watch ${channel.title}` }, "Watch")),
    nowSlot(now),
    nextSlot(next));
}

function render() {
  const wanted = { category: filters.category.value, region: filters.region.value };
  const shown = channels.filter(({ channel }) =>
    (!wanted.category || channel.category === wanted.category)
    && (!wanted.region || channel.region === wanted.region));
  // A refresh replaces the cards: put keyboard focus back on the same channel's link.
  const focused = document.activeElement?.closest?.("[data-channel]")?.dataset.channel;
  grid.replaceChildren(...shown.map(card));
  if (focused) grid.querySelector(`[data-channel="${CSS.escape(focused)}"] a`)?.focus();
  if (!channels.length) {
    grid.append(el("p", { class: "card muted" }, "No channels yet. Check back soon."));
  } else if (!shown.length) {
    const reset = el("button", { type: "button" }, "Show all channels");
    reset.addEventListener("click", () => {
      for (const select of Object.values(filters)) select.value = "";
      history.replaceState(null, "", location.pathname);
      render();
    });
    grid.append(el("div", { class: "card" }, el("p", {}, "No channel matches these filters."), reset));
  }
}

// -- live rooms -----------------------------------------------------------------------------

function renderRooms(rooms) {
  // Rooms keep status "live" once made, and every booked show has one, so rooms of a
  // channel count only while they are its now-show's room (the grid lists the rest);
  // channel feed rooms ("channel:<id>") are the channels themselves.
  const onAir = new Set(channels.map((c) => c.now?.room_id).filter(Boolean));
  const live = rooms.filter((r) => r.status === "live" && !r.id.startsWith("channel:")
    && (!r.channel_id || onAir.has(r.id)));
  $("#room-list").replaceChildren(...live.map((r) => el("li", {},
    el("a", { href: `/app/watch/${encodeURIComponent(r.id)}` }, r.title || r.id))));
  $("#rooms-empty").classList.toggle("hidden", live.length > 0);
}

// -- refresh: every 30 s, and just after the next show starts or ends ------------------------

function schedule() {
  clearTimeout(timer);
  const now = nowSec();
  const boundaries = channels.flatMap((c) => [c.now?.ends_at, c.next?.starts_at])
    .filter((t) => typeof t === "number" && t > now);
  const soonest = boundaries.length ? Math.min(...boundaries) : Infinity;
  const wait = Math.min(POLL_MS, (soonest - now) * 1000 + BOUNDARY_SLACK_MS);
  timer = setTimeout(refresh, Math.max(1000, wait));
}

async function refresh() {
  if (document.hidden) { // nobody looking: refresh when the page shows again
    clearTimeout(timer);
    return;
  }
  try {
    const [answer, rooms] = await Promise.all([
      http("GET", "/grid", undefined, { auth: false }),
      http("GET", "/rooms?limit=50", undefined, { auth: false }).catch(() => null),
    ]);
    channels = answer;
    fillOptions(filters.category, "category", channels.map((c) => c.channel.category));
    fillOptions(filters.region, "region", channels.map((c) => c.channel.region));
    render();
    if (rooms) renderRooms(rooms);
    status.textContent = `Updated at ${timeOfDay(nowSec())}.`;
  } catch (error) {
    // Keep what is shown; say it may be stale.
    status.textContent = channels.length
      ? `Could not refresh (${explain(error)}) Showing the last update.`
      : `Could not load the channels: ${explain(error)}`;
  }
  schedule();
}

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) refresh();
});

refresh();
