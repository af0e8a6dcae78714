//! Issue 17, scale out: `plan`, `encode-chunk` (tasks in any order, one run twice, indexes
//! from the engines' variables) and `assemble` make the package a one-process run of the same
//! options makes: the same segments (count, names, first frames, keyframes), frames, manifests
//! (but for measured sizes and bit rates), continuous timelines, and the audio encoded whole. A
//! missing, corrupt or foreign chunk is refused by name. Judged with ffprobe and the test-side
//! playlist, MPD and box readers.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::Value;

use crate::util::cli::{FAST, assert_failure, assert_success, run, run_with_env};
use crate::util::ffprobe::{concat, probe};
use crate::util::{bmff, m3u8, media, mpd};

/// 8 s of 320x180 testsrc2 at 25 fps with a tone, its keyframes every 37 frames: off the
/// segment grid, so chunks decode from a keyframe before their pre-roll.
pub(crate) fn source() -> &'static Path {
    static SOURCE: OnceLock<PathBuf> = OnceLock::new();
    SOURCE.get_or_init(|| media("small"))
}

const FRAMES: usize = 200;
pub(crate) const RUNGS: [&str; 2] = ["180p", "144p"];

/// The options both runs are given, after `COMMAND SOURCE`.
pub(crate) fn ladder_options(extra: &[&str]) -> Vec<String> {
    let fixed = ["--reps", "180,144", "--segment-duration", "1", "--progress", "none"];
    fixed
        .iter()
        .chain(FAST.iter())
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

fn stream_pack(args: &[String]) -> Output {
    run(args)
}

/// `plan COMMAND INPUT --plan PLAN -o OUT`.
fn plan_args(command: &str, input: &Path, plan_dir: &Path, out: &Path) -> Vec<String> {
    let paths = [input, Path::new("--plan"), plan_dir, Path::new("-o"), out];
    ["plan", command]
        .into_iter()
        .map(String::from)
        .chain(paths.iter().map(|p| p.display().to_string()))
        .collect()
}

/// A copy of the source's streams made by `ffmpeg -i SOURCE ARGS OUT`.
fn copy_of_source(args: &[&str], out: &Path) {
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(source())
        .args(args)
        .arg(out)
        .status()
        .expect("run ffmpeg");
    assert!(made.success(), "ffmpeg made {}", out.display());
}

/// `plan COMMAND SOURCE --plan PLAN -o OUT OPTIONS --chunk-duration 2s`; the plan read back.
pub(crate) fn plan(command: &str, plan_dir: &Path, out: &Path, options: &[String]) -> Value {
    let mut args = plan_args(command, source(), plan_dir, out);
    args.extend(options.iter().cloned());
    args.extend(["--chunk-duration".into(), "2s".into()]);
    assert_success(&stream_pack(&args));
    let text = std::fs::read_to_string(plan_dir.join("plan.json")).expect("plan.json written");
    serde_json::from_str(&text).expect("plan.json is JSON")
}

fn encode_chunk(plan_dir: &Path, index: u64) -> Output {
    run([
        "encode-chunk".to_string(),
        plan_dir.display().to_string(),
        "--index".into(),
        index.to_string(),
    ])
}

/// Every task run, shuffled: task 2 twice (a retry), task 1 by Slurm's variable, task 3 by
/// Kubernetes'.
fn run_every_task(plan_dir: &Path) {
    for index in [4, 0, 2] {
        assert_success(&encode_chunk(plan_dir, index));
    }
    let plan_arg = [plan_dir.display().to_string()];
    let by_env = |variable: &str, index: &str| {
        let args = ["encode-chunk".to_string()].into_iter().chain(plan_arg.iter().cloned());
        run_with_env(args, &[(variable, index.to_string())])
    };
    assert_success(&by_env("SLURM_ARRAY_TASK_ID", "1"));
    assert_success(&by_env("JOB_COMPLETION_INDEX", "3"));
    assert_success(&encode_chunk(plan_dir, 2));
}

pub(crate) fn assemble(plan_dir: &Path) -> Output {
    run(["assemble".to_string(), plan_dir.display().to_string()])
}

/// A chunked run and a one-process run of `command` with the same options, in one folder.
pub(crate) struct Runs {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) chunked: PathBuf,
    pub(crate) single: PathBuf,
    pub(crate) plan: Value,
}

