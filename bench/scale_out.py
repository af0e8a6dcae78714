#!/usr/bin/env python3
"""Scale out (issue 17): what chunks cost and what they buy.

Measures, on a generated title, a one-process `stream-pack hls` run against the chunked run of the
same options (`plan`, every `encode-chunk`, `assemble`) for several chunk lengths and pre-rolls: CPU
time of every process, wall time with 1 or 2 concurrent encode-chunk workers, and per-segment PSNR
of both packages against the source at the chunk seams. Then simulates 1-64 workers on a
10-minute title from the measured costs (list scheduling, see `simulate`) and draws
bench/plots/scale-out-speedup.png.

    python3 bench/scale_out.py                       # measure, then report (about an hour on 2 busy cores)
    python3 bench/scale_out.py --only 60s-4s-w2,one  # some runs (names printed by --list)
    python3 bench/scale_out.py --report bench/results/X-scale-out.json   # tables and plot again
    python3 bench/scale_out.py --stream-pack target/release/stream-pack
    python3 bench/scale_out.py --seams               # seam PSNR alone: 30 s 640x360, 2 s segments, 6 s chunks
    python3 bench/scale_out.py --long                # the default 120 s chunks on an 8-minute 640x360 title

It reuses bench/run.py's source generator, process measurement (wait4 rusage of each child) and
venv. Results go to bench/results/*-scale-out.json.
"""

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.dont_write_bytecode = True  # no bench/__pycache__ from importing run.py
import run  # noqa: E402
from run import CACHE, PLOTS, RESULTS, ROOT, Source

SOURCE = Source(960, 540, 120)
LADDER = "960x540@1500k,640x360@600k"
SEGMENT_SECONDS = 6
PRESET = "medium"
# The one scaler every rendition is compared through, for both packages.
REFERENCE_SCALER = "bicubic"
SIMULATED_TITLE_SECONDS = 600
SIMULATED_FPS = 30
# x264 medium's rc-lookahead: the frames each chunk but the last encodes past its end and drops.
POSTROLL_FRAMES = 40
SIMULATED_WORKERS = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64]


@dataclass(frozen=True)
class Config:
    name: str
    chunk_seconds: int | None  # None: the one-process run
    preroll_seconds: float = 0
    workers: int = 1


# In the order run: the default first (so a cut-short run still has it), the one-process run
# twice (its spread), then the pre-roll sweep and shorter chunks.
CONFIGS = [
    Config("one", None),
    Config("60s-4s-w2", 60, 4, 2),
    Config("60s-0s", 60, 0),
    Config("60s-2s", 60, 2),
    Config("60s-1s", 60, 1),
    Config("60s-4s-w1", 60, 4, 1),
    Config("one-again", None),
    Config("30s-4s", 30, 4),
    Config("30s-1s", 30, 1),
    Config("30s-2s", 30, 2),
]


# A second, small setup for the seams alone: short segments and chunks, where a chunk's first
# segment weighs most (the conditions the pre-roll was first measured in: --reps 360,240
# --segment-duration 2, 6 s chunks). Its CPU figures are not used.
SEAMS = (Source(640, 360, 30), "360,240", 2,
         [Config("one", None), *(Config(f"6s-{p}s", 6, p) for p in (0, 1, 2, 4))])


# A third setup for the CPU rule at the default chunk length: a title of several default
# chunks (120 s), so the run has seams as a long title does, measured against the one-process
# run before and after it.
LONG = (Source(640, 360, 480), "640x360@600k,426x240@300k", 6,
        [Config("one", None), Config("120s-4s", 120, 4), Config("one-again", None)])


def use_long_setup() -> None:
    global SOURCE, LADDER, SEGMENT_SECONDS, CONFIGS
    SOURCE, LADDER, SEGMENT_SECONDS, CONFIGS = LONG


def use_seams_setup() -> None:
    global SOURCE, LADDER, SEGMENT_SECONDS, CONFIGS
    SOURCE, LADDER, SEGMENT_SECONDS, CONFIGS = SEAMS


def package_args(src: Path) -> list[str]:
    return ["hls", str(src), "--reps", LADDER, "--segment-duration", str(SEGMENT_SECONDS),
            "--encoder-preset", PRESET, "--progress", "none", "--force"]


