"""The pages as files: self-contained (nothing from the internet, no inline script or style,
which the CSP forbids), labelled controls, and a palette whose text meets WCAG AA contrast."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from liveshop.serve.web import (
    PAGES,
    PAGES_DIR,
    STATIC_DIR,
    content_security_policy,
    render_page,
)

CSS = STATIC_DIR / "css" / "app.css"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.labels_for: set[str] = set()
        self.title = ""
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "label" and attributes.get("for"):
            self.labels_for.add(str(attributes["for"]))
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        if self._in and self._in[-1] == "title":
            self.title += data


def _parse(name: str) -> _Page:
    page = _Page()
    page.feed(render_page(name).decode())
    return page


@pytest.mark.parametrize("name", PAGES)
def test_a_page_is_self_contained_and_labelled(name: str) -> None:
    page = _parse(name)
    html = next(a for t, a in page.tags if t == "html")
    assert html.get("lang"), "the page declares its language"
    assert page.title.strip()
    assert any(t == "meta" and a.get("name") == "viewport" for t, a in page.tags)
    for tag, attrs in page.tags:
        assert "style" not in attrs, f"inline style on <{tag}> (the CSP refuses it)"
        assert not any(k.startswith("on") for k in attrs), f"inline handler on <{tag}>"
        if tag == "script":
            assert attrs.get("src"), "inline <script> (the CSP refuses it)"
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http:", "https:", "//")), f"{value} is remote"
            if value.startswith("/app/static/"):
                assert (STATIC_DIR / value.removeprefix("/app/static/")).is_file(), value
        if tag in ("input", "select", "textarea") and attrs.get("type") != "hidden":
            named = attrs.get("aria-label") or attrs.get("aria-labelledby")
            assert named or attrs.get("id") in page.labels_for, f"<{tag} id={attrs.get('id')}>"


def test_scripts_load_nothing_remote_and_never_write_html() -> None:
    for path in sorted((STATIC_DIR / "js").glob("*.js")):
        source = path.read_text()
        assert not re.search(r"https?://", source), f"{path.name} names a remote URL"
        # User text reaches the page only as text (ui.el), never parsed as HTML.
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source, path.name


def _luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def test_text_colours_meet_wcag_aa_contrast() -> None:
    css = CSS.read_text()
    palette = dict(re.findall(r"(--[a-z0-9-]+):\s*(#[0-9a-fA-F]{6})\s*;", css))
    declared = re.search(r"/\* contrast: (.*?)\*/", css, re.S)
    assert declared, "app.css lists the text/background pairs it uses"
    pairs = re.findall(r"(--[a-z0-9-]+) on (--[a-z0-9-]+)", declared.group(1))
    assert len(pairs) >= 8
    for fg, bg in pairs:
        ratio = _contrast(palette[fg], palette[bg])
        assert ratio >= 4.5, f"{fg} on {bg}: {ratio:.2f}:1"


def test_the_csp_allows_the_gateway_and_nothing_remote_for_scripts() -> None:
    csp = content_security_policy("ws://127.0.0.1:8765")
    assert "connect-src 'self' ws://127.0.0.1:8765" in csp
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "wss://live.example.com" in content_security_policy("wss://live.example.com/ws")


def test_every_page_file_exists() -> None:
    for name in PAGES:
        assert Path(PAGES_DIR / f"{name}.html").is_file(), name


def _node_module(script: str) -> object:
    """Run ``script`` as an ES module in Node.js with the pages' api.js imported as ``api``;
    what it prints (JSON)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    api = (STATIC_DIR / "js" / "api.js").as_uri()
    source = f"import * as api from {json.dumps(api)};\n{script}"
    done = subprocess.run(
        [node, "--input-type=module", "-e", source],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_prices_typed_in_currency_units_become_iso_4217_minor_units() -> None:
    cases = [
        ("12.50", "USD", 1250), ("12.5", "USD", 1250), ("12", "USD", 1200), ("12,50", "EUR", 1250),
        ("0.05", "USD", 5), ("1250", "JPY", 1250), ("12.5", "JPY", None), ("1.005", "KWD", 1005),
        ("1.5", "BHD", 1500), ("2.5", "IQD", 2500), ("900", "ISK", 900), ("9.5", "ISK", None),
        ("12.505", "USD", None), ("-1", "USD", None), ("1e3", "USD", None), ("", "USD", None),
        ("99999999999999999999", "USD", None), ("1.2345", "CLF", 12345),
    ]  # fmt: skip
    script = (
        f"const cases = {json.dumps(cases)};\n"
        "console.log(JSON.stringify(cases.map(([text, currency]) => ["
        "api.toMinor(text, currency), api.minorDigits(currency)])));"
    )
    results = _node_module(script)
    assert isinstance(results, list)
    for (text, currency, expected), (minor, _digits) in zip(cases, results, strict=True):
        assert minor == expected, (text, currency, minor)
    digits = {currency: d for (_, currency, _), (_, d) in zip(cases, results, strict=True)}
    assert digits == {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3, "BHD": 3, "IQD": 3, "ISK": 0,
                      "CLF": 4}  # fmt: skip


def test_minor_units_show_in_the_currency_and_round_trip_to_the_price_field() -> None:
    script = (
        "const spaced = (text) => text.replace(/\\s/g, ' ');\n"
        "console.log(JSON.stringify(["
        "api.fromMinor(1250, 'USD'), api.fromMinor(5, 'USD'), api.fromMinor(1250, 'JPY'),"
        "api.fromMinor(1005, 'KWD'), api.toMinor(api.fromMinor(123456, 'KWD'), 'KWD'),"
        "spaced(api.money(1250, 'JPY')), spaced(api.money(1005, 'KWD'))]));"
    )
    results = _node_module(script)
    assert isinstance(results, list)
    usd, cents, yen, dinar, back, yen_money, dinar_money = results
    assert (usd, cents, yen, dinar, back) == ("12.50", "0.05", "1250", "1.005", 123456)
    assert "1,250" in yen_money and "." not in yen_money, yen_money
    assert "1.005" in dinar_money, dinar_money
