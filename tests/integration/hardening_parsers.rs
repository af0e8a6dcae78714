//! Issue 20, the parsers: fuzz findings kept under `fixtures/fuzz/` as regression inputs, CMAF
//! media segments and memory that stays flat however many boxes a file has, and the small
//! hand-made inputs of `fixtures/`.

use crate::util::{cli, ffprobe, media};
use std::path::{Path, PathBuf};

/// A file or folder under the repository's `fixtures/`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The files kept under `fixtures/fuzz/<target>/`.
fn fuzz_findings(target: &str) -> Vec<PathBuf> {
    let dir = fixture("fuzz").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// The command that reads what a fuzz target reads: `unframe` for the websocket framing,
/// `inspect` for FLV, AMF0 (inside FLV script tags) and ISO-BMFF.
fn run_finding(target: &str, file: &Path, dir: &Path) -> std::process::Output {
    if target == "framing" {
        let out = dir.join("out.mp4");
        cli::run(["unframe".as_ref(), file.as_os_str(), "-o".as_ref(), out.as_os_str()])
    } else {
        cli::run(["inspect".as_ref(), file.as_os_str()])
    }
}

#[test]
fn item07_every_fuzz_finding_is_an_input_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for target in ["amf0", "bmff_boxes", "flv_tags", "framing", "inspect"] {
        for file in fuzz_findings(target) {
            let output = run_finding(target, &file, dir.path());
            // Bad input is exit 3 with one `error:` line, never a panic (101).
            let error = cli::assert_failure(&output, 3);
            let name = file.file_name().unwrap().to_string_lossy();
            assert!(error.contains(&*name), "{target}/{name}: {error}");
            ran += 1;
        }
    }
    assert!(ran > 0, "fixtures/fuzz holds the findings");
}

#[test]
fn item07_decode_time_overflow_is_a_problem_named_not_a_wrapped_time() {
    let file = fixture("fuzz/inspect/inspect-overflow.mp4");
    let output = cli::run(["inspect".as_ref(), file.as_os_str(), "--problems".as_ref()]);
    cli::assert_failure(&output, 3);
    let problems = String::from_utf8_lossy(&output.stdout);
    assert!(
        problems
            .lines()
            .any(|p| p.contains("passes 2^64") || p.contains("past 64 bits")),
        "the overflow is named: {problems}"
    );
}

/// `stream-pack inspect ARGS`.
fn inspect(args: &[&std::ffi::OsStr]) -> std::process::Output {
    cli::run([&["inspect".as_ref()], args].concat())
}

/// The problems `inspect --problems` printed.
fn problems(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The ticks per second of a DASH rendition's media, by ffprobe from its init segment.
fn timescale(init: &Path) -> u64 {
    let json = ffprobe::probe(&["-show_streams"], init);
    let time_base = json["streams"][0]["time_base"].as_str().expect("time_base");
    time_base.strip_prefix("1/").expect("1/N").parse().unwrap()
}

#[test]
fn item12_a_dash_media_segment_inspects_alone_and_with_its_init() {
    let (_dir, out) = cli::package_in_temp("dash", &media("tiny"), &["--reps", "90", "--segment-duration", "1"]);
    let rendition = out.join("90p");
    let (init, first, second) = (
        rendition.join("init.mp4"),
        rendition.join("segment00000.m4s"),
        rendition.join("segment00001.m4s"),
    );
    let output = inspect(&[second.as_os_str(), "--json".as_ref()]);
    cli::assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["media_segment"], true);
    assert_eq!(report["entries"][0]["name"], "moof", "{report}");
    cli::assert_success(&inspect(&[second.as_os_str(), "--init".as_ref(), init.as_os_str()]));

    // Two segments joined, the second's tfdt moved on by one second of the init's timescale:
    // with the init the jump is in seconds, without it in ticks.
    let scale = timescale(&init);
    let mut joined = std::fs::read(&first).unwrap();
    let mut later = std::fs::read(&second).unwrap();
    let tfdt = later.windows(4).position(|w| w == b"tfdt").unwrap() + 4;
    let (version, field) = (later[tfdt], tfdt + 4);
    let width = if version == 1 { 8 } else { 4 };
    let mut time = [0u8; 8];
    time[8 - width..].copy_from_slice(&later[field..field + width]);
    let moved = (u64::from_be_bytes(time) + scale).to_be_bytes();
    later[field..field + width].copy_from_slice(&moved[8 - width..]);
    joined.extend(later);
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("joined.m4s");
    std::fs::write(&edited, joined).unwrap();
    let with_init = inspect(&[
        edited.as_os_str(),
        "--problems".as_ref(),
        "--init".as_ref(),
        init.as_os_str(),
    ]);
    cli::assert_failure(&with_init, 3);
    assert!(
        problems(&with_init).contains("a jump of 1.000 s"),
        "{}",
        problems(&with_init)
    );
    let alone = inspect(&[edited.as_os_str(), "--problems".as_ref()]);
    cli::assert_failure(&alone, 3);
    assert!(
        problems(&alone).contains(&format!("a jump of {scale} ticks")),
        "{}",
        problems(&alone)
    );
    assert!(!problems(&alone).contains("no moov"), "{}", problems(&alone));

    // An init segment for an FLV is a usage error; an init without moov is a bad input.
    let flv = dir.path().join("header-only.flv");
    std::fs::write(&flv, b"FLV\x01\x05\0\0\0\x09\0\0\0\0").unwrap();
    let error = cli::assert_failure(&inspect(&[flv.as_os_str(), "--init".as_ref(), init.as_os_str()]), 2);
    assert!(error.contains("FLV"), "{error}");
    let error = cli::assert_failure(&inspect(&[second.as_os_str(), "--init".as_ref(), first.as_os_str()]), 3);
    assert!(
        error.contains("no moov") && error.contains("segment00000.m4s"),
        "{error}"
    );
}

