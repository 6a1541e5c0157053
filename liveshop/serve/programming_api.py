"""HTTP routes for channels, shows and show operations (included in the API app).

Plain FastAPI routes rather than methods of the Serve deployment, so that the API is split by
area: the deployment hands its :class:`Programming` to :func:`use` when it starts (one per
replica process), and each route reaches it through a dependency.
"""

# No `from __future__ import annotations`: FastAPI reads these annotations at runtime.
import datetime as dt
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from liveshop import clock
from liveshop.config import Settings
from liveshop.errors import InvalidRequest, Unavailable
from liveshop.rooms.channel import ChannelInfo
from liveshop.rooms.schedule import Availability, Recurrence, Show
from liveshop.serve.auth import (
    Authorization,
    bearer_identity,
    require_self_or_service,
    require_service,
)
from liveshop.serve.programming import Programming, require_operator
from liveshop.storage.channels import new_show_id
from liveshop.tokens import Identity

router = APIRouter()

Slug = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
IdField = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Day = 86400.0


class _Context:
    programming: Programming | None = None
    settings: Settings | None = None


_context = _Context()


def use(programming: Programming, settings: Settings) -> None:
    """Called by the API deployment when it starts."""
    _context.programming, _context.settings = programming, settings


def _programming() -> Programming:
    if _context.programming is None:
        raise Unavailable("the API is starting, try again")
    return _context.programming


def _caller(authorization: Authorization = None) -> Identity:
    assert _context.settings is not None
    return bearer_identity(_context.settings.secret, authorization)


Programs = Annotated[Programming, Depends(_programming)]
Caller = Annotated[Identity, Depends(_caller)]


# -- bodies -----------------------------------------------------------------------------------


class ChannelIn(BaseModel):
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,48}$")]
    title: Name
    category: Annotated[str, Field(min_length=1, max_length=40)] = "general"
    region: Annotated[str, Field(min_length=1, max_length=40)] = "global"
    tz: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"
    artwork_url: Annotated[str, Field(max_length=2000)] | None = None
    description: Annotated[str, Field(max_length=2000)] = ""


class CueIn(BaseModel):
    cue_id: IdField | None = None
    #: Seconds after the show's start.
    at: float = Field(ge=0, le=Day)
    action: Literal["pin", "start_deal", "open_poll", "start_auction", "message"]
    #: The params of the viewer operation the action runs, without ``room`` (docs/protocol.md).
    params: dict[str, Any] = Field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        return {"cue_id": self.cue_id or f"cue-{secrets.token_hex(4)}", "at": self.at,
                "action": self.action, "params": self.params}  # fmt: skip


class ShowIn(BaseModel):
    id: IdField | None = None
    channel_id: IdField
    title: Name
    starts_at: float = Field(gt=0)
    ends_at: float = Field(gt=0)
    hosts: list[IdField] = Field(default_factory=list, max_length=10)
    kind: Literal["live", "premiere"] = "live"
    series_id: IdField | None = None
    season: int | None = Field(default=None, ge=1, le=1000)
    products: list[IdField] = Field(default_factory=list, max_length=100)
    #: A premiere's recording (an HLS playlist URL or path).
    recording: Annotated[str, Field(max_length=2000)] | None = None
    #: The room the show happens in; by default one is made for it (named as the show).
    room_id: IdField | None = None
    cues: list[CueIn] = Field(default_factory=list, max_length=500)


class ShowPatch(BaseModel):
    title: Name | None = None
    starts_at: float | None = Field(default=None, gt=0)
    ends_at: float | None = Field(default=None, gt=0)
    hosts: list[IdField] | None = Field(default=None, max_length=10)
    products: list[IdField] | None = Field(default=None, max_length=100)
    recording: Annotated[str, Field(max_length=2000)] | None = None
    status: Literal["cancelled"] | None = None


