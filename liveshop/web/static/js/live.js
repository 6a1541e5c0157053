// The WebSocket client every page uses: one connection, requests matched to replies by id,
// rooms followed by offset. It reconnects by itself (backoff with jitter) and resubscribes
// with the last offset it holds, so a dropped network loses nothing: the gateway answers
// with exactly the missed events (protocol.md, "Recovery"). A jump in offsets resyncs the
// same way; a new epoch or a recovery that is too old starts again from a snapshot.

import { ApiError, config, ensureSession, session } from "./api.js";

const REQUEST_TIMEOUT = 15000;
const BACKOFF = [250, 500, 1000, 2000, 4000, 8000];

export class Live {
  constructor({ guest = true } = {}) {
    this.guest = guest;
    this.socket = null;
    this.nextId = 1;
    this.pending = new Map(); // id → {resolve, reject, timer}
    this.rooms = new Map(); // room → {handlers, epoch, offset, ready, buffer}
    this.status = "connecting";
    this.statusListeners = new Set();
    this.user = null;
    this.attempt = 0;
    this.closedByUs = false;
    this.opened = null; // a promise resolved when connected
    this.reconnectTimer = null;
    window.addEventListener("online", () => this.reconnectSoon(0));
  }

  onStatus(listener) {
    this.statusListeners.add(listener);
    listener(this.status);
  }

  setStatus(status, detail) {
    this.status = status;
    for (const listener of this.statusListeners) listener(status, detail);
  }

  /** Connect (once); later calls return the same promise until the socket drops. */
  start() {
    this.opened ??= this.open().catch((error) => {
      // The first connection failed (gateway away, refused): keep trying, like after a drop.
      if (this.socket) this.socket.onclose = null;
      if (this.socket) this.socket.close();
      this.socket = null;
      this.opened = null;
      if (this.status !== "signed_out") {
        this.setStatus("reconnecting", error.code);
        this.reconnectSoon();
      }
      throw error;
    });
    return this.opened;
  }

  async open() {
    const cfg = await config();
    const who = await ensureSession({ guest: this.guest });
    if (!who) {
      this.setStatus("signed_out");
      throw new ApiError("unauthenticated", "Sign in to continue.");
    }
    const socket = new WebSocket(cfg.ws_url);
    this.socket = socket;
    await new Promise((resolve, reject) => {
      socket.onopen = resolve;
      socket.onerror = () => reject(new ApiError("unavailable", "Cannot reach liveshop.", { temporary: true }));
      socket.onclose = () => reject(new ApiError("unavailable", "Cannot reach liveshop.", { temporary: true }));
    });
    socket.onmessage = (message) => this.receive(message.data);
    socket.onclose = (event) => this.closed(socket, event);
    socket.onerror = () => {};
    let hello;
    try {
      hello = await this.send({ op: "connect", token: who.token });
    } catch (error) {
      if (["token_invalid", "token_expired"].includes(error.code)) {
        // A guest simply becomes a new guest; anyone else must sign in again.
        localStorage.removeItem("liveshop.token");
        if (!who.guest || !this.guest) this.setStatus("signed_out");
      }
      throw error;
    }
    this.user = hello.user;
    this.attempt = 0;
    this.setStatus("online");
    // Resubscribe every room this page follows, from the last offset held.
    await Promise.all([...this.rooms.keys()].map((room) => this.join(room)));
    return hello;
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.opened = null;
    for (const [id, call] of this.pending) {
      clearTimeout(call.timer);
      call.reject(new ApiError("unavailable", "The connection dropped; try again.", { temporary: true }));
      this.pending.delete(id);
    }
    for (const state of this.rooms.values()) state.ready = false;
    if (this.closedByUs) return;
    if (event.code === 1008 && /expired|token/i.test(event.reason || "")) {
      // An expired or refused token: a guest gets a new one; others must sign in again.
      const who = session();
      if (!who || who.guest) localStorage.removeItem("liveshop.token");
    }
    this.setStatus("reconnecting", event.code);
    this.reconnectSoon();
  }

  reconnectSoon(delay) {
    if (this.closedByUs || this.socket || this.reconnectTimer) return;
    const base = delay ?? BACKOFF[Math.min(this.attempt, BACKOFF.length - 1)];
    this.attempt += 1;
    this.reconnectTimer = setTimeout(async () => {
      this.reconnectTimer = null;
      // A failure schedules the next attempt itself (start()).
      await this.start().catch(() => {});
    }, base * (0.75 + Math.random() * 0.5));
  }

  stop() {
    this.closedByUs = true;
    if (this.socket) this.socket.close(1000);
  }

