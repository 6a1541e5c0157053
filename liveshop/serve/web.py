"""The web pages: viewer, host studio, channel grid, operations, cart, checkout and orders.

Static files served by the API deployment under ``/app``; the pages talk to liveshop only
through the documented WebSocket and HTTP APIs (``docs/protocol.md``). Nothing is fetched
from the internet: the HLS player (hls.js) is copied from npm into ``liveshop/web/static/
vendor`` by ``scripts/build-web``, which both README commands run.
"""

import asyncio
import gzip
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import Field

from liveshop import __version__, clock
from liveshop.config import Settings
from liveshop.errors import NotFound, RateLimited, Unavailable
from liveshop.ratelimit import TokenBucket
from liveshop.serve import views
from liveshop.serve.schema import JSON, Body, Route, answers
from liveshop.text import Name
from liveshop.tokens import ANY_ROOM, Role, issue_token

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
PAGES_DIR = WEB_DIR / "pages"
STATIC_DIR = WEB_DIR / "static"
#: Page → the paths it serves (its script reads the path).
ROUTES = {
    "home": ["/app/"],
    "watch": ["/app/watch/{room}", "/app/tv/{channel}"],
    "studio": ["/app/studio/{room}"],
    "ops": ["/app/ops"],
    "cart": ["/app/cart"],
    "checkout": ["/app/checkout"],
    "orders": ["/app/orders", "/app/orders/{order}"],
}
PAGES = tuple(ROUTES)
BODY_MARKER = "<!-- body -->\n"
LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/app/static/css/app.css">
{head}</head>
<body>
{body}</body>
</html>
"""
#: Guest tokens: what a guest may do everywhere (watch, chat, vote, buy), and how long.
GUEST_ROLES = [Role.VIEWER]
GUEST_TTL = 24 * 3600.0
#: Per client address: guest tokens per second sustained, and burst.
GUEST_RATE, GUEST_BURST = 0.2, 10
#: Client addresses tracked by the guest limiter before the oldest are forgotten.
GUEST_CLIENTS = 10_000

router = APIRouter(route_class=Route)


class _Context:
    settings: Settings | None = None
    pages: dict[str, bytes] = {}
    guests: dict[str, TokenBucket] = {}
    csp: str = ""


_context = _Context()


def use(settings: Settings) -> None:
    """Called by the API deployment when it starts: reads the pages once."""
    _context.settings = settings
    _context.pages = {name: render_page(name) for name in PAGES}
    _context.csp = content_security_policy(ws_url(settings))


def render_page(name: str) -> bytes:
    """A page file holds its own ``<title>`` and scripts, then ``<!-- body -->`` and its
    body; the document around them is the same for every page."""
    head, marker, body = (PAGES_DIR / f"{name}.html").read_text().partition(BODY_MARKER)
    if not marker:
        raise ValueError(f"pages/{name}.html has no {BODY_MARKER.strip()} line")
    return LAYOUT.replace("{head}", head).replace("{body}", body).encode()


def ws_url(settings: Settings) -> str:
    return settings.public_ws_url or settings.ws_url


def content_security_policy(ws: str) -> str:
    """Pages load scripts, styles and fonts from liveshop only; product images may come
    from a merchant's CDN (https), and video from liveshop's media or a blob (hls.js)."""
    parts = urlsplit(ws)
    socket = f"{parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data: blob: https:; media-src 'self' blob:; worker-src 'self' blob:; "
        f"connect-src 'self' {socket}; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    )


def _settings() -> Settings:
    if _context.settings is None:  # web.use() was not called yet
        raise Unavailable("the API is starting, try again")
    return _context.settings


def _page(name: str) -> Response:
    return Response(
        _context.pages[name],
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": _context.csp,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/app/", status_code=307)


def _page_route(name: str) -> Any:
    async def page() -> Response:
        return _page(name)

    return page


for _name, _paths in ROUTES.items():
    for _path in _paths:
        router.add_api_route(_path, _page_route(_name), methods=["GET"], include_in_schema=False)


@router.get("/app/config", response_model=views.PageConfig, responses=answers(params=False))
async def config() -> dict[str, Any]:
    """What a page needs to start: where the gateway is, whether guests may join."""
    settings = _settings()
    return {"ws_url": ws_url(settings), "guest_tokens": settings.guest_tokens,
            "whep_max_subscribers": settings.whep_max_subscribers,
            "version": __version__}  # fmt: skip


class GuestIn(Body):
    #: Shown to others in chat: a name (liveshop/text.py): no controls, no invisible
    #: characters; blank for "Guest xxxx".
    name: Annotated[Name, Field(max_length=40)] = ""


@router.post(
    "/auth/guest",
    status_code=201,
    response_model=views.GuestTokenOut,
    responses=answers(*JSON, 404, 429),
)
async def guest(request: Request, body: GuestIn) -> dict[str, Any]:
    """A viewer token for a new guest (no account): watch, chat, vote and buy everywhere.

    Limited per client address, since each guest is a new user to the chat limits."""
    settings = _settings()
    if not settings.guest_tokens:
        raise NotFound("guest tokens are disabled (LIVESHOP_GUEST_TOKENS=off)")
    now = clock.now()
    address = request.client.host if request.client else "?"
    bucket = _context.guests.get(address)
    if bucket is None:
        if len(_context.guests) >= GUEST_CLIENTS:
            _context.guests.pop(next(iter(_context.guests)))
        bucket = _context.guests[address] = TokenBucket(GUEST_RATE, GUEST_BURST, now)
    if not bucket.take(now):
        raise RateLimited("too many guest sessions from this address; try again shortly")
    user_id = f"guest-{secrets.token_hex(6)}"
    name = body.name.strip() or f"Guest {user_id[-4:]}"
    token = issue_token(settings.secret, user_id=user_id, name=name,
                        rooms={ANY_ROOM: GUEST_ROLES}, now=now, ttl=GUEST_TTL)  # fmt: skip
    return {"token": token, "user": {"id": user_id, "name": name},
            "expires_at": int(now + GUEST_TTL)}  # fmt: skip


class _Static(StaticFiles):
    """Static files revalidated on every load (ETags make that a 304: a new release is
    picked up at once) and gzipped once per file version, not per request: when a big show
    starts, thousands of first loads of hls.js (389 kB) must not each cost a compression."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._gzipped: dict[tuple[str, str], bytes] = {}

    async def get_response(self, path: str, scope: Any) -> Response:
        response = await super().get_response(path, scope)
        if (isinstance(response, FileResponse) and response.status_code == 200
                and _accepts_gzip(scope)):  # fmt: skip
            etag = response.headers.get("etag", "")
            key = (str(response.path), etag)
            body = self._gzipped.get(key)
            if body is None:
                body = await asyncio.to_thread(_gzip_file, str(response.path))
                self._gzipped[key] = body
            headers = {k: response.headers[k] for k in ("etag", "last-modified")
                       if k in response.headers}  # fmt: skip
            response = Response(body, media_type=response.media_type, headers={
                **headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})  # fmt: skip
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def _gzip_file(path: str) -> bytes:
    return gzip.compress(Path(path).read_bytes(), compresslevel=9, mtime=0)


def _accepts_gzip(scope: Any) -> bool:
    """A plain GET that takes gzip (a Range request gets the file's own bytes)."""
    headers = dict(scope.get("headers") or [])
    return b"gzip" in headers.get(b"accept-encoding", b"") and b"range" not in headers


def static_files() -> StaticFiles:
    return _Static(directory=STATIC_DIR, check_dir=False)
