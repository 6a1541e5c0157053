"""Ladder cost: the CPU each rung of liveshop's ladder encoder takes, and the whole ladder's
speed and CPU against the ``ffmpeg`` command line doing the same ladder on the same input,
in the same run.

The input is a 1080p30 test pattern with a tone (FFmpeg's testsrc2 and sine, made once with
the command line). Both sides decode it once and encode the rungs with libx264 at the same
preset and the same rate and keyframe settings (``Rendition.x264_options``) plus AAC, cut
into 1-second MPEG-TS segments.

- *Per rung*: the CPU (user + system, every thread) of liveshop encoding that rung alone,
  less the CPU of decoding the input alone, per second of video: the cores the rung keeps
  busy at 30 fps. Beside it, what ``measure_cost`` (the transcoder actor's start-up
  measurement) predicts for it: their ratio is the model's overhead check.
- *Whole ladder*: real-time factor (media seconds / wall seconds) and cores, liveshop and
  the ffmpeg CLI.

Needs Debian's ffmpeg (``apt-get install ffmpeg``).

    .venv/bin/python loadtest/bench_ladder.py --seconds 10
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av

from liveshop.media.ladder import DEFAULT_LADDER, Budget, Rung, fit_ladder, ladder_for
from liveshop.media.segments import LocalDiskStore
from liveshop.media.transcoder import measure_cost, transcode_file

SIZE = (1920, 1080)


def make_source(path: Path, seconds: float) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={SIZE[0]}x{SIZE[1]}:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-b:v", "8M", "-c:a", "aac",
         "-ac", "2", str(path)],
        check=True,
    )  # fmt: skip


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed(work: Callable[[], object], who: int = resource.RUSAGE_SELF) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``work``."""
    cpu, wall = _cpu(who), time.perf_counter()
    work()
    return time.perf_counter() - wall, _cpu(who) - cpu


def decode_only(source: Path) -> None:
    with av.open(str(source)) as container:
        for _ in container.decode(container.streams.video[0], *container.streams.audio[:1]):
            pass


def cli_ladder(source: Path, out: Path, preset: str, rungs: tuple[Rung, ...]) -> None:
    renditions = ladder_for(*SIZE, 30, segment_seconds=1.0, rungs=rungs)
    split = f"[0:v]split={len(renditions)}" + "".join(f"[v{i}]" for i in range(len(renditions)))
    scales = ";".join(f"[v{i}]scale={r.width}:{r.height}[s{i}]" for i, r in enumerate(renditions))
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(source),
               "-filter_complex", f"{split};{scales}"]  # fmt: skip
    for i, r in enumerate(renditions):
        x264 = r.x264_options(preset)
        folder = out / r.name
        folder.mkdir(parents=True)
        command += [
            "-map", f"[s{i}]", "-map", "0:a", "-c:v", "libx264", "-pix_fmt", "yuv420p",
            "-preset", x264["preset"], "-tune", x264["tune"], "-g", x264["g"],
            "-keyint_min", x264["keyint_min"], "-sc_threshold", "0", "-bf", "0",
            "-b:v", x264["b"], "-maxrate", x264["maxrate"], "-bufsize", x264["bufsize"],
            "-c:a", "aac", "-b:a", f"{r.audio_kbps}k", "-ar", "48000", "-ac", "2",
            "-f", "segment", "-segment_time", "1", "-segment_format", "mpegts",
            str(folder / "seg%06d.ts"),
        ]  # fmt: skip
    subprocess.run(command, check=True)


def liveshop_ladder(source: Path, out: Path, preset: str, rungs: tuple[Rung, ...]) -> None:
    transcode_file(
        source, store=LocalDiskStore(out / "hls"), prefix="bench", work=out / "work",
        now=time.time, segment_seconds=1.0, preset=preset, rungs=rungs,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the input")
    parser.add_argument("--preset", default="veryfast", help="libx264 preset (both sides)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the ladders; best counts")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        sys.exit("the ffmpeg command line is needed for the baseline: apt-get install ffmpeg")
    seconds, preset = args.seconds, args.preset
    work = Path(tempfile.mkdtemp(prefix="liveshop-ladder-"))
    try:
        source = work / "source.ts"
        make_source(source, seconds)
        model = measure_cost(preset)
        print(f"measure_cost({preset}): {model}", flush=True)
        _, decode_cpu = timed(lambda: decode_only(source))
        print(f"decode 1080p30: {decode_cpu / seconds:.3f} cores "
              f"(model {model.source(*SIZE, 30):.3f})", flush=True)  # fmt: skip
        predicted = 0.0
        for rung in DEFAULT_LADDER:
            folder = work / f"rung-{rung.name}"
            _, cpu = timed(lambda r=rung, f=folder: liveshop_ladder(source, f, preset, (r,)))
            cores = max(0.0, cpu - decode_cpu) / seconds
            (rendition,) = ladder_for(*SIZE, 30, segment_seconds=1.0, rungs=(rung,))
            estimate = model.rung(rendition, SIZE)
            predicted += estimate
            print(f"rung {rung.name:>5}: {cores:.3f} cores at 30 fps (model {estimate:.3f}, "
                  f"measured/model {cores / estimate:.2f})", flush=True)  # fmt: skip
        ladder = ladder_for(*SIZE, 30, segment_seconds=1.0)
        for cores in (1, 2, 4):
            fitted = fit_ladder(ladder, Budget(model, cores), source=SIZE)
            print(f"a {cores}-core node starts a 1080p30 source with "
                  f"{'/'.join(r.name for r in fitted)}", flush=True)  # fmt: skip
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for n in range(args.rounds):
            theirs.append(
                timed(
                    lambda n=n: cli_ladder(source, work / f"cli{n}", preset, DEFAULT_LADDER),
                    resource.RUSAGE_CHILDREN,
                )
            )
            ours.append(timed(lambda n=n: liveshop_ladder(source, work / f"ls{n}", preset,
                                                         DEFAULT_LADDER)))  # fmt: skip
            print(
                f"round {n + 1}: liveshop {seconds / ours[-1][0]:.2f}x real time, "
                f"{ours[-1][1] / seconds:.2f} cores; ffmpeg CLI {seconds / theirs[-1][0]:.2f}x, "
                f"{theirs[-1][1] / seconds:.2f} cores",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wall, cpu = min(ours)
    cli_wall, cli_cpu = min(theirs)
    print(
        f"whole ladder predicted by measure_cost: {predicted + model.source(*SIZE, 30):.2f} "
        f"cores, measured {cpu / seconds:.2f}",
        flush=True,
    )
    print(
        f"ladder 1080p30 -> 1080p/720p/480p/360p {preset}, {seconds:.0f} s: liveshop "
        f"{seconds / wall:.2f}x real time ({cpu / seconds:.2f} cores), ffmpeg CLI "
        f"{seconds / cli_wall:.2f}x ({cli_cpu / seconds:.2f} cores), ratio "
        f"{cli_wall / wall:.2f} (speed), {cli_cpu / cpu:.2f} (CPU)",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
