"""The terminal client's view: the room as a person reads it, from the protocol's frames;
and the command `liveshop up --demo` prints to start it."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from liveshop.cli import media_ladder_line, try_it_command
from liveshop.client import HELP, View, clean, money, parse_line
from liveshop.config import Settings

SNAPSHOT = {
    "room": {"id": "demo", "title": "Demo: Friday flash deals", "status": "live"},
    "epoch": "demo-1",
    "offset": 41,
    "viewers": 12,
    "pinned": {"product_id": "sku-headphones", "title": "Headphones", "price_minor": 12999,
               "currency": "USD"},
    "stock": {"sku-headphones": {"sku": "sku-headphones", "available": 100, "sold": 0,
                                 "price_minor": 12999, "currency": "USD", "deal": None}},
    "recent_chat": [{"offset": 40, "kind": "chat", "ts": 1, "user": {"id": "bob", "name": "Bob"},
                     "text": "hi"}],
}  # fmt: skip


def _push(*events: dict[str, object], state: dict[str, object] | None = None) -> dict[str, object]:
    return {"push": "room", "room": "demo", "epoch": "demo-1", "events": list(events),
            "state": state or {}}  # fmt: skip


def test_money_is_shown_in_the_currency_units() -> None:
    assert money(12999, "USD") == "129.99 USD"
    assert money(5, "EUR") == "0.05 EUR"
    assert money(1234567, "JPY") == "1,234,567 JPY"
    assert money(1500, "KWD") == "1.500 KWD"
    assert money(-250, "GBP") == "-2.50 GBP"
    assert money(None, "USD") == "?"


def test_the_snapshot_reads_as_a_room() -> None:
    view = View("demo")
    assert view.snapshot(SNAPSHOT) == [
        "== Demo: Friday flash deals (demo) — live, 12 watching",
        "pinned: Headphones — 129.99 USD",
        "stock: sku-headphones 100 left at 129.99 USD",
        "recent chat:",
        "  Bob: hi",
    ]
    assert view.offset == 41


def test_events_chat_pins_stock_and_deals() -> None:
    view = View("demo")
    view.snapshot(SNAPSHOT)
    chat = {"offset": 42, "kind": "chat", "user": {"id": "ann", "name": "Ann"}, "text": "hello"}
    pin = {"offset": 43, "kind": "pin", "by": "host",
           "product": {"product_id": "kettle", "title": "Kettle", "price_minor": 5400,
                       "currency": "USD"}}  # fmt: skip
    assert view.push(_push(chat, pin)) == ["Ann: hello", "* pinned: Kettle — 54.00 USD"]
    assert view.push(_push(chat)) == []  # an event already shown is not shown twice
    assert view.offset == 43
    # Stock: shown when it changes, not on every push.
    stock = {"sku-headphones": {**SNAPSHOT["stock"]["sku-headphones"], "available": 99}}  # type: ignore[index]
    assert view.push(_push(state={"stock": stock})) == [
        "stock: sku-headphones 99 left at 129.99 USD"
    ]
    assert view.push(_push(state={"stock": stock, "viewers": 14})) == []
    deal = {"deal_id": "d1", "price_minor": 9900, "starts_at": 0, "ends_at": 0,
            "quantity": 10, "limit_per_buyer": 1, "phase": "live", "sold": 0,
            "remaining": 10}  # fmt: skip
    started = {"offset": 44, "kind": "deal_started", "sku": "sku-headphones", "deal": deal}
    on_deal = {"sku-headphones": {**stock["sku-headphones"], "deal": deal}}
    lines = view.push(_push(started, state={"stock": on_deal}))
    assert lines[0].startswith("* deal on sku-headphones: 99.00 USD, 10 left, until ")
    assert lines[1].startswith("deal on sku-headphones: 99.00 USD, 10 left")
    ended = {"offset": 45, "kind": "deal_ended", "sku": "sku-headphones", "deal": deal}
    assert view.push(_push(ended)) == ["* deal on sku-headphones ended (0 sold)"]
    assert view.push({"push": "kicked", "room": "demo", "reason": "banned"}) == [
        "* you were removed from the room (banned)"
    ]
    assert view.push({"push": "room", "room": "elsewhere", "events": [chat]}) == []
    assert view.push({"push": "analytics", "room": "demo"}) == []


def test_errors_and_buys_read_as_sentences() -> None:
    error = {"code": "slow_mode", "message": "slow mode: wait 3 s", "temporary": True}
    assert View.error(error) == "error: slow mode: wait 3 s (slow_mode, try again)"
    assert View.error({"code": "forbidden", "message": "no"}) == "error: no (forbidden)"
    bought = {"order": "sku-kettle~o1", "number": "LS-10427", "sku": "sku-kettle",
              "quantity": 2, "total_minor": 10800, "currency": "USD"}  # fmt: skip
    assert View.answer("buy", bought) == [
        "* bought 2 x sku-kettle for 108.00 USD: order LS-10427 (pending payment)"
    ]
    assert View.answer("chat", {"offset": 50}) == []


def test_text_from_the_server_cannot_drive_the_terminal() -> None:
    assert clean("red\x1b[31m alert\x07") == "red\\x1b[31m alert\\x07"
    assert clean("a\nb\u2028c\u202eevil") == "a\\nb\\u2028c\\u202eevil"
    assert clean("zoë 👩\u200d💻 مرحبا") == "zoë 👩\u200d💻 مرحبا"  # emoji joiners, RTL text
    view = View("demo")
    line = view.push(_push({"offset": 1, "kind": "chat", "user": {"name": "x\x1b]0;pwn\x07"},
                            "text": "t"}))  # fmt: skip
    assert "\x1b" not in line[0] and "\x07" not in line[0]


def test_typed_lines() -> None:
    assert parse_line("  hello there \n", "demo") == (
        "chat",
        {"room": "demo", "text": "hello there"},
    )
    assert parse_line("   \n", "demo") is None
    bought, again = parse_line("/buy sku-kettle 2", "demo"), parse_line("/buy sku-kettle", "x")
    assert isinstance(bought, tuple) and isinstance(again, tuple)
    assert bought[0] == "buy" and bought[1]["sku"] == "sku-kettle" and bought[1]["quantity"] == 2
    assert again[1]["quantity"] == 1 and again[1]["key"] != bought[1]["key"]  # fresh keys
    assert parse_line("/react heart", "demo") == ("react", {"room": "demo", "kind": "heart"})
    assert parse_line("/buy", "demo") == HELP
    assert parse_line("/buy sku lots", "demo") == HELP
    assert parse_line("/help", "demo") == HELP


def test_the_try_it_command_runs_as_printed(tmp_path: Path) -> None:
    """The command is this interpreter by absolute path: it works without the venv on PATH,
    from any directory."""
    settings = Settings(data_dir=tmp_path, ws_port=8765)
    command = try_it_command(settings, "tok.en-with'quote")
    argv = shlex.split(command)
    assert argv[0] == sys.executable and Path(argv[0]).is_absolute()
    assert argv[1:] == ["-m", "liveshop.client", "--url", "ws://127.0.0.1:8765", "--token",
                        "tok.en-with'quote", "--room", "demo"]  # fmt: skip
    # Run as printed (`--help` instead of connecting), with a bare environment.
    shown = subprocess.run(
        [*argv[:3], "--help"], capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"}, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "--token" in shown.stdout


def test_up_shows_the_configured_ladder_as_the_most_a_stream_gets(tmp_path: Path) -> None:
    """Each stream's own ladder is decided when it starts, on its media node: `up` can only
    say what it is cut from, and says so."""
    sized = Settings(data_dir=tmp_path, media_ladder="360:700,720:2800,480:1200")
    assert media_ladder_line(sized) == (
        "720p, 480p, 360p at most  (sized per stream to its source and its media node's CPU)"
    )
    every_rung = Settings(data_dir=tmp_path, media_ladder="720:2800,360:700", media_cpu_share=0)
    assert media_ladder_line(every_rung) == "720p, 360p at most  (sized per stream to its source)"