/// Runs `inspect FILE --json` under `/usr/bin/time -v`, stdout to a file: the exit status,
/// the JSON's last line, its number of lines, and the peak resident memory in MiB.
fn inspect_measured(file: &Path) -> (Option<i32>, String, usize, u64) {
    let json = file.with_extension("json");
    let run = std::process::Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_stream-pack"))
        .args(["inspect".as_ref(), file.as_os_str(), "--json".as_ref()])
        .stdout(std::fs::File::create(&json).unwrap())
        .output()
        .expect("run /usr/bin/time");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let peak_kib: u64 = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .unwrap_or_else(|| panic!("no peak memory in: {stderr}"))
        .parse()
        .unwrap();
    let text = std::fs::read_to_string(&json).unwrap();
    let last = text.lines().last().unwrap_or_default().to_owned();
    (run.status.code(), last, text.lines().count(), peak_kib / 1024)
}

#[test]
fn item12_a_million_empty_boxes_or_tags_inspect_in_bounded_memory() {
    const COUNT: usize = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let boxes = dir.path().join("boxes.mp4");
    std::fs::write(&boxes, [0, 0, 0, 8, b'f', b'r', b'e', b'e'].repeat(COUNT)).unwrap();
    // An FLV header, PreviousTagSize0, then empty script tags, each followed by its size (11).
    let flv = dir.path().join("tags.flv");
    let tag = [18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11];
    let header = [b'F', b'L', b'V', 1, 0, 0, 0, 0, 9, 0, 0, 0, 0];
    std::fs::write(&flv, [&header[..], &tag.repeat(COUNT)].concat()).unwrap();
    for (file, status) in [(&boxes, 3), (&flv, 0)] {
        let (code, last, lines, peak_mib) = inspect_measured(file);
        // The binary with FFmpeg's libraries loaded takes about 60 MiB doing nothing.
        assert!(peak_mib < 100, "{}: {peak_mib} MiB at peak", file.display());
        assert_eq!(code, Some(status), "{}: {last}", file.display());
        // The opening line, an entry per line, the closing line with the counts and problems.
        assert_eq!(lines, COUNT + 2, "{}", file.display());
        assert!(last.contains(&format!("\"entry_count\":{COUNT}")), "{last}");
    }
}

#[test]
fn item17_the_captured_websocket_sample_unframes_to_an_mp4_of_its_20_frames() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let capture = fixture("capture/fragments.cap");
    cli::assert_success(&cli::run([
        "unframe".as_ref(),
        capture.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]));
    let frames = ffprobe::video_frames(&out);
    assert_eq!(frames.count, 20, "the 20 frames of the four fragments captured");
    assert!((frames.span - 1.9).abs() < 0.01, "2 s at 10 fps: {} s", frames.span);
    ffprobe::assert_decodes_cleanly(&out);
}

/// Each stream's decode times in a file, in file order, in milliseconds.
fn decode_times_ms(file: &Path) -> Vec<Vec<i64>> {
    let json = ffprobe::probe(&["-show_entries", "packet=stream_index,dts_time"], file);
    let mut streams: Vec<Vec<i64>> = vec![Vec::new(); 2];
    for packet in json["packets"].as_array().expect("packets") {
        let index = packet["stream_index"].as_u64().unwrap() as usize;
        let seconds: f64 = packet["dts_time"].as_str().expect("dts_time").parse().unwrap();
        streams[index].push((seconds * 1000.0).round() as i64);
    }
    streams
}

#[test]
fn item17_flv_chunks_with_a_timestamp_reset_join_with_monotonic_timestamps() {
    let chunks = [fixture("flv/reset-chunk0.flv"), fixture("flv/reset-chunk1.flv")];
    let second = decode_times_ms(&chunks[1]);
    assert!(
        second.iter().all(|times| times[0] < 100),
        "the second chunk restarts at 0: {second:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("joined.flv");
    cli::assert_success(&cli::run([
        "concat-flv".as_ref(),
        chunks[0].as_os_str(),
        chunks[1].as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]));
    let joined = decode_times_ms(&out);
    let parts: Vec<Vec<Vec<i64>>> = chunks.iter().map(|c| decode_times_ms(c)).collect();
    for (stream, times) in joined.iter().enumerate() {
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "stream {stream} decode times only grow: {times:?}"
        );
        let count: usize = parts.iter().map(|p| p[stream].len()).sum();
        assert_eq!(times.len(), count, "stream {stream}: every packet of both chunks");
    }
    // The video of the second chunk follows the first's: 20 frames at 10 fps end near 2 s.
    let video_end = *joined[0].last().unwrap();
    assert!((1900..=2100).contains(&video_end), "the last frame at {video_end} ms");
    ffprobe::assert_decodes_cleanly(&out);
}

#[test]
fn item17_every_fixture_is_small_and_listed_in_the_readme() {
    let readme = std::fs::read_to_string(fixture("README.md")).unwrap();
    let mut pending = vec![fixture("")];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let name = path.strip_prefix(fixture("")).unwrap().to_string_lossy().into_owned();
            if name == "README.md" {
                continue;
            }
            let size = std::fs::metadata(&path).unwrap().len();
            assert!(size <= 8 * 1024, "{name}: {size} bytes, more than a few KiB");
            assert!(
                readme.contains(&format!("`{name}`")),
                "fixtures/README.md does not describe {name}"
            );
            files += 1;
        }
    }
    assert!(
        files >= 4,
        "the overflow input, the capture and the FLV chunks: {files} files"
    );
}
