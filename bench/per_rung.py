#!/usr/bin/env python3
"""Per rung on the fixed ladder (issue 18): each rung of the auto ladder made alone by stream-pack,
the seed library and the expert ffmpeg command, from the per-title benchmark's titles, so that
the CPU of one rung can be told apart (stream-pack makes every rung in one process). Each run is
timed from outside (CPU user+sys of the process tree; every contender also encodes the 128k AAC
track) and its rung judged at its own size by the per-title benchmark's judge (FFmpeg 8.1: PSNR,
SSIM, XPSNR against the source scaled down bicubic).

    python3 bench/per_rung.py --stream-pack target/release/stream-pack           # 10 s titles
    python3 bench/per_rung.py --report bench/results/X-per-rung.json             # the table again

Results in bench/results/<stamp>-per-rung.json.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing run.py
import per_title  # noqa: E402
import run  # noqa: E402
from run import RESULTS  # noqa: E402

SETUP = per_title.SETUPS["quick"]
# The generated titles, all 1280x720: the real clips' sizes make other ladders.
TITLES = per_title.TITLES
# The auto ladder's rungs for a 1280x720 source, as stream-pack sizes them.
RUNGS = [(1280, 720), (960, 540), (768, 432), (640, 360), (416, 234)]
CONTENDERS = ("stream-pack", "seed", "expert")


def commands(binary: Path, src: Path, size: tuple[int, int], kbps: int, out: dict) -> dict:
    width, height = size
    return {
        "stream-pack": [binary, "hls", src, "-o", out["stream-pack"], "--reps", height, "--no-passthrough-top",
                        "--segment-duration", per_title.SEGMENT_SECONDS, "--encoder-preset", per_title.PRESET,
                        "--audio-bitrate", f"{per_title.AUDIO_KBPS}k", "--force"],
        "seed": run.seed_command(src, [(width, height, kbps)], out["seed"]),
        "expert": run.expert_command(src, [(width, height, kbps)], out["expert"]),
    }


def judge(out: Path, master: str, src: Path, size: tuple[int, int]) -> dict:
    """The one rung's rate and quality at its own size."""
    width, height = size
    variant = run.master_variants(out / master)[0]
    if tuple(variant["resolution"]) != size:
        sys.exit(f"bench: {out}: a {variant['resolution']} rung where {size} was asked")
    rung = run.probe_rung(variant["playlist"], run.probe_source(src)["fps"])
    quality = per_title.metrics(variant["playlist"], src, "null",
                                f"scale={width}:{height}:flags={per_title.REFERENCE_SCALER}")
    return {"video_kbps": rung["video_kbps"], **quality}


def measure_rung(binary: Path, src: Path, work: Path, size: tuple[int, int], kbps: int, order: int) -> dict:
    """The rung made by each contender, in an order that rotates from rung to rung."""
    out = {name: work / name for name in CONTENDERS}
    for folder in out.values():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    argv = commands(binary, src, size, kbps, out)
    names = list(CONTENDERS[order % 3:] + CONTENDERS[:order % 3])
    record = {"size": list(size), "kbps": kbps, "contenders": {}}
    for name in names:
        result = per_title.timed(name, argv[name], work)
        judged = judge(out[name], per_title.MASTERS["seed" if name == "seed" else "fixed"], src, size)
        record["contenders"][name] = {"cpu": result["cpu"], "wall": result["wall"], **judged}
        shutil.rmtree(out[name], ignore_errors=True)
    return record


def measure_all(binary: Path) -> dict:
    run.SEGMENT_SECONDS = per_title.SEGMENT_SECONDS
    run.PRESET = per_title.PRESET
    run.AUDIO_KBPS = per_title.AUDIO_KBPS
    kbps = per_title.ladder_rungs()
    data = {"machine": run.machine(), "setup": {"seconds": SETUP.seconds}, "titles": []}
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{stamp}-per-rung.json"
    started, order = time.monotonic(), 0
    for title in TITLES:
        src = per_title.make_source(title, SETUP)
        work = per_title.WORK / "per-rung" / title.name
        work.mkdir(parents=True, exist_ok=True)
        print(f"bench: {title.name}", flush=True)
        rungs = []
        for size in RUNGS:
            rungs.append(measure_rung(binary, src, work, size, kbps[size[1]]["kbps"], order))
            order += 1
        data["titles"].append({"name": title.name, "difficulty": title.difficulty, "rungs": rungs})
        data["duration_s"] = round(time.monotonic() - started)
        path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"bench: results in {path.relative_to(run.ROOT)}")
    return data


def report(data: dict) -> str:
    lines = ["| title | rung | stream-pack CPU s | × seed | × expert | Y PSNR − seed | − expert | SSIM Y − seed | − expert "
             "| XPSNR Y − seed | − expert | kb/s stream-pack / seed / expert |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    worst = {"seed": 0.0, "expert": 0.0}
    for title in data["titles"]:
        for rung in title["rungs"]:
            c = rung["contenders"]
            mine = c["stream-pack"]
            for other in worst:
                worst[other] = max(worst[other], mine["cpu"] / c[other]["cpu"])
            lines.append(
                f"| {title['name']} | {rung['size'][1]}p | {mine['cpu']:.2f} | {mine['cpu'] / c['seed']['cpu']:.2f} "
                f"| {mine['cpu'] / c['expert']['cpu']:.2f} "
                + " ".join(f"| {mine[m] - c['seed'][m]:+.{p}f} | {mine[m] - c['expert'][m]:+.{p}f}"
                           for m, p in (("psnr_y", 2), ("ssim_y", 4), ("xpsnr_y", 2)))
                + f" | {mine['video_kbps']:.0f} / {c['seed']['video_kbps']:.0f} / {c['expert']['video_kbps']:.0f} |")
    totals = {n: sum(r["contenders"][n]["cpu"] for t in data["titles"] for r in t["rungs"]) for n in CONTENDERS}
    lines.append(f"\nAll rungs: CPU s {', '.join(f'{n} {v:.1f}' for n, v in totals.items())}; "
                 f"the highest stream-pack/seed ratio {worst['seed']:.2f}, stream-pack/expert {worst['expert']:.2f}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream-pack", metavar="BINARY", help="use this binary instead of cargo build --release")
    parser.add_argument("--report", metavar="JSON", help="the table again from a saved run")
    args = parser.parse_args()
    if args.report:
        data = json.loads(Path(args.report).read_text())
    else:
        data = measure_all(run.stream_pack_binary(args.stream_pack))
    print(report(data))


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != run.VENV.resolve():
        run.bootstrap(os.path.abspath(__file__))
    main()
