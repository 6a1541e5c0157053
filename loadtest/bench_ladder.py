"""Ladder speed: the real-time factor of liveshop's ladder encoder against the ``ffmpeg``
command line doing the same ladder on the same input, in the same run.

The input is a 720p30 test pattern with a tone (FFmpeg's testsrc2 and sine, made once with
the command line). Both sides decode it once and encode 720p/480p/360p with libx264 at the
same preset and the same rate and keyframe settings (``Rendition.x264_options``) plus AAC,
cut into 2-second MPEG-TS segments. Real-time factor = media seconds / wall seconds.
Needs Debian's ffmpeg (``apt-get install ffmpeg``).

    .venv/bin/python loadtest/bench_ladder.py --seconds 20
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from liveshop.media.ladder import ladder_for
from liveshop.media.segments import LocalDiskStore
from liveshop.media.transcoder import transcode_file


def make_source(path: Path, seconds: float) -> None:
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds),
         "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-c:a", "aac", "-ac", "2",
         str(path)],
        check=True,
    )  # fmt: skip


def cli_ladder(source: Path, out: Path, preset: str) -> float:
    renditions = ladder_for(1280, 720, 30)
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
            "-f", "segment", "-segment_time", "2", "-segment_format", "mpegts",
            str(folder / "seg%06d.ts"),
        ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def liveshop_ladder(source: Path, out: Path, preset: str) -> float:
    started = time.perf_counter()
    transcode_file(
        source, store=LocalDiskStore(out / "hls"), prefix="bench", work=out / "work",
        now=time.time, segment_seconds=2.0, preset=preset,
    )  # fmt: skip
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the input")
    parser.add_argument("--preset", default="veryfast", help="libx264 preset (both sides)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat both; best counts")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        sys.exit("the ffmpeg command line is needed for the baseline: apt-get install ffmpeg")
    work = Path(tempfile.mkdtemp(prefix="liveshop-ladder-"))
    try:
        source = work / "source.ts"
        make_source(source, args.seconds)
        ours: list[float] = []
        theirs: list[float] = []
        for n in range(args.rounds):
            theirs.append(cli_ladder(source, work / f"cli{n}", args.preset))
            ours.append(liveshop_ladder(source, work / f"ls{n}", args.preset))
            print(
                f"round {n + 1}: liveshop {args.seconds / ours[-1]:.2f}x real time "
                f"({ours[-1]:.1f} s), ffmpeg CLI {args.seconds / theirs[-1]:.2f}x "
                f"({theirs[-1]:.1f} s)",
                flush=True,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ours_rtf, cli_rtf = args.seconds / min(ours), args.seconds / min(theirs)
    print(
        f"ladder 720p30 -> 720p/480p/360p {args.preset}, {args.seconds:.0f} s: liveshop "
        f"{ours_rtf:.2f}x real time, ffmpeg CLI {cli_rtf:.2f}x, ratio {ours_rtf / cli_rtf:.2f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