def measured(argv: list, log: Path) -> dict:
    result = run.measure([str(a) for a in argv], log)
    if result["exit"] != 0:
        sys.exit(f"bench: {' '.join(map(str, argv))} failed, see {log}")
    return result


def one_process(binary: Path, src: Path, work: Path) -> dict:
    out = work / "out"
    return {"run": measured([binary, *package_args(src), "-o", out], work / "one.log"), "out": str(out)}


def chunked(binary: Path, src: Path, work: Path, config: Config) -> dict:
    """plan, then every task with `config.workers` at once, then assemble."""
    plan_dir, out = work / "plan", work / "out"
    shutil.rmtree(plan_dir, ignore_errors=True)
    planned = measured([binary, "plan", *package_args(src), "-o", out, "--plan", plan_dir,
                        "--chunk-duration", f"{config.chunk_seconds}s", "--chunk-preroll", f"{config.preroll_seconds:g}s"],
                       work / "plan.log")
    plan = json.loads((plan_dir / "plan.json").read_text())
    num, den = (int(v) for v in plan["source"]["video"]["time_base"].split("/"))
    frame = 1 / run.probe_source(src)["fps"]

    def task(index: int) -> dict:
        return measured([binary, "encode-chunk", plan_dir, "--index", index], work / f"task-{index}.log")

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(config.workers) as pool:
        tasks = list(pool.map(task, range(plan["tasks"])))
    tasks_wall = time.monotonic() - started
    assembled = measured([binary, "assemble", plan_dir], work / "assemble.log")
    return {"plan": planned, "tasks": tasks, "tasks_wall": round(tasks_wall, 3), "assemble": assembled,
            # Seconds each chunk encodes: pre-roll, its own frames and post-roll.
            "chunks": [{"segments": c["segments"], "frames": c["frames"], "first_segment": c["first_segment"],
                        "encoded_seconds": round((c["postroll_pts"] - c["preroll_pts"]) * num / den + frame, 3)}
                       for c in plan["chunks"]],
            "audio_task": len(plan["chunks"]) if plan["tasks"] > len(plan["chunks"]) else None,
            "out": str(out)}


def segment_frames(playlist: Path, fps: float) -> list[int]:
    """Frames in each segment, from the playlist's EXTINF durations."""
    durations = [float(m) for m in re.findall(r"#EXTINF:([\d.]+)", playlist.read_text())]
    bounds = [round(sum(durations[:i + 1]) * fps) for i in range(len(durations))]
    return [b - a for a, b in zip([0, *bounds], bounds)]


def frame_mse(playlist: Path, src: Path, width: int, height: int, stats: Path) -> list[float]:
    """Per-frame MSE (all planes) of a rendition against the source scaled by REFERENCE_SCALER."""
    graph = (f"[0:v:0]setpts=PTS-STARTPTS[d];"
             f"[1:v:0]scale={width}:{height}:flags={REFERENCE_SCALER},setpts=PTS-STARTPTS[r];"
             f"[d][r]psnr=stats_file={stats}")
    run.sh(["ffmpeg", "-v", "error", "-nostdin", "-i", playlist, "-i", src, "-filter_complex", graph, "-f", "null", "-"])
    return [float(m) for m in re.findall(r"mse_avg:([\d.]+)", stats.read_text())]


def psnr(mse: list[float]) -> float:
    return 10 * math.log10(255**2 / (sum(mse) / len(mse)))


def rung_quality(out: Path, src: Path, fps: float) -> dict:
    """Per rendition: overall PSNR and each segment's."""
    qualities = {}
    for variant in run.master_variants(out / "master.m3u8"):
        width, height = variant["resolution"]
        mse = frame_mse(variant["playlist"], src, width, height, out.parent / f"psnr-{height}.log")
        segments, first = [], 0
        for count in segment_frames(variant["playlist"], fps):
            segments.append(round(psnr(mse[first:first + count]), 3))
            first += count
        qualities[f"{height}p"] = {"psnr": round(psnr(mse), 3), "frames": len(mse), "segments": segments}
    return qualities


