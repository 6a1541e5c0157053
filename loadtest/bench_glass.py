"""Glass-to-glass latency: a camera stamps its capture time into every frame, players read
the frames back from HLS and from WHEP and compute how late each one arrives.

    python loadtest/bench_glass.py [--seconds 30] [--database-url ...] [--redis-url ...]

A whole local liveshop runs (embedded PostgreSQL and Redis unless URLs are given). The
camera is an aiortc WHIP publisher (a browser camera's path), 640x360 at 30 fps, each frame
stamped with the wall clock in milliseconds (:mod:`liveshop.media.stamp`).

- WHEP: a WebRTC subscriber; the delay of a frame is its arrival minus its stamp.
- HLS: a player polling the live playlist of the top rendition every 100 ms; a segment's
  delay is when it has downloaded (the earliest a player could show its first frame) minus
  the stamp of that first frame. ``hold-back`` adds one segment: a player that keeps one
  segment of buffer, as a stable one does.

Goals (issue 5): HLS <= 3 s, WHEP <= 0.5 s. The last line prints the medians, the p95s and
the ratio of each median to its goal (below 1.0 meets it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import httpx
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack
from bench_fanout import ROOM, LiveshopUnderTest, add_service_args  # a sibling script

from liveshop.media.stamp import picture, read_stamp
from liveshop.media.webrtc import exchange

HLS_GOAL, WHEP_GOAL = 3.0, 0.5


def wall_ms() -> int:
    return int(time.time() * 1000) & 0xFFFFFFFF


def age(stamp_ms: int) -> float:
    """Seconds since the stamp (the stamp is the wall clock mod 2**32 ms)."""
    return ((wall_ms() - stamp_ms) & 0xFFFFFFFF) / 1000


class ClockCamera(VideoStreamTrack):  # type: ignore[misc]
    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = picture(640, 360, wall_ms())
        frame.pts, frame.time_base = pts, time_base
        return frame


async def negotiate(http: httpx.AsyncClient, pc: RTCPeerConnection, url: str, token: str) -> str:
    """Offer and answer; the session URL (to DELETE at the end)."""
    response = await exchange(http, pc, url, token)
    response.raise_for_status()
    return str(response.headers["location"])


async def whep_player(
    http: httpx.AsyncClient, token: str, until: float, delays: list[float]
) -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    tracks: asyncio.Queue[object] = asyncio.Queue()
    pc.on("track", tracks.put_nowait)
    await negotiate(http, pc, f"/media/rooms/{ROOM}/whep", token)
    try:
        track = await asyncio.wait_for(tracks.get(), 20)
        while time.monotonic() < until:
            frame = await asyncio.wait_for(track.recv(), 10)  # type: ignore[attr-defined]
            delays.append(age(read_stamp(frame)))
    except MediaStreamError:
        pass
    finally:
        await pc.close()


async def hls_player(
    http: httpx.AsyncClient, playlist: str, until: float, delays: list[float]
) -> None:
    seen: set[str] = set()
    base = playlist.rsplit("/", 1)[0]
    first = True
    while time.monotonic() < until:
        response = await http.get(playlist)
        if response.status_code == 200:
            names = [n for n in response.text.splitlines() if n.endswith(".ts")]
            for name in names:
                if name in seen:
                    continue
                seen.add(name)
                if first:
                    continue  # what was listed before we started says nothing of latency
                segment = await http.get(f"{base}/{name}")
                with av.open(io.BytesIO(segment.content), format="mpegts") as container:
                    frame = next(container.decode(video=0))
                delays.append(age(read_stamp(frame)))
            first = False
        await asyncio.sleep(0.1)


async def measure(liveshop: LiveshopUnderTest, seconds: float) -> tuple[list[float], list[float]]:
    settings = liveshop.stack.settings
    host, viewer = liveshop.token("host", "host"), liveshop.token("viewer", "viewer")
    async with httpx.AsyncClient(base_url=settings.http_url, timeout=30) as http:
        camera = RTCPeerConnection()
        camera.addTransceiver(ClockCamera(), direction="sendonly")
        session = await negotiate(http, camera, f"/media/rooms/{ROOM}/whip", host)
        try:
            view: dict[str, object] = {}
            deadline = time.monotonic() + 60
            while not view.get("hls") or view.get("status") != "live":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the stream did not go live: {view}")
                await asyncio.sleep(0.5)
                response = await http.get(f"/media/rooms/{ROOM}/stream")
                view = response.json() if response.status_code == 200 else {}
            top = view["renditions"][0]  # type: ignore[index]
            playlist = str(view["hls"]).replace("master.m3u8", f"{top}/index.m3u8")
            await asyncio.sleep(3)  # past the start-up: measure the steady state
            until = time.monotonic() + seconds
            hls: list[float] = []
            whep: list[float] = []
            await asyncio.gather(
                hls_player(http, playlist, until, hls),
                whep_player(http, viewer, until, whep),
            )
        finally:
            with contextlib.suppress(httpx.HTTPError):
                auth = {"Authorization": f"Bearer {host}"}
                await http.delete(session, headers=auth)
                await http.post(f"/media/rooms/{ROOM}/stream/stop", headers=auth)
            await camera.close()
    return hls, whep


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    add_service_args(parser)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="liveshop-glass-"))
    liveshop = LiveshopUnderTest(data_dir, args)
    try:
        liveshop.start()
        hls, whep = asyncio.run(measure(liveshop, args.seconds))
    finally:
        try:
            liveshop.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)
    if not hls or not whep:
        print(f"no measurements (hls {len(hls)}, whep {len(whep)})", file=sys.stderr)
        return 1
    segment = liveshop.stack.settings.segment_seconds
    hls_median, whep_median = statistics.median(hls), statistics.median(whep)
    print(f"  HLS:  {len(hls)} segments, live edge median {hls_median:.2f} s, p95 {p95(hls):.2f} s,"
          f" with one segment held back {hls_median + segment:.2f} s")  # fmt: skip
    print(f"  WHEP: {len(whep)} frames, median {whep_median:.3f} s, p95 {p95(whep):.3f} s")
    print(
        f"glass-to-glass {args.seconds:.0f} s: HLS median {hls_median + segment:.2f} s held back "
        f"(edge {hls_median:.2f}, p95 {p95(hls) + segment:.2f}), WHEP median {whep_median:.3f} s "
        f"(p95 {p95(whep):.3f}); ratio to goal HLS {(hls_median + segment) / HLS_GOAL:.2f}, "
        f"WHEP {whep_median / WHEP_GOAL:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