fn both_runs(command: &str, extra: &[&str]) -> Runs {
    let dir = tempfile::tempdir().expect("temporary folder");
    let (plan_dir, chunked, single) = (
        dir.path().join("plan"),
        dir.path().join("chunked"),
        dir.path().join("single"),
    );
    let options = ladder_options(extra);
    let plan = plan(command, &plan_dir, &chunked, &options);
    run_every_task(&plan_dir);
    assert_success(&assemble(&plan_dir));
    one_process_run(command, &single, options);
    Runs {
        _dir: dir,
        chunked,
        single,
        plan,
    }
}

/// `COMMAND SOURCE -o OUT OPTIONS`: the run a chunked one must equal.
pub(crate) fn one_process_run(command: &str, out: &Path, options: Vec<String>) {
    let mut args = vec![command.to_string(), source().display().to_string(), "-o".into()];
    args.push(out.display().to_string());
    args.extend(options);
    assert_success(&stream_pack(&args));
}

/// The segment files of a rendition folder, in order.
pub(crate) fn segments(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("rendition folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// Per segment, ffprobe's first video packet: its PTS and whether it is a keyframe.
fn first_packets(files: &[PathBuf], init: Option<&Path>) -> Vec<(String, bool)> {
    files
        .iter()
        .map(|file| {
            let whole = match init {
                Some(init) => concat(&[init.to_owned(), file.clone()]),
                None => file.clone(),
            };
            let json = probe(
                &["-select_streams", "v:0", "-show_entries", "packet=pts_time,flags"],
                &whole,
            );
            let first = &json["packets"][0];
            let pts = first["pts_time"].as_str().expect("a first packet").to_owned();
            (pts, first["flags"].as_str().unwrap_or("").starts_with('K'))
        })
        .collect()
}

/// Frames ffprobe decodes, and their presentation times in seconds, sorted.
fn decoded_frames(file: &Path) -> Vec<f64> {
    let json = probe(&["-select_streams", "v:0", "-show_entries", "frame=pts_time"], file);
    let mut times: Vec<f64> = json["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["pts_time"].as_str().expect("pts_time").parse().expect("a number"))
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

/// `text` without the values of the attributes that carry measured bit rates.
pub(crate) fn without_bitrates(text: &str, names: &[&str]) -> String {
    let mut out = text.to_owned();
    for name in names {
        let mut kept = String::new();
        let mut rest = out.as_str();
        while let Some(at) = rest.find(name) {
            kept.push_str(&rest[..at + name.len()]);
            let value = &rest[at + name.len()..];
            let end = value
                .find(|c: char| !(c.is_ascii_digit() || c == '"'))
                .unwrap_or(value.len());
            rest = &value[end..];
        }
        kept.push_str(rest);
        out = kept;
    }
    out
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What both packages must share in every video rendition, by ffprobe: segment names, each
/// segment's first packet (PTS, keyframe), and every source frame decoded once.
pub(crate) fn assert_same_video(runs: &Runs, extension: &str, init: Option<&str>) {
    for rung in RUNGS {
        let [chunked, single] = [&runs.chunked, &runs.single].map(|p| segments(&p.join(rung), extension));
        let names = |files: &[PathBuf]| {
            files
                .iter()
                .map(|f| f.file_name().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&chunked), names(&single), "{rung}: the same segments");
        assert_eq!(chunked.len(), 8, "{rung}: 8 segments of 1 s");
        let init_of = |root: &Path| init.map(|name| root.join(rung).join(name));
        let firsts = first_packets(&chunked, init_of(&runs.chunked).as_deref());
        assert!(
            firsts.iter().all(|(_, key)| *key),
            "{rung}: every segment starts with a keyframe: {firsts:?}"
        );
        assert_eq!(
            firsts,
            first_packets(&single, init_of(&runs.single).as_deref()),
            "{rung}: segment starts"
        );
        let whole = concat(&[init_of(&runs.chunked).into_iter().collect(), chunked].concat());
        let frames = decoded_frames(&whole);
        assert_eq!(frames.len(), FRAMES, "{rung}: every source frame, once");
        let steps_even = frames.windows(2).all(|w| ((w[1] - w[0]) - 0.04).abs() < 1e-6);
        assert!(steps_even, "{rung}: presentation times continue across the chunk seams");
    }
}

/// The audio rendition of both runs: the same bytes (one encode of the whole title).
pub(crate) fn assert_same_audio(runs: &Runs, extension: &str) {
    let [chunked, single] = [&runs.chunked, &runs.single].map(|p| segments(&p.join("audio"), extension));
    assert_eq!(chunked.len(), single.len(), "audio segments");
    for (a, b) in chunked.iter().zip(&single) {
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(b).unwrap(),
            "{}: audio encoded whole",
            a.display()
        );
    }
}

#[test]
fn a_chunked_dash_package_is_the_one_process_package() {
    let runs = both_runs("dash", &[]);
    assert_eq!(runs.plan["version"], 1);
    assert_eq!(runs.plan["chunks"].as_array().map(Vec::len), Some(4), "4 chunks of 2 s");
    assert_eq!(runs.plan["tasks"], 5, "4 chunks and the audio");
    assert_same_dash_package(&runs);
}

/// The DASH packages of `runs` are one: MPDs equal but for measured bandwidths, init segments
/// equal, fragments numbered and timed on across the seams, the same video and audio.
pub(crate) fn assert_same_dash_package(runs: &Runs) {
    let manifests = [&runs.chunked, &runs.single].map(|p| read(&p.join("manifest.mpd")));
    assert_eq!(
        without_bitrates(&manifests[0], &["bandwidth=\""]),
        without_bitrates(&manifests[1], &["bandwidth=\""]),
        "the MPDs differ only in measured bandwidths"
    );
    let parsed = mpd::parse_mpd(&manifests[0]).expect("the chunked MPD reads");
    let video = &parsed.adaptation_sets[0].representations;
    assert_eq!(video.len(), 2, "two rungs");
    for rung in RUNGS {
        let dir = runs.chunked.join(rung);
        let init = dir.join("init.mp4");
        // mfhd 1, 2, 3… and each tfdt the previous one plus its duration, across the seams.
        bmff::read_track(&init, &segments(&dir, "m4s"));
        let single_init = std::fs::read(runs.single.join(rung).join("init.mp4")).unwrap();
        assert_eq!(std::fs::read(&init).unwrap(), single_init, "{rung}: the init segment");
    }
    assert_same_video(runs, "m4s", Some("init.mp4"));
    assert_same_audio(runs, "m4s");
}

#[test]
fn a_chunked_hls_ts_package_is_the_one_process_package() {
    let runs = both_runs("hls", &[]);
    let bitrates = ["BANDWIDTH=", "AVERAGE-BANDWIDTH="];
    let masters = [&runs.chunked, &runs.single].map(|p| read(&p.join("master.m3u8")));
    assert_eq!(
        without_bitrates(&masters[0], &bitrates),
        without_bitrates(&masters[1], &bitrates)
    );
    m3u8::parse_master(&masters[0]).expect("the chunked master playlist reads");
    for rendition in RUNGS.iter().chain(&["audio"]) {
        let [chunked, single] = [&runs.chunked, &runs.single].map(|p| read(&p.join(rendition).join("index.m3u8")));
        assert_eq!(chunked, single, "{rendition}: the media playlists");
        let playlist = m3u8::parse_media(&chunked).expect("the media playlist reads");
        assert_eq!(playlist.segments.len(), 8, "{rendition}: 8 segments");
    }
    assert_same_video(&runs, "ts", None);
    assert_same_audio(&runs, "ts");
}

#[test]
fn a_chunked_hls_fmp4_package_is_the_one_process_package() {
    let runs = both_runs("hls", &["--format", "fmp4"]);
    for rendition in RUNGS.iter().chain(&["audio"]) {
        let [chunked, single] = [&runs.chunked, &runs.single].map(|p| read(&p.join(rendition).join("index.m3u8")));
        assert_eq!(chunked, single, "{rendition}: the media playlists");
    }
    for rung in RUNGS {
        let dir = runs.chunked.join(rung);
        bmff::read_track(&dir.join("init.mp4"), &segments(&dir, "m4s"));
    }
    assert_same_video(&runs, "m4s", Some("init.mp4"));
}

/// A small plan (one rung, 8 segments of 1 s), for the refusals.
fn small_plan(dir: &Path, name: &str, chunk_duration: &str) -> PathBuf {
    let plan_dir = dir.join(name);
    let mut args = plan_args("hls", source(), &plan_dir, &dir.join(format!("{name}-out")));
    args.extend(["--reps", "144", "--segment-duration", "1", "--progress", "none"].map(String::from));
    args.extend(FAST.map(String::from));
    args.extend(["--chunk-duration".into(), chunk_duration.into()]);
    assert_success(&stream_pack(&args));
    plan_dir
}

#[test]
fn assemble_refuses_a_missing_corrupt_or_foreign_chunk_by_name() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let plan_dir = small_plan(dir.path(), "plan", "2s");
    for index in 0..5 {
        assert_success(&encode_chunk(&plan_dir, index));
    }
    let chunk2 = plan_dir.join("chunks/2");
    let kept = dir.path().join("chunk2-kept");
    std::fs::rename(&chunk2, &kept).unwrap();
    let line = assert_failure(&assemble(&plan_dir), 3);
    assert!(line.contains("chunk 2") && line.contains("missing"), "{line}");
    std::fs::rename(&kept, &chunk2).unwrap();

    let segment = plan_dir.join("chunks/1/144p/segment00002.ts");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[400] ^= 1;
    std::fs::write(&segment, bytes).unwrap();
    let line = assert_failure(&assemble(&plan_dir), 3);
    assert!(
        line.contains("chunk 1") && line.contains("segment00002.ts") && line.contains("checksum"),
        "{line}"
    );
    std::fs::remove_file(&segment).unwrap();
    let line = assert_failure(&assemble(&plan_dir), 3);
    assert!(
        line.contains("chunk 1") && line.contains("segment00002.ts") && line.contains("missing"),
        "{line}"
    );
    assert_success(&encode_chunk(&plan_dir, 1));

    let other = small_plan(dir.path(), "other", "3s");
    assert_success(&encode_chunk(&other, 0));
    std::fs::remove_dir_all(plan_dir.join("chunks/0")).unwrap();
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(other.join("chunks/0"))
        .arg(plan_dir.join("chunks/0"))
        .status()
        .unwrap();
    assert!(copied.success());
    let line = assert_failure(&assemble(&plan_dir), 3);
    assert!(line.contains("chunk 0") && line.contains("another plan"), "{line}");
    assert!(
        !dir.path().join("plan-out").exists(),
        "nothing published by a refused assemble"
    );

    // What a task killed mid-encode leaves: a hidden folder, never read, removed by assemble.
    let killed = plan_dir.join("chunks/.3.tmp-killed/144p");
    std::fs::create_dir_all(&killed).unwrap();
    std::fs::write(killed.join("segment00006.ts"), b"half").unwrap();
    assert_success(&encode_chunk(&plan_dir, 0));
    assert_success(&assemble(&plan_dir));
    assert_eq!(segments(&dir.path().join("plan-out/144p"), "ts").len(), 8);
    assert!(
        !plan_dir.join("chunks/.3.tmp-killed").exists(),
        "a killed task's leftovers removed"
    );
    assert_failure(&assemble(&plan_dir), 4);
    let forced = run(["assemble".to_string(), plan_dir.display().to_string(), "--force".into()]);
    assert_success(&forced);
}

#[test]
fn a_task_index_outside_the_plan_or_not_given_is_refused() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let plan_dir = small_plan(dir.path(), "plan", "4s");
    let line = assert_failure(&encode_chunk(&plan_dir, 3), 2);
    assert!(line.contains("--index 3") && line.contains("3 tasks"), "{line}");
    let by_env = run_with_env(
        ["encode-chunk".to_string(), plan_dir.display().to_string()],
        &[("AWS_BATCH_JOB_ARRAY_INDEX", "7".into())],
    );
    let line = assert_failure(&by_env, 2);
    assert!(line.contains("--index 7"), "{line}");
    let no_index = run(["encode-chunk".to_string(), plan_dir.display().to_string()]);
    let line = assert_failure(&no_index, 2);
    assert!(line.contains("SLURM_ARRAY_TASK_ID"), "{line}");
}

#[test]
fn what_cannot_be_chunked_is_refused_in_one_line() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let plan_dir = dir.path().join("plan");
    let cases: [(&[&str], &str); 4] = [
        (&["--copy"], "--copy"),
        (&["--encrypt"], "--encrypt"),
        (&["--passthrough-top"], "--passthrough-top"),
        (&["--ladder-mode", "per-title"], "--ladder-mode"),
    ];
    for (extra, named) in cases {
        let mut args = plan_args("hls", source(), &plan_dir, &dir.path().join("out"));
        args.extend(extra.iter().map(|s| s.to_string()));
        let line = assert_failure(&stream_pack(&args), 2);
        assert!(line.contains(named) && line.contains("chunks"), "{line}");
        assert!(!plan_dir.join("plan.json").exists(), "no plan written");
    }
    let url = Path::new("http://127.0.0.1:9/title.mp4");
    let line = assert_failure(&run(plan_args("hls", url, &plan_dir, &dir.path().join("out"))), 2);
    assert!(line.contains("shared storage"), "{line}");
    let raw = dir.path().join("raw.h264");
    copy_of_source(&["-an", "-c", "copy", "-bsf:v", "h264_mp4toannexb"], &raw);
    let mut args = plan_args("hls", &raw, &plan_dir, &dir.path().join("out"));
    args.extend(["--reps".into(), "144".into()]);
    let line = assert_failure(&stream_pack(&args), 3);
    assert!(line.contains("no timestamps"), "{line}");
    assert!(!plan_dir.join("plan.json").exists(), "no plan written");
}

#[test]
fn an_mpeg_ts_source_without_an_index_is_chunked_frame_exact() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let ts = dir.path().join("source.ts");
    copy_of_source(&["-c", "copy"], &ts);
    let (plan_dir, chunked, single) = (
        dir.path().join("plan"),
        dir.path().join("chunked"),
        dir.path().join("single"),
    );
    let options = ["--reps", "144", "--segment-duration", "1", "--progress", "none"].map(String::from);
    let mut args = plan_args("hls", &ts, &plan_dir, &chunked);
    args.extend(options.iter().cloned().chain(FAST.map(String::from)));
    args.extend(["--chunk-duration".into(), "2s".into()]);
    assert_success(&stream_pack(&args));
    for index in 0..5 {
        assert_success(&encode_chunk(&plan_dir, index));
    }
    assert_success(&assemble(&plan_dir));
    let mut args = vec![
        "hls".to_string(),
        ts.display().to_string(),
        "-o".into(),
        single.display().to_string(),
    ];
    args.extend(options.into_iter().chain(FAST.map(String::from)));
    assert_success(&stream_pack(&args));
    let [a, b] = [&chunked, &single].map(|p| read(&p.join("144p/index.m3u8")));
    assert_eq!(a, b, "the media playlists");
    let files = segments(&chunked.join("144p"), "ts");
    let firsts = first_packets(&files, None);
    assert!(
        firsts.iter().all(|(_, key)| *key),
        "every segment starts with a keyframe: {firsts:?}"
    );
    assert_eq!(firsts, first_packets(&segments(&single.join("144p"), "ts"), None));
    assert_eq!(
        decoded_frames(&concat(&files)).len(),
        FRAMES,
        "every source frame, once"
    );
}