def measure_all(binary: Path, configs: list[Config]) -> dict:
    src = run.make_source(SOURCE)
    fps = run.probe_source(src)["fps"]
    data = {"machine": run.machine(), "setup": "seams" if CONFIGS is SEAMS[3] else "long" if CONFIGS is LONG[3] else "main", "source": str(SOURCE), "ladder": LADDER, "segment_seconds": SEGMENT_SECONDS,
            "preset": PRESET, "reference_scaler": REFERENCE_SCALER, "runs": {}}
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp}-scale-out.json"
    for config in configs:
        work = CACHE / "scale-out" / f"{SOURCE.height}p" / config.name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        print(f"bench: {config.name}", flush=True)
        record = one_process(binary, src, work) if config.chunk_seconds is None else chunked(binary, src, work, config)
        record["config"] = config.__dict__
        record["quality"] = rung_quality(Path(record.pop("out")), src, fps)
        data["runs"][config.name] = record
        data["machine"]["load_end"] = Path("/proc/loadavg").read_text().strip()
        path.write_text(json.dumps(data, indent=1) + "\n")
        print(summary_line(config.name, record, data), flush=True)
    print(f"bench: results in {path.relative_to(ROOT)}")
    return data


# --- figures -----------------------------------------------------------------------------------


def total_cpu(record: dict) -> float:
    if "run" in record:
        return record["run"]["cpu"]
    return record["plan"]["cpu"] + sum(t["cpu"] for t in record["tasks"]) + record["assemble"]["cpu"]


def reference_cpu(data: dict) -> list[float]:
    return [total_cpu(r) for r in data["runs"].values() if "run" in r]


def seams(record: dict) -> list[int]:
    """Segment indexes either side of each chunk boundary."""
    return sorted({i for c in record["chunks"][1:] for i in (c["first_segment"] - 1, c["first_segment"])})


def seam_deltas(record: dict, twin: dict) -> dict:
    """Per rung: the worst seam segment's PSNR minus its one-process twin's, and the overall delta."""
    deltas = {}
    for rung, quality in record["quality"].items():
        reference = twin["quality"][rung]
        worst = min((quality["segments"][i] - reference["segments"][i] for i in seams(record)), default=0.0)
        deltas[rung] = {"seam_worst": round(worst, 2), "overall": round(quality["psnr"] - reference["psnr"], 3)}
    return deltas


def twin(data: dict) -> dict:
    return data["runs"].get("one") or data["runs"]["one-again"]


def summary_line(name: str, record: dict, data: dict) -> str:
    cpu = total_cpu(record)
    references = reference_cpu(data)
    text = f"bench: {name}: CPU {cpu:.1f} s"
    if "run" in record or not references:
        return text + (f", wall {record['run']['wall']:.1f} s" if "run" in record else "")
    deltas = seam_deltas(record, twin(data))
    return (text + f" = {cpu / min(references):.3f}-{cpu / max(references):.3f}x one process; tasks wall "
            f"{record['tasks_wall']:.1f} s; PSNR vs one process: "
            + ", ".join(f"{r} seam {d['seam_worst']:+.2f} overall {d['overall']:+.3f} dB" for r, d in deltas.items()))


def table(data: dict) -> str:
    references = reference_cpu(data)
    mean = sum(references) / len(references)
    rows = ["| run | chunks | tasks | CPU s (plan + tasks + assemble) | × one process | worst seam segment vs twin (dB) "
            "| overall PSNR vs twin (dB) | wall s |", "|---|---|---|---|---|---|---|---|"]
    for name, record in data["runs"].items():
        if "run" in record:
            rows.append(f"| {name} | — | — | {record['run']['cpu']:.1f} | 1 | — | — | {record['run']['wall']:.1f} |")
            continue
        cpu = total_cpu(record)
        deltas = seam_deltas(record, twin(data))
        seam = " / ".join(f"{d['seam_worst']:+.2f}" for d in deltas.values())
        overall = " / ".join(f"{d['overall']:+.3f}" for d in deltas.values())
        wall = record["plan"]["wall"] + record["tasks_wall"] + record["assemble"]["wall"]
        rows.append(f"| {name} | {len(record['chunks'])} | {len(record['tasks'])} | {record['plan']['cpu']:.1f} + "
                    f"{sum(t['cpu'] for t in record['tasks']):.1f} + {record['assemble']['cpu']:.1f} = {cpu:.1f} | "
                    f"{cpu / mean:.3f} ({cpu / max(references):.3f}–{cpu / min(references):.3f}) | {seam} | {overall} "
                    f"| {wall:.1f} |")
    return "\n".join(rows)


