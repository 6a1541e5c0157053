// The chat log of a room page (the viewer's and the studio's): messages in offset order
// however they arrive (live pushes, a recovery, the history read), each once. The newest stay
// in view unless the reader scrolled up; reaching the top loads older messages from the
// room's history (protocol.md: the `history` operation), which keeps every message, not only
// the recovery window.

/** Room events that are chat lines. */
export const CHAT_KINDS = new Set(["chat", "system", "gift"]);

const PAGE = 50; // messages per history read
const LIVE_KEEP = 200; // kept while following the newest (older ones can be loaded again)
const MAX_KEEP = 2000; // kept at most, however far back the reader went
const NEAR = 48; // pixels from an edge that count as "at" it

const offsetOf = (node) => (node.dataset.offset === undefined ? null : Number(node.dataset.offset));

export class ChatLog {
  /**
   * `list`: the <ul>; `render(event)`: its <li>; `read(before, limit)`: the history read
   * (`{messages, more}`), or null where there is none.
   */
  constructor(list, { render, read = null }) {
    this.list = list;
    this.render = render;
    this.read = read;
    this.more = false; // older messages exist in the history
    this.loading = null;
    this.generation = 0; // a reset drops the answers of reads made before it
    list.addEventListener("scroll", () => {
      if (list.scrollTop < NEAR) this.older();
    }, { passive: true });
  }

  /** A fresh snapshot: forget everything shown. */
  reset() {
    this.generation += 1;
    this.loading = null;
    this.more = false;
    this.list.removeAttribute("aria-busy");
    this.list.replaceChildren();
  }

  atBottom() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < NEAR;
  }

  has(offset) {
    return Boolean(this.list.querySelector(`[data-offset="${offset}"]`));
  }

  /** The oldest offset shown (the next history page ends before it). */
  oldest() {
    for (const node of this.list.children) {
      const offset = offsetOf(node);
      if (offset !== null) return offset;
    }
    return null;
  }

  /** One message, live or recovered: in its place by offset. */
  add(event) {
    if (this.has(event.offset)) return;
    const follow = this.atBottom();
    this.place(this.render(event), event.offset);
    this.trim(follow);
    if (follow) this.list.scrollTop = this.list.scrollHeight;
  }

  /** A line of the page's own (a moderation note): at the end, no offset. */
  note(node) {
    const follow = this.atBottom();
    this.list.append(node);
    this.trim(follow);
    if (follow) this.list.scrollTop = this.list.scrollHeight;
  }

  remove(offset) {
    this.list.querySelector(`[data-offset="${offset}"]`)?.remove();
  }

  place(node, offset) {
    // Usually the newest (the end); history pages go before the first newer message.
    let after = null;
    for (let child = this.list.lastElementChild; child; child = child.previousElementSibling) {
      const held = offsetOf(child);
      if (held !== null && held < offset) {
        after = child;
        break;
      }
    }
    if (after) after.after(node);
    else this.list.prepend(node);
  }

  trim(following) {
    const keep = following ? LIVE_KEEP : MAX_KEEP;
    const lines = this.list.children;
    while (lines.length > keep) {
      lines[0].remove();
      this.more = Boolean(this.read); // the history still has them
    }
  }

  /** On (re)subscribe: the newest page of the history, merged with what is shown. */
  async fill() {
    if (!this.read) return;
    const generation = this.generation;
    let page;
    try {
      page = await this.read(undefined, PAGE);
    } catch (error) {
      // No history read here (an older server, or refused): the snapshot's recent chat is
      // all there is. A temporary failure is tried again at the next (re)subscribe.
      if (!error.temporary) this.read = null;
      if (generation === this.generation) this.more = false;
      return;
    }
    if (generation !== this.generation) return;
    const follow = this.atBottom();
    for (const event of page.messages || []) {
      if (!this.has(event.offset)) this.place(this.render(event), event.offset);
    }
    // Older than what we hold, unless the page reached back past our oldest message.
    this.more = Boolean(page.more);
    if (follow) this.list.scrollTop = this.list.scrollHeight;
    this.fillView();
  }

  /** Until the log can scroll there is no top to reach: load older pages now (a few). */
  async fillView() {
    for (let i = 0; i < 3 && this.more && this.list.scrollHeight <= this.list.clientHeight; i++) {
      if (!(await this.older())) return;
    }
  }

  /** The page of messages before the oldest shown; true if any came. */
  older() {
    if (!this.read || !this.more || this.loading) return this.loading || Promise.resolve(false);
    const generation = this.generation;
    const before = this.oldest();
    if (before === null || before <= 1) {
      this.more = false;
      return Promise.resolve(false);
    }
    this.list.setAttribute("aria-busy", "true");
    this.loading = this.read(before, PAGE).then((page) => {
      if (generation !== this.generation) return false;
      const messages = (page.messages || []).filter((e) => !this.has(e.offset));
      // Keep what the reader looks at in place while lines appear above it.
      const fromBottom = this.list.scrollHeight - this.list.scrollTop;
      for (const event of messages) this.place(this.render(event), event.offset);
      this.list.scrollTop = this.list.scrollHeight - fromBottom;
      this.more = Boolean(page.more) && messages.length > 0;
      return messages.length > 0;
    }, () => {
      if (generation === this.generation) this.more = false;
      return false;
    }).finally(() => {
      if (generation === this.generation) {
        this.loading = null;
        this.list.removeAttribute("aria-busy");
      }
    });
    return this.loading;
  }
}
