"""Going live over RTMP: stream keys, the transcoder actor, HLS over HTTP, the recording,
failover to the backup and the slate, bad publishers, and a transcoder killed mid-stream."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Any

import av
import httpx

from liveshop.actors import wiring
from tests.e2e.conftest import Running
from tests.e2e.publisher import RtmpPublisher, read_index


async def _room_with_keys(running: Running, http: httpx.AsyncClient, room: str) -> dict[str, str]:
    assert (await http.post("/rooms", json={"id": room, "title": "Live"})).status_code == 201
    issued = await http.post(f"/media/rooms/{room}/stream-keys")
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert body["rtmp_url"] == running.settings.rtmp_url
    return {slot: f"{body['rtmp_url']}/{key}" for slot, key in body["keys"].items()}


async def _eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.25)


async def _stream(http: httpx.AsyncClient, room: str) -> dict[str, Any] | None:
    response = await http.get(f"/media/rooms/{room}/stream")
    return response.json() if response.status_code == 200 else None


async def _live(http: httpx.AsyncClient, room: str, **expected: Any) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        view = await _stream(http, room)
        if view and view["hls"] and all(view.get(k) == v for k, v in expected.items()):
            return view
        return None

    view: dict[str, Any] = await _eventually(check)
    return view


def _decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), format="mpegts") as container:
        return list(container.decode(video=0))


async def _stop(http: httpx.AsyncClient, room: str) -> dict[str, Any]:
    stopped = await http.post(f"/media/rooms/{room}/stream/stop")
    assert stopped.status_code == 200, stopped.text
    view: dict[str, Any] = stopped.json()
    return view


async def test_rtmp_publisher_goes_live_as_an_hls_ladder_with_a_recording(
    running: Running, new_id: Callable[[str], str]
) -> None:
    room = new_id("live")
    async with running.http() as http:
        urls = await _room_with_keys(running, http, room)
        publisher = RtmpPublisher(urls["primary"], width=854, height=480).start()
        try:
            view = await _live(http, room, status="live", source="primary")
            assert view["renditions"] == ["480p", "360p"]
            master = await _eventually(lambda: _get_ok(http, view["hls"]))
            assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
            assert "max-age=1" in master.headers["cache-control"]
            assert "480p/index.m3u8" in master.text and "360p/index.m3u8" in master.text
            base = view["hls"].rsplit("/", 1)[0]
            sizes = {"480p": (854, 480), "360p": (640, 360)}
            for rung, size in sizes.items():
                playlist = await _eventually(lambda r=rung: _segments(http, f"{base}/{r}"))
                segment = await http.get(f"{base}/{rung}/{playlist[-1]}")
                assert segment.status_code == 200
                assert segment.headers["content-type"] == "video/mp2t"
                assert "immutable" in segment.headers["cache-control"]
                frames = _decode(segment.content)
                assert frames and (frames[0].width, frames[0].height) == size
                assert read_index(frames[-1], 854) > 0  # the publisher's frames, not a slate
            thumb = await _eventually(lambda: _thumbnail(http, room))
            assert (
                thumb.headers["content-type"] == "image/jpeg" and thumb.content[:2] == b"\xff\xd8"
            )
        finally:
            publisher.stop()
        assert publisher.error is None, publisher.error
        ended = await _stop(http, room)
        assert ended["status"] == "ended"
        live = (await http.get(f"{base}/480p/index.m3u8")).text
        assert live.rstrip().endswith("#EXT-X-ENDLIST")
        replay = await http.get(ended["replay"])
        assert replay.status_code == 200 and "480p/vod.m3u8" in replay.text
        vod = (await http.get(f"{base}/480p/vod.m3u8")).text
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod and vod.rstrip().endswith("#EXT-X-ENDLIST")
        names = [line for line in vod.splitlines() if line.endswith(".ts")]
        assert names[0] == "seg000000.ts"  # the recording keeps every segment
        recording = b"".join([(await http.get(f"{base}/480p/{n}")).content for n in names])
        frames = _decode(recording)
        # Everything the publisher sent (give or take the last partial segment) is in it.
        assert len(frames) >= publisher.frames - 40, (len(frames), publisher.frames)
        # The actor leaves once the stream has ended: the name is free for the next show.
        await _eventually(lambda: _gone(room), timeout=20)
        # Nothing outside the stream's files can be read through the HLS route.
        assert (await http.get("/media/live/../secret.key")).status_code == 404
        assert (await http.get(f"{base}/state.json")).status_code == 404


async def _get_ok(http: httpx.AsyncClient, url: str) -> httpx.Response | None:
    response = await http.get(url)
    return response if response.status_code == 200 else None


async def _segments(http: httpx.AsyncClient, rendition: str) -> list[str] | None:
    response = await http.get(f"{rendition}/index.m3u8")
    if response.status_code != 200:
        return None
    names = [line for line in response.text.splitlines() if line.endswith(".ts")]
    return names if len(names) >= 2 else None


async def _thumbnail(http: httpx.AsyncClient, room: str) -> httpx.Response | None:
    view = await _stream(http, room)
    if not view or not view["thumbnail"]:
        return None
    return await _get_ok(http, view["thumbnail"])


async def _gone(room: str) -> bool:
    return await asyncio.to_thread(wiring.get_transcoder_actor, room) is None
