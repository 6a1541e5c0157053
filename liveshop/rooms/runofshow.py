"""Run-of-show: a show's timed cues (at T+mm:ss pin product X, start flash deal Y, open
poll Z, start auction W) and what happened to each. No I/O, no clock.

The channel actor asks ``due(now)`` on every tick and carries out what it gets (a pin or a
poll through the room, a deal or an auction through commerce); the host can fire a cue
early, skip it or move it while the show runs. Every cue fired or skipped is logged with
who, when and how (on time, early, late).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from liveshop.errors import AlreadyDone, InvalidRequest, NotFound
from liveshop.protocol import COMMERCE_OPS, ROOM_OPS, validate_params

#: What each cue does: the viewer-protocol operation it runs in the show's room (its
#: ``params`` are that operation's, without ``room``), as the channel, with service rights.
CUE_OPS = {
    "pin": "pin_product",
    "start_deal": "start_deal",
    "open_poll": "create_poll",
    "start_auction": "start_auction",
    "message": "system_message",
}
CUE_ACTIONS = tuple(CUE_OPS)


def cue_operation(action: str, params: dict[str, Any], room_id: str) -> tuple[str, Any]:
    """The operation a cue runs and its validated params (refused when the cue is added,
    not when it fires)."""
    op = CUE_OPS.get(action)
    if op is None:
        raise InvalidRequest(f"a cue's action is one of {', '.join(CUE_OPS)}")
    model = ROOM_OPS.get(op) or COMMERCE_OPS[op]
    return op, validate_params(model, {**params, "room": room_id}, op)


#: Cues that should have fired more than this long ago (the channel was down) are skipped
#: rather than fired late: a flash deal an hour late is worse than none.
STALE_AFTER = 300.0
MAX_CUES = 500


@dataclass
class Cue:
    cue_id: str
    at: float  # seconds after the show's start
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "pending"  # "pending" | "fired" | "skipped"

    def to_wire(self) -> dict[str, Any]:
        return {"cue_id": self.cue_id, "at": self.at, "action": self.action,
                "params": self.params, "status": self.status}  # fmt: skip


@dataclass
class RunOfShow:
    starts_at: float
    cues: dict[str, Cue] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)

    def add(self, cue: Cue) -> None:
        if cue.action not in CUE_ACTIONS:
            raise InvalidRequest(f"a cue's action is one of {', '.join(CUE_ACTIONS)}")
        if not 0 <= cue.at <= 24 * 3600:
            raise InvalidRequest("a cue is at 0 to 24 hours into the show")
        if cue.cue_id in self.cues:
            raise AlreadyDone(f"cue {cue.cue_id!r} exists")
        if len(self.cues) >= MAX_CUES:
            raise InvalidRequest(f"a show has at most {MAX_CUES} cues")
        self.cues[cue.cue_id] = cue

    def _pending(self, cue_id: str) -> Cue:
        cue = self.cues.get(cue_id)
        if cue is None:
            raise NotFound(f"no cue {cue_id!r}")
        if cue.status != "pending":
            raise AlreadyDone(f"cue {cue_id!r} was already {cue.status}")
        return cue

    def due(self, now: float) -> list[Cue]:
        """Cues whose time has come, in order, marked fired; stale ones are skipped."""
        fired = []
        for cue in self._reached(now):
            if now - (self.starts_at + cue.at) > STALE_AFTER:
                self._close(cue, "skipped", now, by="schedule", how="stale")
            else:
                self._close(cue, "fired", now, by="schedule", how="on_time")
                fired.append(cue)
        return fired

    def skip_stale(self, now: float) -> None:
        """While the show is off screen nothing fires, but cues too late to fire are closed."""
        for cue in self._reached(now):
            if now - (self.starts_at + cue.at) > STALE_AFTER:
                self._close(cue, "skipped", now, by="schedule", how="stale")

    def _reached(self, now: float) -> list[Cue]:
        """Pending cues whose time has come, in order (a show holds at most MAX_CUES)."""
        edge = now - self.starts_at
        return sorted((c for c in self.cues.values() if c.status == "pending" and c.at <= edge),
                      key=lambda c: (c.at, c.cue_id))  # fmt: skip

    def fire(self, cue_id: str, now: float, by: str) -> Cue:
        """Fire now, whatever the cue's time (the host is ahead of or behind the plan)."""
        cue = self._pending(cue_id)
        how = "early" if now < self.starts_at + cue.at else "late"
        self._close(cue, "fired", now, by=by, how=how)
        return cue

    def skip(self, cue_id: str, now: float, by: str) -> Cue:
        cue = self._pending(cue_id)
        self._close(cue, "skipped", now, by=by, how="by_host")
        return cue

    def reschedule(self, cue_id: str, at: float, now: float, by: str) -> Cue:
        cue = self._pending(cue_id)
        if not 0 <= at <= 24 * 3600:
            raise InvalidRequest("a cue is at 0 to 24 hours into the show")
        self.log.append({"cue_id": cue_id, "event": "rescheduled", "from": cue.at, "to": at,
                         "by": by, "at": now})  # fmt: skip
        cue.at = at
        return cue

    def outcome(self, cue_id: str, now: float, error: dict[str, Any] | None) -> None:
        """What running a fired cue did: ``error`` (code, message) or None for success."""
        entry: dict[str, Any] = {"cue_id": cue_id, "event": "failed" if error else "done",
                                 "at": now}  # fmt: skip
        if error:
            entry["error"] = error
        self.log.append(entry)

    def _close(self, cue: Cue, status: str, now: float, *, by: str, how: str) -> None:
        cue.status = status
        self.log.append({"cue_id": cue.cue_id, "event": status, "action": cue.action,
                         "by": by, "how": how, "at": now})  # fmt: skip

    def to_state(self) -> dict[str, Any]:
        return {"starts_at": self.starts_at, "cues": [c.to_wire() for c in self.cues.values()],
                "log": self.log}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RunOfShow:
        run = cls(float(state["starts_at"]), log=list(state.get("log") or ()))
        for c in state.get("cues") or ():
            run.cues[c["cue_id"]] = Cue(c["cue_id"], float(c["at"]), c["action"],
                                        dict(c.get("params") or {}), c["status"])  # fmt: skip
        return run