# --- simulation --------------------------------------------------------------------------------


def cost_model(data: dict) -> dict:
    """Per title second: the one-process run, the audio task, plan and assemble; per chunk task:
    the one-process rate for every video second it encodes (pre-roll, own frames, post-roll: the
    same pipeline per frame) plus a fixed cost, the mean of what each measured task used above
    that (start-up, probing, seeking, encoder set-up), with its spread."""
    seconds = SOURCE.seconds
    references = reference_cpu(data)
    chunked = [r for r in data["runs"].values() if "run" not in r]
    audio = [r["tasks"][r["audio_task"]]["cpu"] / seconds for r in chunked if r["audio_task"] is not None]
    plan = [r["plan"]["cpu"] / seconds for r in chunked]
    assemble = [r["assemble"]["cpu"] / seconds for r in chunked]
    rate = sum(references) / len(references) / seconds
    # The one-process run encodes the audio too: its video alone.
    video_rate = rate - sum(audio) / len(audio)
    extra = [task["cpu"] - video_rate * chunk["encoded_seconds"]
             for record in chunked for chunk, task in zip(record["chunks"], record["tasks"])]
    return {"per_video_second": video_rate, "per_task": sum(extra) / len(extra), "per_task_range": [min(extra), max(extra)],
            "samples": len(extra), "audio_per_second": sum(audio) / len(audio), "plan_per_second": sum(plan) / len(plan),
            "assemble_per_second": sum(assemble) / len(assemble), "one_process_per_second": rate}


def schedule(tasks: list[float], workers: int) -> float:
    """Makespan of longest-first list scheduling: each task, longest first, to the worker free first."""
    free = [0.0] * workers
    for cost in sorted(tasks, reverse=True):
        soonest = free.index(min(free))
        free[soonest] += cost
    return max(free)


def simulate(model: dict, workers: int, chunk_seconds: float, preroll: float) -> dict:
    """A 10-minute title: plan, then the chunk and audio tasks on `workers` workers, then assemble.
    Time is CPU time: a worker runs one task at a time at the rate measured here."""
    title = SIMULATED_TITLE_SECONDS
    count = math.ceil(title / chunk_seconds)
    postroll = POSTROLL_FRAMES / SIMULATED_FPS
    chunks = [min(chunk_seconds, title - i * chunk_seconds) + (preroll if i else 0) + (postroll if i < count - 1 else 0)
              for i in range(count)]
    tasks = [model["per_task"] + model["per_video_second"] * s for s in chunks] + [model["audio_per_second"] * title]
    plan, assemble = model["plan_per_second"] * title, model["assemble_per_second"] * title
    makespan = plan + schedule(tasks, workers) + assemble
    return {"makespan": makespan, "cpu": plan + sum(tasks) + assemble, "assemble": assemble, "tasks": len(tasks)}


def fitted_chunk(workers: int) -> float:
    """Chunk length for `workers`: the title over the workers, in whole segments, at most 60 s."""
    segments = math.ceil(SIMULATED_TITLE_SECONDS / workers / SEGMENT_SECONDS)
    return min(60, segments * SEGMENT_SECONDS)


def simulation(data: dict, preroll: float) -> tuple[dict, str]:
    model = cost_model(data)
    one = model["one_process_per_second"] * SIMULATED_TITLE_SECONDS
    rows = {"default": {}, "fitted": {}}
    for workers in SIMULATED_WORKERS:
        rows["default"][workers] = simulate(model, workers, 60, preroll)
        rows["fitted"][workers] = {**simulate(model, workers, fitted_chunk(workers), preroll),
                                   "chunk": fitted_chunk(workers),
                                   "one_worker": simulate(model, 1, fitted_chunk(workers), preroll)["makespan"]}
    lines = ["| workers | 60 s chunks: speed-up vs one process | chunks sized to the workers: vs one process "
             "| vs the same chunks on 1 worker | chunk s | tasks | CPU × one process | assemble % of CPU |",
             "|---|---|---|---|---|---|---|---|"]
    for workers in SIMULATED_WORKERS:
        d, f = rows["default"][workers], rows["fitted"][workers]
        lines.append(f"| {workers} | {one / d['makespan']:.2f} | {one / f['makespan']:.2f} | "
                     f"{f['one_worker'] / f['makespan']:.2f} | {f['chunk']:g} | "
                     f"{f['tasks']} | {f['cpu'] / one:.3f} | {100 * f['assemble'] / f['cpu']:.2f} |")
    return {"model": model, "one_process": one, "rows": rows}, "\n".join(lines)


