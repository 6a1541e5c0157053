"""A terminal viewer: ``python -m liveshop.client --token T --room demo`` (``liveshop up
--demo`` prints the whole command, ready to paste).

It shows the room as a person reads it: the snapshot (title, what is pinned, stock, deals,
recent chat), then chat as ``name: text``, pins, stock and deal changes, and errors. Each line
typed is sent as a chat message; ``/buy SKU [QUANTITY]`` buys, ``/react KIND`` reacts, ``/help``
lists these. It ends at the end of its input (Ctrl-D, or the end of a pipe) once the server
has answered everything sent and the room's events up to those answers have arrived, and
when the server closes the connection.

It speaks only the public protocol (docs/protocol.md) and doubles as an example client.
Exit status: 0 at the end of the input, 1 if the connection failed or was lost, 2 if the
token or the room was refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import secrets
import sys
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

#: ISO 4217 currencies whose minor unit is not a hundredth.
_EXPONENTS = {
    **dict.fromkeys(("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF",
                     "UGX", "VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}  # fmt: skip
#: How long the end of the input waits for the answers and the events they published.
DRAIN_TIMEOUT = 10.0
HELP = "type to chat; /buy SKU [QUANTITY], /react KIND, /help; Ctrl-D leaves"


def money(minor: Any, currency: Any) -> str:
    """``12999, "USD"`` → ``129.99 USD`` (amounts travel as integer minor units)."""
    if not isinstance(minor, int):
        return "?"
    code = str(currency or "")
    exponent = _EXPONENTS.get(code, 2)
    sign, minor = ("-", -minor) if minor < 0 else ("", minor)
    whole, cents = divmod(minor, 10**exponent)
    amount = f"{whole:,}" + (f".{cents:0{exponent}d}" if exponent else "")
    return f"{sign}{amount} {code}".strip()


def clean(value: Any) -> str:
    """Text from the server as it may be printed: control characters (escape sequences a
    terminal would obey), line separators and bidirectional overrides shown as escapes."""
    return "".join(c.encode("unicode_escape").decode() if _unsafe(c) else c for c in str(value))


def _unsafe(c: str) -> bool:
    return (
        unicodedata.category(c) in ("Cc", "Zl", "Zp")
        or "\u202a" <= c <= "\u202e"
        or ("\u2066" <= c <= "\u2069")
    )


def _name(user: Any) -> str:
    if isinstance(user, dict):
        return clean(user.get("name") or user.get("id") or "?")
    return clean(user or "?")


def _product(card: Any) -> str:
    if not isinstance(card, dict):
        return "?"
    title = clean(card.get("title") or card.get("product_id") or "?")
    price = card.get("price_minor")
    return f"{title} — {money(price, card.get('currency'))}" if price is not None else title


def _clock(at: Any) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if isinstance(at, int | float) else "?"


def _deal(sku: str, deal: dict[str, Any], currency: Any) -> str:
    price = money(deal.get("price_minor"), currency)
    phase = deal.get("phase")
    if phase == "upcoming":
        return f"deal on {sku}: {price} from {_clock(deal.get('starts_at'))}"
    if phase == "live":
        left = deal.get("remaining")
        return f"deal on {sku}: {price}, {left} left, until {_clock(deal.get('ends_at'))}"
    return f"deal on {sku} ended ({deal.get('sold', 0)} sold)"


class View:
    """What the terminal shows of one room: frames in, lines out. No I/O, no clock."""

    def __init__(self, room: str) -> None:
        self.room = room
        #: The last event offset shown (the snapshot's, then each event's).
        self.offset = -1
        #: Per SKU, what was last shown of its stock: (available, deal phase, deal remaining).
        self._stock: dict[str, tuple[Any, Any, Any]] = {}
        #: Per SKU, its currency (deal events carry only the price).
        self._currency: dict[str, Any] = {}

    # -- the snapshot ---------------------------------------------------------------------

    def snapshot(self, result: dict[str, Any]) -> list[str]:
        room = result.get("room") or {}
        self.offset = result.get("offset", -1)
        status = clean(room.get("status") or "?")
        watching = result.get("viewers")
        lines = [
            f"== {clean(room.get('title') or self.room)} ({clean(room.get('id') or self.room)})"
            f" — {status}" + (f", {watching} watching" if watching is not None else "")
        ]
        pinned = result.get("pinned")
        lines.append(f"pinned: {_product(pinned)}" if pinned else "pinned: nothing")
        lines += self._stock_lines(result.get("stock") or {}, always=True)
        chat = result.get("recent_chat") or []
        if chat:
            lines.append("recent chat:")
            lines += ["  " + line for event in chat for line in self._event(event)]
        return lines

    # -- pushes ---------------------------------------------------------------------------

    def push(self, message: dict[str, Any]) -> list[str]:
        kind = message.get("push")
        if message.get("room") not in (None, self.room):
            return []
        if kind == "kicked":
            return [f"* you were removed from the room ({clean(message.get('reason'))})"]
        if kind != "room":
            return []  # analytics and future pushes: not for this client
        lines: list[str] = []
        for event in message.get("events") or []:
            offset = event.get("offset")
            if isinstance(offset, int):
                if offset <= self.offset:
                    continue  # already shown
                self.offset = offset
            lines += self._event(event)
        stock = (message.get("state") or {}).get("stock")
        if stock is not None:
            lines += self._stock_lines(stock)
        return lines

    def _event(self, event: dict[str, Any]) -> list[str]:
        kind = event.get("kind")
        by = f" by {clean(event['by'])}" if event.get("by") else ""
        match kind:
            case "chat":
                return [f"{_name(event.get('user'))}: {clean(event.get('text', ''))}"]
            case "system":
                return [f"* {clean(event.get('text', ''))}"]
            case "pin":
                return [f"* pinned: {_product(event.get('product'))}"]
            case "unpin":
                return ["* unpinned"]
            case "product_queued":
                return [f"* up next: {_product(event.get('product'))}"]
            case "message_deleted":
                return [f"* a message was deleted{by}"]
            case "deal_started" | "deal_ended":
                deal = dict(event.get("deal") or {})
                if kind == "deal_ended":
                    deal["phase"] = "ended"
                sku = str(event.get("sku"))
                return ["* " + _deal(clean(sku), deal, self._currency.get(sku))]
            case "poll_created":
                poll = event.get("poll") or {}
                options = ", ".join(
                    f"[{i}] {clean(o)}" for i, o in enumerate(poll.get("options", []))
                )
                return [f"* poll: {clean(poll.get('question', ''))} {options}"]
            case "poll_closed":
                poll = event.get("poll") or {}
                tallies = zip(poll.get("options", []), poll.get("tallies", []), strict=False)
                counts = ", ".join(f"{clean(o)} {n}" for o, n in tallies)
                return [f"* poll closed: {clean(poll.get('question', ''))} — {counts}"]
            case "question":
                question = event.get("question") or {}
                text = clean(question.get("text", ""))
                return [f"? {_name(question.get('user'))} asks: {text}"]
            case "gift":
                gift = event.get("gift") or {}
                quantity = event.get("quantity", 1)
                return [f"* {_name(event.get('user'))} sent {quantity} x {_name(gift)}"]
            case "auction_started":
                auction = event.get("auction") or {}
                start = money(auction.get("minimum_bid"), auction.get("currency"))
                return [f"* auction {clean(auction.get('auction_id'))} on "
                        f"{clean(auction.get('sku'))}, from {start}"]  # fmt: skip
            case "auction_ended":
                result = event.get("result") or {}
                return [f"* auction {clean(event.get('auction_id'))} ended: "
                        f"{clean(result.get('reason'))}"]  # fmt: skip
            case "stream_started":
                return ["* the stream is live"]
            case "stream_ended":
                return ["* the stream ended"]
            case "user_banned" | "user_muted":
                return [f"* {clean(event.get('user_id'))} was {kind[5:]}{by}"]
            case _:
                return []  # moderation bookkeeping and the like: not shown

    def _stock_lines(self, stock: dict[str, Any], always: bool = False) -> list[str]:
        lines = []
        for sku, view in sorted(stock.items()):
            if not isinstance(view, dict):
                continue
            deal = view.get("deal") or {}
            seen = (view.get("available"), deal.get("phase"), deal.get("remaining"))
            if not always and self._stock.get(sku) == seen:
                continue
            before = self._stock.get(sku)
            self._stock[sku] = seen
            self._currency[sku] = view.get("currency")
            name = clean(sku)
            price = money(view.get("price_minor"), view.get("currency"))
            if always or before is None or before[0] != seen[0]:
                lines.append(f"stock: {name} {view.get('available')} left at {price}")
            if deal and (always or before is None or before[1:] != seen[1:]):
                lines.append(_deal(name, deal, view.get("currency")))
        return lines

    # -- replies --------------------------------------------------------------------------

    @staticmethod
    def error(error: Any) -> str:
        if not isinstance(error, dict):
            return f"error: {clean(error)}"
        message = clean(error.get("message") or "")
        again = ", try again" if error.get("temporary") else ""
        return f"error: {message} ({clean(error.get('code'))}{again})"

    @staticmethod
    def answer(op: str, result: dict[str, Any]) -> list[str]:
        if op == "buy":
            number = clean(result.get("number") or result.get("order"))
            total = money(result.get("total_minor"), result.get("currency"))
            return [f"* bought {result.get('quantity')} x {clean(result.get('sku'))} for "
                    f"{total}: order {number} (pending payment)"]  # fmt: skip
        return []  # chat and reactions show up as the room's own events


def parse_line(line: str, room: str) -> tuple[str, dict[str, Any]] | str | None:
    """A typed line → ``(op, fields)`` to send, a line to show (help, usage), or ``None``."""
    text = line.strip()
    if not text:
        return None
    if not text.startswith("/"):
        return "chat", {"room": room, "text": text}
    command, *args = text.split()
    if command == "/buy" and len(args) in (1, 2) and (len(args) == 1 or args[1].isdigit()):
        quantity = int(args[1]) if len(args) == 2 else 1
        key = f"cli-{secrets.token_hex(6)}"
        return "buy", {"room": room, "sku": args[0], "quantity": quantity, "key": key}
    if command == "/react" and len(args) == 1:
        return "react", {"room": room, "kind": args[0]}
    return HELP


class Session:
    """Requests by id with their replies, pushes to the view, lines to ``show``."""

    def __init__(self, ws: ClientConnection, view: View, show: Callable[[str], None]) -> None:
        self.ws = ws
        self.view = view
        self.show = show
        self._ids = itertools.count(1)
        self._waiting: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        #: Requests sent and not answered yet (each one's reply is shown when it comes).
        self.unanswered: set[asyncio.Future[dict[str, Any]]] = set()
        #: The highest event offset an answer reported: the end waits to have shown it.
        self.published = -1
        self._moved = asyncio.Event()
        self.kicked = False
        self.closed = False

    async def read(self) -> None:
        """Until the server closes the connection."""
        with contextlib.suppress(ConnectionClosed):
            async for frame in self.ws:
                try:
                    message = json.loads(frame)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if "push" in message:
                    for line in self.view.push(message):
                        self.show(line)
                    self.kicked = self.kicked or message.get("push") == "kicked"
                elif (waiting := self._waiting.pop(message.get("id"), None)) is not None:
                    waiting.set_result(message)
                self._moved.set()
        self.closed = True
        self._moved.set()
        for waiting in self._waiting.values():
            waiting.cancel()

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a request and wait for its reply (``{"result"}`` or ``{"error"}``)."""
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        await self.ws.send(json.dumps({"id": request_id, "op": op, **fields}))
        return await future

    def send(self, op: str, fields: dict[str, Any]) -> None:
        """Send without waiting: the reply is shown when it comes."""

        async def answered() -> dict[str, Any]:
            try:
                reply = await self.call(op, **fields)
            except ConnectionClosed:
                return {}
            if "error" in reply:
                self.show(View.error(reply["error"]))
            else:
                result = reply.get("result") or {}
                if isinstance(result.get("offset"), int):
                    self.published = max(self.published, result["offset"])
                for line in View.answer(op, result):
                    self.show(line)
            return reply

        task = asyncio.ensure_future(answered())
        self.unanswered.add(task)
        task.add_done_callback(self.unanswered.discard)

    async def drain(self, timeout: float) -> None:
        """Wait for every reply, then for the room events up to what they published."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                if self.unanswered:
                    await asyncio.wait(set(self.unanswered))
                while self.view.offset < self.published and not self.closed:
                    self._moved.clear()
                    await self._moved.wait()


async def stdin_lines() -> AsyncIterator[str]:
    """Lines of standard input, a pipe or a terminal, until its end. A daemon thread reads
    them, so a read that never returns cannot keep the process alive."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        try:
            for line in sys.stdin:
                loop.call_soon_threadsafe(queue.put_nowait, line)
        except (OSError, ValueError):
            pass
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    while (line := await queue.get()) is not None:
        yield line


