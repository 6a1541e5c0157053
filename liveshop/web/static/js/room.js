// What a page holds of a room (the viewer's and the studio's): the snapshot, then state
// pushes and events applied to it. Each call says which parts changed, so a page redraws
// only those, once per frame (`Redraw`), however many pushes arrived in between.

/** Lists keyed by string: state pushes key tallies by string (JSON object keys). */
const byId = (items, key) => new Map((items || []).map((item) => [String(item[key]), item]));

function patch(map, id, fields) {
  const item = map.get(String(id));
  if (item) Object.assign(item, fields);
  return Boolean(item);
}

export class RoomModel {
  constructor() {
    this.info = null;
    this.pinned = null;
    this.pinnedMessage = null;
    this.queue = [];
    this.stock = {};
    this.auctions = {};
    this.polls = new Map();
    this.questions = new Map();
    this.giveaways = new Map();
    this.reactions = {};
    this.counts = {}; // viewers, peak_viewers, unique_viewers
    this.stream = null;
    this.chatSettings = null;
  }

  /** A snapshot, or the current view that comes with a recovery (lists, not tallies). */
  view(v) {
    const changed = new Set(["counts"]);
    if (v.room) { this.info = v.room; changed.add("info"); }
    if ("pinned" in v) { this.pinned = v.pinned; changed.add("pinned"); }
    if ("pinned_message" in v) { this.pinnedMessage = v.pinned_message; changed.add("pinned_message"); }
    if (v.queue) { this.queue = v.queue; changed.add("queue"); }
    if (v.stock) { this.stock = v.stock; changed.add("pinned"); }
    if (v.auctions) { this.auctions = v.auctions; changed.add("auctions"); }
    if (v.polls) { this.polls = byId(v.polls, "poll_id"); changed.add("polls"); }
    if (v.questions) { this.questions = byId(v.questions, "question_id"); changed.add("questions"); }
    if (v.giveaways) { this.giveaways = byId(v.giveaways, "giveaway_id"); changed.add("giveaways"); }
    if (v.chat_settings) { this.chatSettings = v.chat_settings; changed.add("chat_settings"); }
    if ("stream" in v) { this.stream = v.stream; changed.add("stream"); }
    this.counters(v);
    return changed;
  }

  /** A push's `state`: only what changed is in it. */
  state(s) {
    const changed = new Set();
    if (s.stock) { Object.assign(this.stock, s.stock); changed.add("pinned"); }
    if (s.auctions) { Object.assign(this.auctions, s.auctions); changed.add("auctions"); }
    if ("stream" in s) { this.stream = s.stream; changed.add("stream"); }
    for (const [part, map, field] of [["polls", this.polls, "tallies"],
      ["questions", this.questions, "votes"], ["giveaways", this.giveaways, "entrants"]]) {
      if (!s[part]) continue;
      for (const [id, value] of Object.entries(s[part])) patch(map, id, { [field]: value });
      changed.add(part);
    }
    if (this.counters(s)) changed.add("counts");
    return changed;
  }

  counters(s) {
    let any = false;
    for (const key of ["viewers", "peak_viewers", "unique_viewers"]) {
      if (s[key] !== undefined) { this.counts[key] = s[key]; any = true; }
    }
    if (s.reactions) { this.reactions = s.reactions; any = true; }
    return any;
  }

  /** One event; the part it changed (null when the room's state is not affected). */
  event(e) {
    switch (e.kind) {
      case "pin":
        this.pinned = e.product;
        this.stock = {}; // the new product's counters follow in a state push
        this.queue = this.queue.filter((p) => p.product_id !== e.product.product_id);
        return "pinned";
      case "unpin": this.pinned = null; this.stock = {}; return "pinned";
      case "product_queued":
        this.queue = [...this.queue.filter((p) => p.product_id !== e.product.product_id), e.product];
        return "queue";
      case "product_unqueued":
        this.queue = this.queue.filter((p) => p.product_id !== e.product_id);
        return "queue";
      case "message_pinned": this.pinnedMessage = e.message; return "pinned_message";
      case "message_unpinned": this.pinnedMessage = null; return "pinned_message";
      case "chat_settings": this.chatSettings = e.settings; return "chat_settings";
      case "poll_created": case "poll_closed":
        this.polls.set(String(e.poll.poll_id), e.poll);
        return "polls";
      case "question": this.questions.set(String(e.question.question_id), e.question); return "questions";
      case "question_answered": patch(this.questions, e.question_id, { answered: true }); return "questions";
      case "giveaway_opened":
        this.giveaways.set(String(e.giveaway.giveaway_id), e.giveaway);
        return "giveaways";
      case "giveaway_drawn": {
        const { winners, seed, entrants, entrants_sha256: sha } = e;
        patch(this.giveaways, e.giveaway_id, { drawn: { winners, seed, entrants, entrants_sha256: sha }, entrants });
        return "giveaways";
      }
      case "deal_started": case "deal_ended":
        if (this.stock[e.sku]) this.stock[e.sku].deal = e.deal;
        return "pinned";
      case "auction_started": this.auctions[e.auction.auction_id] = e.auction; return "auctions";
      case "auction_ended": {
        const a = this.auctions[e.auction_id];
        if (a) Object.assign(a, { phase: "ended", result: e.result, order: e.order });
        return "auctions";
      }
      default:
        return null;
    }
  }
}

/** Parts marked dirty are drawn once, at the next frame (a busy room pushes 20 times a second). */
export class Redraw {
  constructor(draw) {
    this.draw = draw; // part → function
    this.dirty = new Set();
    this.scheduled = false;
  }

  mark(parts) {
    for (const part of parts) if (part && this.draw[part]) this.dirty.add(part);
    if (this.scheduled || !this.dirty.size) return;
    this.scheduled = true;
    requestAnimationFrame(() => this.flush());
  }

  flush() {
    this.scheduled = false;
    const parts = [...this.dirty];
    this.dirty.clear();
    for (const part of parts) this.draw[part]();
  }
}