class TemplateIn(BaseModel):
    id: IdField | None = None
    title: Name
    #: 0 = Monday ... 6 = Sunday.
    weekdays: list[Annotated[int, Field(ge=0, le=6)]] = Field(min_length=1, max_length=7)
    #: Local time, "HH:MM".
    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    duration: float = Field(ge=60, le=Day)
    #: Defaults to the channel's time zone.
    tz: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    first_day: dt.date
    last_day: dt.date | None = None
    hosts: list[IdField] = Field(default_factory=list, max_length=10)
    products: list[IdField] = Field(default_factory=list, max_length=100)
    series_id: IdField | None = None
    season: int | None = Field(default=None, ge=1, le=1000)
    room_id: IdField | None = None
    days: int = Field(default=14, ge=1, le=90)


class WindowIn(BaseModel):
    weekday: int = Field(ge=0, le=6)
    start: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]


class AvailabilityIn(BaseModel):
    tz: Annotated[str, Field(min_length=1, max_length=64)]
    windows: list[WindowIn] = Field(default_factory=list, max_length=100)


class ControlIn(BaseModel):
    #: Why: every emergency control is audited.
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    #: switch_stream: the room whose stream the channel shows.
    room_id: IdField | None = None
    #: end_show: which show (default: the one on air).
    show_id: IdField | None = None


class CueChangeIn(BaseModel):
    #: reschedule: the cue's new time, seconds after the show's start.
    at: float | None = Field(default=None, ge=0, le=Day)


# -- channels and the grid -------------------------------------------------------------------


@router.post("/channels", status_code=201)
async def create_channel(body: ChannelIn, p: Programs, who: Caller) -> dict[str, Any]:
    """Create or update a channel (service role); its actor starts at once and runs 24/7."""
    require_service(who)
    info = ChannelInfo(body.id, body.title, body.category, body.region, body.tz,
                       body.artwork_url, body.description)  # fmt: skip
    return await p.save_channel(info)


@router.get("/channels")
async def list_channels(
    p: Programs,
    category: Annotated[str | None, Query(max_length=40)] = None,
    region: Annotated[str | None, Query(max_length=40)] = None,
) -> list[dict[str, Any]]:
    return [c.to_wire() for c in await p.store.list_channels(category=category, region=region)]


@router.get("/grid")
async def grid(
    p: Programs,
    at: Annotated[float | None, Query(gt=0)] = None,
    category: Annotated[str | None, Query(max_length=40)] = None,
    region: Annotated[str | None, Query(max_length=40)] = None,
) -> list[dict[str, Any]]:
    """What is on now and next on every channel (``at``: another instant)."""
    return await p.grid(at or clock.now(), category=category, region=region)


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: Slug, p: Programs) -> dict[str, Any]:
    """The channel as its viewers see it: what plays (route), now, next, any override."""
    return await p.channels.run(channel_id, "view")


@router.get("/channels/{channel_id}/calendar")
async def channel_calendar(
    channel_id: Slug,
    p: Programs,
    start: Annotated[float | None, Query(alias="from", gt=0)] = None,
    end: Annotated[float | None, Query(alias="to", gt=0)] = None,
) -> list[dict[str, Any]]:
    """The channel's programming between ``from`` and ``to`` (default: the next 7 days)."""
    begin, finish = _range(start, end)
    await p.store.channel(channel_id)  # channel_not_found
    shows = await p.store.calendar(channel_id=channel_id, start=begin, end=finish)
    return [s.to_wire() for s in shows]


@router.get("/channels/{channel_id}/templates")
async def channel_templates(channel_id: Slug, p: Programs) -> list[dict[str, Any]]:
    return await p.store.templates(channel_id)


@router.post("/channels/{channel_id}/templates", status_code=201)
async def create_template(
    channel_id: Slug, body: TemplateIn, p: Programs, who: Caller
) -> dict[str, Any]:
    """A recurring show ("every weekday at 20:00 local"): its dates are booked ``days``
    ahead, then kept booked 14 days ahead; dates another show holds are reported, not
    booked."""
    require_service(who)
    info, _ = await p.store.channel(channel_id)
    template_id = body.id or f"tpl-{secrets.token_hex(5)}"
    recurrence = Recurrence(frozenset(body.weekdays), dt.time.fromisoformat(body.at),
                            body.duration, body.tz or info.tz, body.first_day,
                            body.last_day)  # fmt: skip
    make = Show(template_id, channel_id, body.title, 0.0, body.duration, tuple(body.hosts),
                series_id=body.series_id, season=body.season, products=tuple(body.products),
                room_id=body.room_id)  # fmt: skip
    return await p.template(template_id, recurrence, make, body.days)