  send(message, timeout = REQUEST_TIMEOUT) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new ApiError("unavailable", "Reconnecting…", { temporary: true }));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ApiError("unavailable", "No answer in time; try again.", { temporary: true }));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      socket.send(JSON.stringify({ ...message, id }));
    });
  }

  /** An operation (protocol.md): waits for the connection, then for its one reply. */
  async request(op, fields = {}) {
    await this.start();
    return this.send({ ...fields, op });
  }

  receive(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message.push !== undefined) {
      this.push(message);
      return;
    }
    const call = this.pending.get(message.id);
    if (!call) return;
    this.pending.delete(message.id);
    clearTimeout(call.timer);
    if (message.error) {
      const e = message.error;
      call.reject(new ApiError(e.code, e.message, { temporary: e.temporary, details: e.details }));
    } else {
      call.resolve(message.result);
    }
  }

  /**
   * Follow a room. `handlers`: snapshot(result) for a fresh start, events(list) for events in
   * offset order (live or recovered), state(partial) for counters, analytics(report) for
   * staff, kicked(reason).
   */
  async follow(room, handlers) {
    const held = this.rooms.get(room);
    if (held) {
      held.handlers = handlers;
      return;
    }
    this.rooms.set(room, { handlers, epoch: null, offset: null, ready: false, buffer: [] });
    await this.start();
    if (!this.rooms.get(room).ready) await this.join(room);
  }

  async unfollow(room) {
    const state = this.rooms.get(room);
    this.rooms.delete(room);
    // Even before its subscribe is answered: the server counts it against the room limit.
    if (state && this.socket) {
      try {
        await this.send({ op: "unsubscribe", room });
      } catch {
        // Gone with the connection anyway.
      }
    }
  }

  async join(room) {
    const state = this.rooms.get(room);
    if (!state) return;
    state.ready = false;
    state.buffer = [];
    const since = state.offset !== null ? { offset: state.offset, epoch: state.epoch } : undefined;
    let result;
    try {
      result = await this.send({ op: "subscribe", room, ...(since ? { since } : {}) });
    } catch (error) {
      if (error.code === "conflict" && this.socket) {
        // The server still has us subscribed (an unsubscribe crossed it): start clean.
        await this.send({ op: "unsubscribe", room }).catch(() => {});
        if (this.rooms.get(room) === state) setTimeout(() => this.join(room), 100);
        return;
      }
      if (state.handlers.error) state.handlers.error(error);
      if (error.temporary && this.socket) setTimeout(() => this.join(room), 1000);
      return;
    }
    if (this.rooms.get(room) !== state) return;
    state.epoch = result.epoch;
    state.offset = result.offset;
    if (result.recovered) {
      if (result.events.length && state.handlers.events) state.handlers.events(result.events, true);
      if (state.handlers.state) state.handlers.state(result, true);
    } else if (state.handlers.snapshot) {
      state.handlers.snapshot(result);
    }
    state.ready = true;
    const buffered = state.buffer;
    state.buffer = [];
    for (const push of buffered) this.roomPush(state, push);
  }

  push(message) {
    const state = this.rooms.get(message.room);
    if (!state) return;
    if (message.push === "room") {
      if (!state.ready) state.buffer.push(message);
      else this.roomPush(state, message);
    } else if (message.push === "analytics") {
      if (state.handlers.analytics) state.handlers.analytics(message.analytics);
    } else if (message.push === "kicked") {
      this.rooms.delete(message.room);
      if (state.handlers.kicked) state.handlers.kicked(message.reason);
    }
  }

  roomPush(state, message) {
    if (message.epoch !== state.epoch) {
      // The room's history was reset: start again from a snapshot.
      state.offset = null;
      this.resync(message.room);
      return;
    }
    const fresh = [];
    for (const event of message.events || []) {
      if (event.offset <= state.offset) continue; // already held
      if (event.offset !== state.offset + 1) {
        // A gap (the broker dropped a message): fetch exactly what is missing.
        if (fresh.length && state.handlers.events) state.handlers.events(fresh, false);
        this.resync(message.room);
        return;
      }
      state.offset = event.offset;
      fresh.push(event);
    }
    if (fresh.length && state.handlers.events) state.handlers.events(fresh, false);
    if (message.state && state.handlers.state) state.handlers.state(message.state, false);
  }

  async resync(room) {
    const state = this.rooms.get(room);
    if (!state || !state.ready) return;
    state.ready = false;
    try {
      await this.send({ op: "unsubscribe", room });
    } catch {
      // Either way, subscribe again.
    }
    await this.join(room);
  }
}