async def run(
    url: str,
    token: str,
    room: str,
    lines: AsyncIterator[str] | None = None,
    show: Callable[[str], None] | None = None,
) -> int:
    """Watch ``room`` and chat in it until ``lines`` (standard input) end; the exit status."""
    say = show or (lambda line: print(line, flush=True))
    view = View(room)
    try:
        ws = await connect(url, open_timeout=10, max_size=1 << 22)
    except (OSError, TimeoutError) as exc:
        say(f"cannot reach {url}: {exc}")
        return 1
    async with ws:
        session = Session(ws, view, say)
        reader = asyncio.ensure_future(session.read())
        try:
            hello = await session.call("connect", token=token)
            if "error" in hello:
                say(View.error(hello["error"]))
                return 2
            user = hello["result"].get("user") or {}
            say(f"connected to {url} as {_name(user)} ({clean(user.get('id'))})")
            subscribed = await session.call("subscribe", room=room)
            if "error" in subscribed:
                say(View.error(subscribed["error"]))
                return 2
            for line in view.snapshot(subscribed["result"]):
                say(line)
            say(f"({HELP})")
            typed = asyncio.ensure_future(_type(session, lines or stdin_lines(), room))
            done, _ = await asyncio.wait({typed, reader}, return_when=asyncio.FIRST_COMPLETED)
            if typed in done:
                await session.drain(DRAIN_TIMEOUT)
                return 0
            typed.cancel()
            if session.kicked:
                return 2
            say(f"connection closed ({ws.close_code} {clean(ws.close_reason or '')})".strip())
            return 1
        except ConnectionClosed:
            say(f"connection closed ({ws.close_code} {clean(ws.close_reason or '')})".strip())
            return 1
        except asyncio.CancelledError:
            if reader.done():  # a reply can never come: the connection is gone
                say(f"connection closed ({ws.close_code} {clean(ws.close_reason or '')})".strip())
                return 1
            raise
        finally:
            reader.cancel()


async def _type(session: Session, lines: AsyncIterator[str], room: str) -> None:
    async for line in lines:
        parsed = parse_line(line, room)
        if isinstance(parsed, str):
            session.show(parsed)
        elif parsed is not None:
            session.send(*parsed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m liveshop.client", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--url", default="ws://127.0.0.1:8765", help="the gateway")
    parser.add_argument("--token", required=True, help="a viewer token (`liveshop token`)")
    parser.add_argument("--room", default="demo")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args.url, args.token, args.room))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
