"""Capacity one client cannot take from the others, through the real API and media apps:
request bodies are bounded before anything reads or parses them (413 ``too_large``, at once
for a ``Content-Length`` above the limit, as soon as a streamed body grows past it), and one
user holds at most ``whep_max_per_user`` WebRTC playback sessions of a stream, none of them
for long without connecting."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import av
import httpx
from aiortc import RTCPeerConnection

from tests.e2e.conftest import Running
from tests.e2e.publisher import RtmpPublisher, whep_play
from tests.e2e.test_media import _live, _room_with_keys, _stop

#: More than any limit; the most a test sends of a streamed body before it must be answered.
STREAM_CAP = 64 * 1024 * 1024
CHUNK = 64 * 1024


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of one HTTP/1.1 response (to the end of its body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines if x)}
    body = await reader.readexactly(int(headers["content-length"]))
    return int(status_line.split()[1]), headers, json.loads(body)


async def _open(running: Running) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(running.settings.http_host, running.settings.http_port)


def _head(method: str, path: str, running: Running, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {running.settings.http_host}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _declared(running: Running, method: str, path: str, length: int) -> tuple[Any, ...]:
    """A request that declares a ``length``-byte body and sends 1 KiB of it: the answer."""
    reader, writer = await _open(running)
    try:
        headers = ("Content-Type: application/json", f"Content-Length: {length}")
        writer.write(_head(method, path, running, *headers) + b"{" + b" " * 1023)
        await writer.drain()
        return await asyncio.wait_for(_response(reader), 30)
    finally:
        writer.close()


async def _streamed(running: Running, method: str, path: str, *headers: str) -> tuple[Any, ...]:
    """A chunked body that never ends: what the server answers, and how much was sent by
    then (the rest of the body is never read: the connection closes)."""
    reader, writer = await _open(running)
    head = _head(method, path, running, "Transfer-Encoding: chunked", *headers)
    answered = asyncio.ensure_future(_response(reader))
    sent = 0
    try:
        writer.write(head + b"%x\r\n{\r\n" % 1)
        while not answered.done() and sent < STREAM_CAP:
            writer.write(b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK))
            sent += CHUNK
            try:
                await asyncio.wait_for(writer.drain(), 5)
            except (ConnectionError, TimeoutError):
                break  # the server stopped reading and closed: its answer is in
            await asyncio.sleep(0.005)  # ~10 MB/s: the answer comes long before the cap
        status, answer_headers, body = await asyncio.wait_for(answered, 30)
        try:
            closed = await asyncio.wait_for(reader.read(), 30) == b""
        except ConnectionResetError:
            # The server closed with the unread body still in its buffer: the kernel answers
            # the rest with a reset, after the 413 that was already read. Closed all the same.
            closed = True
        return status, answer_headers, body, sent, closed
    finally:
        answered.cancel()
        writer.close()


def _too_large(status: int, body: Any, limit: int) -> None:
    assert status == 413, body
    assert body["error"]["code"] == "too_large" and body["error"]["temporary"] is False, body
    assert body["error"]["details"] == {"limit": limit}, body


async def test_bodies_over_the_limit_are_refused_before_they_are_read(running: Running) -> None:
    limit = running.settings.max_body_bytes
    # A declared length above the limit: 413 at once, before authentication (no token here),
    # on the API and the media app alike.
    for method, path in [
        ("POST", "/rooms"),
        ("POST", "/rooms/r/actions/chat"),
        ("PUT", "/media/rooms/r/restreams/d"),
        ("POST", "/media/rooms/r/whep"),
    ]:
        status, headers, body = await _declared(running, method, path, 300_000_000)
        _too_large(status, body, limit)
        assert headers.get("connection") == "close"
    # A streamed body: 413 as soon as it grows past the limit (authenticated or not).
    auth = f"Authorization: Bearer {running.service_token}"
    for method, path, extra in [
        ("POST", "/rooms", ()),
        ("POST", "/skus/s/restock", (auth,)),
        ("PUT", "/media/rooms/r/restreams/d", (auth,)),
        ("POST", "/media/rooms/r/whep", ("Content-Type: application/sdp", auth)),
    ]:
        status, _, body, sent, closed = await _streamed(running, method, path, *extra)
        _too_large(status, body, limit)
        assert sent < STREAM_CAP and closed, (path, sent)
    # Just under the limit is read, parsed and judged as usual.
    async with running.http() as http:
        padded = {"title": "x", "id": "a" * 10, "channel_id": None, "pad": " " * (limit - 200)}
        response = await http.post("/rooms", json=padded)
        assert response.status_code == 422, response.text  # "pad" is not a field
        assert (await http.get("/healthz")).json()["status"] == "ok"


async def test_a_show_with_its_whole_run_of_show_is_not_too_large(running: Running) -> None:
    """POST /shows takes a show with 500 cues of long messages (about 1.5 MB as JSON
    escapes), which the limit alone would refuse; other routes refuse that size."""
    text = "\u00e9" * 500  # 500 characters, 6 bytes each as a JSON escape
    cues = [{"at": i, "action": "message", "params": {"text": text}} for i in range(500)]
    start = time.time() + 3600
    show = {
        "channel_id": "nowhere",
        "title": "Marathon",
        "starts_at": start,
        "ends_at": start + 3600,
        "cues": cues,
    }
    body = json.dumps(show).encode()  # ensure_ascii: every "é" is "\\u00e9"
    assert len(body) > 1_000_000
    as_json = {"Content-Type": "application/json"}
    async with running.http() as http:
        booked = await http.post("/shows", content=body, headers=as_json)
        assert booked.status_code == 404, booked.text  # read and judged: no such channel
        assert booked.json()["error"]["message"] == "no channel 'nowhere'"
        elsewhere = await http.post("/rooms", content=body, headers=as_json)
        _too_large(elsewhere.status_code, elsewhere.json(), running.settings.max_body_bytes)


async def _offer_only(http: httpx.AsyncClient, url: str, token: str) -> httpx.Response:
    """A WHEP offer whose answer is never used: the server's side waits for a connection
    that never comes (a half-open session)."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    try:
        await pc.setLocalDescription(await pc.createOffer())
        assert pc.localDescription is not None
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
        return await http.post(url, content=pc.localDescription.sdp, headers=headers)
    finally:
        await pc.close()