def plot(result: dict, preroll: float, machine: dict) -> None:
    run.ensure_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    one = result["one_process"]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for key, label in (("fitted", "chunks sized to the workers (title / workers, whole segments, ≤ 60 s)"),
                       ("default", "60 s chunks (the default)")):
        axes.plot(SIMULATED_WORKERS, [one / result["rows"][key][w]["makespan"] for w in SIMULATED_WORKERS],
                  marker="o", label=label)
    axes.plot(SIMULATED_WORKERS, SIMULATED_WORKERS, linestyle=":", color="grey", label="ideal")
    axes.axhline(12, color="red", linewidth=0.8, linestyle="--", label="target: 12× at 16 workers")
    axes.set_xscale("log", base=2)
    axes.set_yscale("log", base=2)
    axes.set_xticks(SIMULATED_WORKERS, [str(w) for w in SIMULATED_WORKERS])
    axes.set_yticks([1, 2, 4, 8, 12, 16, 32, 64], ["1", "2", "4", "8", "12", "16", "32", "64"])
    axes.set_xlabel("workers (concurrent encode-chunk tasks)")
    axes.set_ylabel("speed-up over one process (simulated)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(f"10-minute title, pre-roll {preroll:g} s, costs measured on {machine['cores']} cores "
                   f"at {machine['commit']}", fontsize=9)
    figure.tight_layout()
    name = "scale-out-speedup.png"
    figure.savefig(PLOTS / name, dpi=100)
    plt.close(figure)
    print(f"bench: plot {PLOTS.relative_to(ROOT) / name}")


def report(data: dict, preroll: float) -> None:
    print(table(data))
    if data.get("setup") in ("seams", "long"):
        return
    result, lines = simulation(data, preroll)
    model = result["model"]
    low, high = model["per_task_range"]
    print(f"\nmodel: {model['per_task']:.2f} s per task ({low:.2f} to {high:.2f} over {model['samples']} chunk tasks) + "
          f"{model['per_video_second']:.3f} s per encoded video second; audio {model['audio_per_second']:.4f}, plan {model['plan_per_second']:.4f}, "
          f"assemble {model['assemble_per_second']:.4f}, one process {model['one_process_per_second']:.3f} s per title second\n")
    print(lines)
    print("\n10-minute title, CPU × one process (model)\n\n| chunk | pre-roll 0 s | 1 s | 2 s | 4 s |\n|---|---|---|---|---|")
    for chunk in (30, 60, 90, 120):
        ratios = " | ".join(f"{simulate(model, 1, chunk, p)['cpu'] / result['one_process']:.3f}" for p in (0, 1, 2, 4))
        print(f"| {chunk} s | {ratios} |")
    plot(result, preroll, data["machine"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stream-pack", metavar="BINARY", help="use this binary instead of cargo build --release")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated run names")
    parser.add_argument("--list", action="store_true", help="print the run names")
    parser.add_argument("--report", metavar="JSON", help="tables, simulation and plot from a saved run")
    parser.add_argument("--preroll", type=float, default=4, help="the pre-roll simulated (s)")
    parser.add_argument("--seams", action="store_true", help="the small setup for seam PSNR alone")
    parser.add_argument("--long", action="store_true", help="an 8-minute title at the default chunk length")
    args = parser.parse_args()
    if args.seams:
        use_seams_setup()
    if args.long:
        use_long_setup()
    if args.list:
        print("\n".join(c.name for c in CONFIGS))
        return
    if args.report:
        data = json.loads(Path(args.report).read_text())
    else:
        configs = [c for c in CONFIGS if not args.only or c.name in args.only.split(",")]
        data = measure_all(run.stream_pack_binary(args.stream_pack), configs)
    report(data, args.preroll)


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != run.VENV.resolve():
        if not run.VENV_PYTHON.exists():
            run.sh([sys.executable, "-m", "venv", run.VENV])
        os.execv(run.VENV_PYTHON, [str(run.VENV_PYTHON), __file__, *sys.argv[1:]])
    main()