@router.post("/channels/{channel_id}/controls/{action}")
async def control(
    channel_id: Slug, action: str, body: ControlIn, p: Programs, who: Caller
) -> dict[str, Any]:
    """Emergency controls (operators): ``cut_to_slate``, ``switch_stream``, ``resume``,
    ``end_show``, ``freeze_chat``, ``unfreeze_chat``. In force for every viewer when this
    answers; audited with who, when and why."""
    return await p.control(who, channel_id, action, body.reason, body.room_id, body.show_id)


@router.get("/channels/{channel_id}/audit")
async def channel_audit(
    channel_id: Slug,
    p: Programs,
    who: Caller,
    after: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Every emergency control used on the channel, oldest first (operators)."""
    require_operator(who, channel_id)
    return await p.store.audit_log(channel_id, after=after, limit=limit)


# -- shows ------------------------------------------------------------------------------------


@router.post("/shows", status_code=201)
async def create_show(body: ShowIn, p: Programs, who: Caller) -> dict[str, Any]:
    """Book a show (service role). A channel or host booked twice is refused (409
    ``conflict``, ``details.show`` naming the show in the way), as is a host outside their
    availability."""
    require_service(who)
    show = Show(body.id or new_show_id(), body.channel_id, body.title, body.starts_at,
                body.ends_at, tuple(body.hosts), body.kind, series_id=body.series_id,
                season=body.season, products=tuple(body.products), recording=body.recording,
                room_id=body.room_id)  # fmt: skip
    return await p.book(show, [c.wire() for c in body.cues])


@router.get("/shows/{show_id}")
async def get_show(show_id: Slug, p: Programs) -> dict[str, Any]:
    show, _ = await p.store.show(show_id)
    return show.to_wire()


@router.patch("/shows/{show_id}")
async def edit_show(show_id: Slug, body: ShowPatch, p: Programs, who: Caller) -> dict[str, Any]:
    """Move, retitle, recast or cancel a show (service role; conflicts as for booking)."""
    require_service(who)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude_none=True)
    for key in ("hosts", "products"):
        if key in changes:
            changes[key] = tuple(changes[key])
    return await p.edit(show_id, changes)


@router.get("/shows/{show_id}/run-of-show")
async def run_of_show(show_id: Slug, p: Programs, who: Caller) -> dict[str, Any]:
    """The show's cues and the log of every cue fired, skipped or moved (its staff)."""
    return await p.run_of_show(who, show_id=show_id)


@router.post("/shows/{show_id}/cues", status_code=201)
async def add_cue(show_id: Slug, body: CueIn, p: Programs, who: Caller) -> dict[str, Any]:
    """Add a cue: at T+``at`` run ``action`` with ``params`` (the host or a service)."""
    return await p.add_cue(who, show_id, body.wire())


@router.post("/shows/{show_id}/cues/{cue_id}/{op}")
async def change_cue(
    show_id: Slug, cue_id: Slug, op: str, body: CueChangeIn, p: Programs, who: Caller
) -> dict[str, Any]:
    """``fire`` now, ``skip``, or ``reschedule`` (to ``at``) a pending cue (the host)."""
    return await p.cue(who, op, cue_id, show_id=show_id, at=body.at)


@router.get("/shows/{show_id}/analytics")
async def show_analytics(show_id: Slug, p: Programs, who: Caller) -> dict[str, Any]:
    """Live while the show is on air (updated every second), the stored report after."""
    return await p.analytics(who, show_id=show_id)


@router.get("/shows/{show_id}/analytics/minutes")
async def show_analytics_minutes(show_id: Slug, p: Programs, who: Caller) -> list[dict[str, Any]]:
    """The show's report minute by minute, for reports afterwards (its staff)."""
    await p.analytics_allowed(who, show_id)
    return await p.store.analytics_minutes(show_id)


# -- follows, creators, series ------------------------------------------------------------------


@router.put("/users/{user_id}/follows/{kind}/{target_id}", status_code=201)
async def follow(
    user_id: Slug, kind: Literal["show", "series"], target_id: Slug, p: Programs, who: Caller
) -> dict[str, Any]:
    """Follow a show or a series: reminders (``show_reminder`` events, GET /events) before
    each show starts."""
    require_self_or_service(who, user_id)
    created = await p.store.follow(user_id, kind, target_id)
    return {"user_id": user_id, "kind": kind, "id": target_id, "created": created}


@router.delete("/users/{user_id}/follows/{kind}/{target_id}")
async def unfollow(
    user_id: Slug, kind: Literal["show", "series"], target_id: Slug, p: Programs, who: Caller
) -> dict[str, Any]:
    require_self_or_service(who, user_id)
    removed = await p.store.unfollow(user_id, kind, target_id)
    return {"user_id": user_id, "kind": kind, "id": target_id, "removed": removed}


@router.get("/users/{user_id}/follows")
async def follows(user_id: Slug, p: Programs, who: Caller) -> list[dict[str, Any]]:
    require_self_or_service(who, user_id)
    return await p.store.follows(user_id)


@router.get("/creators/{user_id}/calendar")
async def creator_calendar(
    user_id: Slug,
    p: Programs,
    start: Annotated[float | None, Query(alias="from", gt=0)] = None,
    end: Annotated[float | None, Query(alias="to", gt=0)] = None,
) -> list[dict[str, Any]]:
    """Every show the creator hosts between ``from`` and ``to``, on any channel."""
    begin, finish = _range(start, end)
    return [s.to_wire() for s in await p.store.calendar(host=user_id, start=begin, end=finish)]


@router.get("/series/{series_id}/calendar")
async def series_calendar(
    series_id: Slug,
    p: Programs,
    start: Annotated[float | None, Query(alias="from", gt=0)] = None,
    end: Annotated[float | None, Query(alias="to", gt=0)] = None,
) -> list[dict[str, Any]]:
    begin, finish = _range(start, end)
    shows = await p.store.calendar(series_id=series_id, start=begin, end=finish)
    return [s.to_wire() for s in shows]


@router.put("/creators/{user_id}/availability")
async def set_availability(
    user_id: Slug, body: AvailabilityIn, p: Programs, who: Caller
) -> dict[str, Any]:
    """When the creator can host (weekly windows in their time zone); bookings outside
    them are refused. No windows: any time."""
    require_self_or_service(who, user_id)
    windows = tuple((w.weekday, dt.time.fromisoformat(w.start), _end_of(w.end))
                    for w in body.windows)  # fmt: skip
    await p.set_availability(user_id, Availability(body.tz, windows))
    return {"user_id": user_id, **body.model_dump()}


@router.get("/creators/{user_id}/availability")
async def get_availability(user_id: Slug, p: Programs) -> dict[str, Any]:
    hours = await p.store.availability(user_id)
    if hours is None:
        return {"user_id": user_id, "tz": None, "windows": []}
    return {"user_id": user_id, "tz": hours.tz, "windows": [
        {"weekday": d, "start": a.strftime("%H:%M"), "end": b.strftime("%H:%M")}
        for d, a, b in hours.windows
    ]}  # fmt: skip


def _end_of(text: str) -> dt.time:
    return dt.time.max if text == "24:00" else dt.time.fromisoformat(text)


def _range(start: float | None, end: float | None) -> tuple[float, float]:
    begin = start if start is not None else clock.now() - Day
    finish = end if end is not None else begin + 8 * Day
    if finish <= begin or finish - begin > 92 * Day:
        raise InvalidRequest("'to' comes after 'from', at most 92 days later")
    return begin, finish
