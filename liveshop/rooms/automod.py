"""Automatic chat moderation: the hook, its verdicts and a dependency-free default check.

A check looks at a message before the room decides on it. Checks may be slow (a model), so
the actor calls them with a timeout; what happens when a check times out or fails is the
room's ``automod_fallback``: ``allow`` (fail open, the default: chat keeps flowing) or
``block`` (fail closed). The check itself is pure here; an ML-backed one arrives later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

Decision = Literal["allow", "block"]


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str = ""
    #: True when the check did not answer in time (or failed) and the fallback decided.
    fallback: bool = False


class ChatCheck(Protocol):
    async def check(self, room_id: str, user_id: str, text: str) -> Verdict: ...


LINK = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)


class BasicCheck:
    """Blocks obvious spam: links from viewers and long all-caps shouting."""

    async def check(self, room_id: str, user_id: str, text: str) -> Verdict:
        return basic_verdict(text)


def basic_verdict(text: str) -> Verdict:
    if LINK.search(text):
        return Verdict("block", "links are not allowed in chat")
    letters = [c for c in text if c.isalpha()]
    if len(letters) >= 20 and sum(c.isupper() for c in letters) / len(letters) > 0.9:
        return Verdict("block", "please don't shout")
    return Verdict("allow")


#: Checks by name (``Settings.automod``); a model-backed one is added in a later issue.
CHECKS: dict[str, type[ChatCheck]] = {"basic": BasicCheck}