async def test_one_user_cannot_fill_a_streams_webrtc_playback(
    running: Running, new_id: Callable[[str], str]
) -> None:
    """Per user and stream, ``whep_max_per_user`` (2) sessions: a third is 429
    ``rate_limited`` (temporary) while another user still gets in; offers whose connection
    never starts free their slots after ``webrtc_connect_timeout``; a connected session stays."""
    settings = running.settings
    room = new_id("whep-cap")
    greedy = running.token("greedy", {room: ["viewer"]})
    other = running.token("other", {room: ["viewer"]})
    whep = f"/media/rooms/{room}/whep"
    async with running.http() as http:
        urls = await _room_with_keys(running, http, room)
        rtmp = RtmpPublisher(urls["primary"]).start()
        players: list[RTCPeerConnection] = []
        try:
            await _live(http, room, status="live")
            # Two offers never completed take greedy's two slots; the third is refused.
            for _ in range(settings.whep_max_per_user):
                held = await _offer_only(http, whep, greedy)
                assert held.status_code == 201, held.text
            refused = await _offer_only(http, whep, greedy)
            assert refused.status_code == 429, refused.text
            error = refused.json()["error"]
            assert error["code"] == "rate_limited" and error["temporary"] is True
            assert error["details"] == {"limit": settings.whep_max_per_user}
            # Someone else watches meanwhile, and keeps watching past the deadline.
            pc, answer, tracks = await whep_play(http, whep, other)
            players.append(pc)
            assert answer.status_code == 201, answer.text
            video = await asyncio.wait_for(tracks["video"], 20)
            assert isinstance(await asyncio.wait_for(video.recv(), 20), av.VideoFrame)
            # The half-open sessions end at their deadline: greedy may watch again.
            started = time.monotonic()
            while True:
                pc, answer, tracks = await whep_play(http, whep, greedy)
                players.append(pc)
                if answer.status_code == 201:
                    break
                assert answer.status_code == 429, answer.text
                assert time.monotonic() - started < settings.webrtc_connect_timeout + 15
                await asyncio.sleep(0.5)
            mine = await asyncio.wait_for(tracks["video"], 20)
            assert isinstance(await asyncio.wait_for(mine.recv(), 20), av.VideoFrame)
            # Connected sessions are never expired: both still play after the deadline.
            await asyncio.sleep(settings.webrtc_connect_timeout + 1)
            for track in (video, mine):
                assert isinstance(await asyncio.wait_for(track.recv(), 20), av.VideoFrame)
            # Greedy's second session; a third is refused again until one ends.
            pc, second, _ = await whep_play(http, whep, greedy)
            players.append(pc)
            assert second.status_code == 201, second.text
            pc, third, _ = await whep_play(http, whep, greedy)
            players.append(pc)
            assert third.status_code == 429, third.text
            ended = await http.delete(second.headers["location"])
            assert ended.status_code == 200, ended.text
            pc, again, _ = await whep_play(http, whep, greedy)
            players.append(pc)
            assert again.status_code == 201, again.text
        finally:
            for pc in players:
                with contextlib.suppress(Exception):
                    await pc.close()
            rtmp.stop()
        await _stop(http, room)
