"""The text rules (liveshop/text.py) and the protocol's edge, for any input at all: a clear
refusal or text PostgreSQL can store, normalised; never another exception."""

from __future__ import annotations

import json
import unicodedata
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liveshop.errors import ClientError
from liveshop.protocol import OPS, Codec, decode_frame, encode_frame, error_reply, parse_request
from liveshop.text import (
    MAX_MARKS,
    check_key,
    check_line,
    check_name,
    check_text,
    scrub,
    storable,
    text_problem,
)

#: Every code point, surrogates included, and the ones attackers like best.
ANY_CHAR = st.characters(exclude_categories=())
NASTY = st.sampled_from(
    [
        "\x00",
        "\ud800",
        "\udfff",
        "\x1b",
        "\x85",
        "\u2028",
        "\u202e",
        "\u200b",
        "\ufeff",
        "\u0301",
        "ﷺ",
        "م",
        "👩",
        "\u200d",
    ]
)
TEXT = st.text(st.one_of(ANY_CHAR, NASTY), max_size=60)
CONTROLS = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]}


def _storable_and_clean(value: str, *, newlines: bool) -> None:
    assert storable(value)
    allowed = {"\n", "\t"} if newlines else set()
    assert not (set(value) & (CONTROLS - allowed)), ascii(value)
    assert unicodedata.is_normalized("NFC", value)
    assert value == value.strip()


@given(TEXT)
def test_a_line_is_refused_or_clean(raw: str) -> None:
    try:
        line = check_line(raw)
    except ValueError as exc:
        assert "must not contain" in str(exc)
        assert text_problem(raw) is not None
        return
    _storable_and_clean(line, newlines=False)
    assert check_line(line) == line  # normalising twice changes nothing


@given(TEXT)
def test_multiline_text_keeps_newlines_and_refuses_the_rest(raw: str) -> None:
    try:
        text = check_text(raw)
    except ValueError:
        assert text_problem(raw.replace("\r\n", "\n"), multiline=True) is not None
        return
    _storable_and_clean(text, newlines=True)
    assert check_text(text) == text


@given(TEXT)
def test_a_name_has_nothing_invisible(raw: str) -> None:
    try:
        name = check_name(raw)
    except ValueError:
        return
    _storable_and_clean(name, newlines=False)
    assert not any(unicodedata.category(c) == "Cf" and c != "\u200d" for c in name), ascii(name)
    assert "  " not in name
    assert check_name(name) == name


def test_examples() -> None:
    assert check_name("  Ali\u200bce \u202eX  ") == "Alice X"
    assert check_name("👩\u200d👩\u200d👧 fan") == "👩\u200d👩\u200d👧 fan"  # joiners in emoji stay
    assert check_text("e\u0301\r\nok") == "é\nok"
    zalgo = check_line("Z" + "\u0301" * 40)
    assert zalgo == "Ź" + "\u0301" * MAX_MARKS  # the first mark composes with Z
    assert check_line("مرحبا بالعالم") == "مرحبا بالعالم"
    assert check_line("ก" + "\u0e49" * 60) == "ก" + "\u0e49" * MAX_MARKS  # any script's marks
    assert check_text("a" + "\n" * 40 + "b") == "a\n\n\nb"  # two blank lines at most
    assert check_name("\u0301\u0301\u2800") == ""  # nothing visible: no name
    assert check_key(" spaced key ") == " spaced key "  # keys are kept as sent
    for bad in ["a\x00", "\ud800", "x\x1by"]:
        for check in (check_line, check_text, check_name, check_key):
            with pytest.raises(ValueError, match="must not contain"):
                check(bad)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@given(JSONISH)
def test_scrub_makes_anything_storable(value: Any) -> None:
    assert storable(scrub(value))


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(OPS)),
    st.dictionaries(
        st.sampled_from(["room", "text", "key", "sku", "name", "x"]) | TEXT, JSONISH, max_size=6
    ),
    st.one_of(st.integers(), TEXT, st.none()),
)
def test_any_request_is_refused_clearly_or_fully_storable(
    op: str, fields: dict[str, Any], rid: Any
) -> None:
    message = {**fields, "id": rid, "op": op}
    for codec in Codec:
        try:
            request = parse_request(message)
        except ClientError as exc:
            # The refusal itself can always be sent back, whatever the input held.
            for out in Codec:
                encode_frame(error_reply(None, exc), out)
            continue
        params = request.params.model_dump()
        assert storable(params), params
        encode_frame({"id": request.id, "result": params}, codec)


@given(st.binary(max_size=200) | TEXT)
def test_decoding_any_frame_raises_bad_frame_at_worst(frame: bytes | str) -> None:
    for codec in Codec:
        try:
            decode_frame(frame, codec)
        except ClientError as exc:
            assert exc.code == "bad_frame"


@given(st.integers(1, 5000))
def test_nesting_beyond_the_limit_is_a_bad_frame(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    for frame, codec in [
        (nested, Codec.JSON),
        (
            msgpack.packb(json.loads(nested) if depth < 500 else [], use_bin_type=True),
            Codec.MSGPACK,
        ),
    ]:
        try:
            decode_frame(frame, codec)
        except ClientError as exc:
            assert exc.code == "bad_frame" and depth > 32
