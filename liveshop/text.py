"""The text rules every field a client sends obeys (docs/protocol.md, "Text").

PostgreSQL cannot store U+0000 or lone surrogates (text and jsonb both refuse them, and a
refused row would fail the whole group commit it is in), and control characters have no
business in a chat line, a name or a title. So text is checked where it enters — the
WebSocket protocol, the HTTP models, tokens — and refused with ``invalid_request`` rather
than cleaned silently: the sender learns what was wrong. What is accepted is normalised:
Unicode NFC (so "é" typed two ways is one string), runs of combining marks ("zalgo")
cut to a few per letter, and in display names the invisible characters (zero-width spaces,
bidirectional overrides) removed so nobody can pose as someone else.

Plain functions without I/O, used by the domain as well; the ``Annotated`` types at the end
apply them in pydantic models.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from liveshop.errors import InvalidRequest

#: Never storable or never wanted: C0 and C1 controls and DEL (tab and newline are allowed
#: in multi-line text only), lone surrogates, and the line/paragraph separators.
_FORBIDDEN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_FORBIDDEN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
#: Runs of combining marks (Unicode categories Mn and Me, any script) longer than this are
#: cut: no language needs more on one letter, "zalgo" stacks hundreds.
MAX_MARKS = 4
#: Blank lines in a row kept in multi-line text (a wall of newlines is cut to this).
MAX_BLANK_LINES = 2
#: A line break followed by blanks only, repeated: blank lines, however they are padded.
_NEWLINES = re.compile(rf"(?:\n[^\S\n]*){{{MAX_BLANK_LINES + 2},}}")
#: Invisible in a name besides the format characters (Unicode category Cf, all removed but
#: the zero-width joiner of emoji sequences): blanks that render as nothing.
_BLANKS = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\ufe00-\ufe0e\uffa0]")
_JOINERS = re.compile("\u200d+")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPACES = re.compile(r"\s+")


def _describe(char: str) -> str:
    code = ord(char)
    if code == 0:
        return "U+0000 (NUL)"
    if 0xD800 <= code <= 0xDFFF:
        return f"a lone surrogate (U+{code:04X})"
    return f"the control character U+{code:04X}"


def _normalise(value: str) -> str:
    if not value.isascii():
        if not unicodedata.is_normalized("NFC", value):
            value = unicodedata.normalize("NFC", value)
        value = _cut_marks(value)
    return value


def _cut_marks(value: str) -> str:
    """Runs of more than MAX_MARKS combining marks cut to MAX_MARKS."""
    kept: list[str] = []
    run = 0
    cut = False
    for char in value:
        if unicodedata.category(char) in ("Mn", "Me"):
            run += 1
            if run > MAX_MARKS:
                cut = True
                continue
        else:
            run = 0
        kept.append(char)
    return "".join(kept) if cut else value


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` cannot be accepted as text, or None."""
    found = (_FORBIDDEN_TEXT if multiline else _FORBIDDEN_LINE).search(value)
    if found is None:
        return None
    return f"text must not contain {_describe(found.group())}"


def check_line(value: str) -> str:
    """One line (a title, a poll option, a reason): refused if it holds a control
    character, NUL or a lone surrogate; NFC, marks cut, outer whitespace stripped."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return _normalise(value).strip()


def check_text(value: str) -> str:
    """Multi-line text (chat, a question): like :func:`check_line`, but tabs and newlines
    are allowed (CRLF becomes LF)."""
    value = value.replace("\r\n", "\n")
    problem = text_problem(value, multiline=True)
    if problem is not None:
        raise ValueError(problem)
    return _NEWLINES.sub("\n" * (MAX_BLANK_LINES + 1), _normalise(value)).strip()


def check_name(value: str) -> str:
    """A display name: a line without invisible characters, whitespace runs made one space."""
    cleaned = check_line(value)
    if not cleaned.isascii():
        visible = "".join(c for c in cleaned if c == "\u200d" or unicodedata.category(c) != "Cf")
        # The zero-width joiner stays only inside a sequence (one, not at either end).
        cleaned = _JOINERS.sub("\u200d", _BLANKS.sub("", visible)).strip("\u200d")
    cleaned = _SPACES.sub(" ", cleaned).strip()
    # Nothing visible left (marks alone, say): no name, and the caller picks a default.
    if not any(unicodedata.category(c)[0] in "LNSP" for c in cleaned):
        return ""
    return cleaned


def check_key(value: str) -> str:
    """An opaque identifier chosen by a client (an idempotency key, a reference): kept as
    sent, but refused if it holds a control character, NUL or a lone surrogate."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def require(check: Callable[[str], str], value: str, what: str) -> str:
    """Apply a check from the domain, where a refusal is :class:`InvalidRequest`."""
    try:
        return check(value)
    except ValueError as exc:
        raise InvalidRequest(f"{what}: {exc}") from None


def storable(value: object, *, depth: int = 0) -> bool:
    """True when PostgreSQL can store ``value`` (recursively, for JSON): no NUL and no lone
    surrogate in any string or key. A last line of defence for group commits."""
    if isinstance(value, str):
        return "\x00" not in value and _SURROGATE.search(value) is None
    if depth > 64:
        return False
    if isinstance(value, dict):
        return all(
            storable(k, depth=depth + 1) and storable(v, depth=depth + 1) for k, v in value.items()
        )
    if isinstance(value, list | tuple):
        return all(storable(v, depth=depth + 1) for v in value)
    return True


def scrub(value: Any, *, depth: int = 0) -> Any:
    """``value`` with every string made storable (NUL dropped, lone surrogates replaced by
    U+FFFD): the last resort for state that must be saved whatever is in it."""
    if isinstance(value, str):
        if storable(value):
            return value
        return _SURROGATE.sub("\ufffd", value.replace("\x00", ""))
    if depth > 64:
        return None
    if isinstance(value, dict):
        return {scrub(k, depth=depth + 1): scrub(v, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, depth=depth + 1) for v in value]
    return value


#: pydantic types: apply these to every text field a client sends.
Line = Annotated[str, AfterValidator(check_line)]
Text = Annotated[str, AfterValidator(check_text)]
Name = Annotated[str, AfterValidator(check_name)]
Key = Annotated[str, AfterValidator(check_key)]
#: An idempotency key or client reference.
IdemKey = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_key)]
