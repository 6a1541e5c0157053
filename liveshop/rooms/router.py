"""Always-on routing: what a 24/7 channel plays right now. No I/O, no clock.

A channel is never dead air. In order:

1. an operator override (emergency controls): ``slate`` (cut to slate) or ``stream``
   (switch the channel to another room's stream);
2. the live show on the calendar now, once its stream is on air (until then, the fallback
   below keeps playing: the switch happens the moment the host is live);
3. a premiere on the calendar now: its recording, from the offset the premiere reached;
4. a replay loop of the channel's best recent shows, the same position for every viewer
   (computed from the clock, not from who asked);
5. the slate.

A viewer's player follows the channel's route, not one stream: on every change the channel
publishes the new route and players load its playlist.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from liveshop.rooms.schedule import Show

LIVE, PREMIERE, REPLAY, SLATE, OVERRIDE = "live", "premiere", "replay", "slate", "override"


@dataclass(frozen=True)
class Replay:
    """A recording the channel may loop: its show, playlist and length (seconds)."""

    show_id: str
    playlist: str
    duration: float


@dataclass(frozen=True)
class Override:
    """An operator's emergency control, in force until cleared."""

    kind: str  # "slate" | "stream"
    room_id: str | None = None  # for "stream": the room whose stream the channel shows
    by: str = ""
    reason: str = ""
    at: float = 0.0


@dataclass(frozen=True)
class Route:
    source: str  # LIVE, PREMIERE, REPLAY, SLATE or OVERRIDE
    show_id: str | None = None
    room_id: str | None = None
    playlist: str | None = None
    #: Where in ``playlist`` a player joining now starts (premieres and replays).
    offset: float = 0.0


def route(
    shows: Sequence[Show],
    now: float,
    *,
    live_rooms: dict[str, str],
    replays: Sequence[Replay] = (),
    loop_anchor: float = 0.0,
    override: Override | None = None,
) -> Route:
    """The channel's source at ``now``. ``live_rooms`` maps a room whose stream is on air to
    its HLS playlist; ``replays`` are best first; ``loop_anchor`` is when the replay loop
    (conceptually) started, so the position is the same for everyone."""
    if override is not None:
        if override.kind == "stream" and override.room_id in live_rooms:
            return Route(OVERRIDE, room_id=override.room_id, playlist=live_rooms[override.room_id])
        return Route(SLATE)  # cut to slate, or the override's stream is not on air
    for show in sorted(shows, key=lambda s: s.starts_at):
        if not show.on_air(now):
            continue
        if show.kind == "live" and show.room_id in live_rooms:
            return Route(LIVE, show.show_id, show.room_id, live_rooms[show.room_id])
        if show.kind == "premiere" and show.recording:
            return Route(PREMIERE, show.show_id, show.room_id, show.recording,
                         offset=now - show.starts_at)  # fmt: skip
    playable = [r for r in replays if r.duration > 0]
    if playable:
        total = sum(r.duration for r in playable)
        position = (now - loop_anchor) % total
        for replay in playable:
            if position < replay.duration:
                return Route(REPLAY, replay.show_id, playlist=replay.playlist, offset=position)
            position -= replay.duration
        last = playable[-1]  # float rounding at the very end of the loop
        return Route(REPLAY, last.show_id, playlist=last.playlist, offset=0.0)
    return Route(SLATE)
