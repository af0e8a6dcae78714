//! `record` and `record --schedule` against a real RTMP server (nginx-rtmp on loopback) fed by
//! an ffmpeg publisher. The recordings are judged by ffprobe and ffmpeg's decoder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::cli::{assert_failure, assert_says, assert_success, run};
use crate::util::ffprobe::{assert_decodes_cleanly, number, probe, video_frames};
use crate::util::rtmp::{Publisher, RtmpServer};

const BIN: &str = env!("CARGO_BIN_EXE_stream-pack");

fn args<'a>(url: &'a str, output: &'a Path, extra: &[&'a str]) -> Vec<std::ffi::OsString> {
    let mut all: Vec<std::ffi::OsString> = vec!["record".into(), url.into(), "-o".into(), output.into()];
    all.extend(extra.iter().map(Into::into));
    all
}

/// The decode timestamps of each stream of a file, as ffprobe reads its packets.
fn dts_by_stream(file: &Path) -> Vec<Vec<i64>> {
    let json = probe(&["-show_entries", "packet=stream_index,dts"], file);
    let mut streams: Vec<Vec<i64>> = Vec::new();
    for packet in json["packets"].as_array().expect("packets") {
        let index = packet["stream_index"].as_u64().expect("stream_index") as usize;
        if streams.len() <= index {
            streams.resize(index + 1, Vec::new());
        }
        streams[index].push(packet["dts"].as_i64().expect("every packet has a dts"));
    }
    streams
}

fn duration(file: &Path) -> f64 {
    number(&probe(&["-show_entries", "format=duration"], file)["format"]["duration"])
}

/// Asserts the file plays: ffmpeg decodes it without an error, every stream's timestamps
/// increase, and it has a video and an audio stream.
fn assert_plays(file: &Path) {
    assert_decodes_cleanly(file);
    let streams = dts_by_stream(file);
    assert_eq!(streams.len(), 2, "{}: video and audio", file.display());
    for (index, dts) in streams.iter().enumerate() {
        assert!(
            dts.windows(2).all(|w| w[0] < w[1]),
            "{}: the timestamps of stream {index} go backwards",
            file.display()
        );
    }
}

#[test]
fn a_recording_continues_across_a_publisher_that_drops_and_comes_back() {
    let server = RtmpServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Two recorders of the same gap: one gives up on the silent connection (stall timeout 2 s)
    // and reconnects; the other stays on it (5 s) and sees the publisher's clock restart.
    let cases = [("reconnects", "2s"), ("stays", "5s")];
    let mut publishers: Vec<Publisher> = cases
        .iter()
        .map(|(key, _)| Publisher::start(&server.url(key)))
        .collect();
    publishers.iter().for_each(Publisher::wait_live);
    let recorders: Vec<_> = cases
        .iter()
        .map(|(key, timeout)| {
            let output = dir.path().join(format!("{key}.mp4"));
            let child = Command::new(BIN)
                .args(args(
                    &server.url(key),
                    &output,
                    &["--for", "14s", "--open-timeout", timeout, "--stall-timeout", timeout],
                ))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (output, child)
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    publishers.iter_mut().for_each(Publisher::stop);
    std::thread::sleep(Duration::from_secs(3));
    publishers.iter_mut().for_each(Publisher::restart);
    for ((output, child), (key, _)) in recorders.into_iter().zip(cases) {
        let result = child.wait_with_output().unwrap();
        assert_success(&result);
        let said = String::from_utf8_lossy(&result.stdout).into_owned();
        let count = |what: &str| -> u32 {
            let at = said.find(what).unwrap_or_else(|| panic!("no `{what}` in {said}"));
            said[..at].split_whitespace().last().unwrap().parse().unwrap()
        };
        // A recorder that gave up on the silent connection must have reconnected; one that
        // stayed either saw the clock restart or lost the connection to nginx too.
        let bridged = count(" reconnects") + if key == "stays" { count(" clock jumps") } else { 0 };
        assert!(bridged >= 1, "{key}: {said}");
        // Same streams on both sides of the gap: one file, not a new one per reconnect.
        assert!(said.contains("in 1 file(s)"), "{key}: {said}");
        assert_plays(&output);
        // The recorder joined the live stream at most 3 s before it stopped (75 frames at most):
        // 80 or more is both sides, whatever a loaded machine costs the reconnection.
        let frames = video_frames(&output);
        assert!(frames.count >= 80, "{key}: {} frames; it said: {said}", frames.count);
        // The gap is left out: the media is the two sides, one after the other.
        assert!(
            (3.6..11.0).contains(&frames.span),
            "{key}: the frames span {:.2} s",
            frames.span
        );
    }
}

#[test]
fn overlapping_scheduled_recordings_are_independent() {
    let server = RtmpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let publishers = [Publisher::start(&server.url("a")), Publisher::start(&server.url("b"))];
    publishers.iter().for_each(Publisher::wait_live);
    let (a, b, c) = (
        dir.path().join("a.mp4"),
        dir.path().join("b.flv"),
        dir.path().join("c.mp4"),
    );
    let schedule = dir.path().join("jobs.toml");
    std::fs::write(
        &schedule,
        format!(
            "[[job]]\nurl = \"{}\"\noutput = \"{}\"\nfor = \"4s\"\n\n\
             [[job]]\nurl = \"{}\"\noutput = \"{}\"\nat = \"+1s\"\nfor = \"3s\"\n\n\
             [[job]]\nurl = \"{}\"\noutput = \"{}\"\n",
            server.url("a"),
            a.display(),
            server.url("b"),
            b.display(),
            server.url("nobody"),
            c.display()
        ),
    )
    .unwrap();
    let started = Instant::now();
    let result = run([
        "record",
        "--schedule",
        schedule.to_str().unwrap(),
        "--open-timeout",
        "2s",
    ]);
    let took = started.elapsed();
    let error = assert_failure(&result, 3);
    assert!(
        error.contains("1 of 3 recordings failed")
            && error.contains("job 3")
            && error.contains("sent nothing within 2 s"),
        "{error}"
    );
    // Run one after the other, they would take 4 + 1 + 3 s at least.
    assert!(took < Duration::from_secs(7), "the schedule took {took:?}");
    for (file, seconds) in [(&a, 4.0), (&b, 3.0)] {
        assert_plays(file);
        let length = duration(file);
        assert!(
            length > seconds - 2.5 && length <= seconds + 0.5,
            "{}: {length:.2} s recorded of {seconds} s",
            file.display()
        );
    }
    assert!(!c.exists());
    let names = crate::util::file_names(dir.path());
    assert_eq!(names.len(), 3, "only a.mp4, b.flv and jobs.toml: {names:?}");
}

#[test]
fn a_killed_recorder_leaves_a_playable_part_file_that_is_not_overwritten() {
    let server = RtmpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _publisher = Publisher::start(&server.url("k"));
    let output = dir.path().join("show.mp4");
    let mut child = Command::new(BIN)
        .args(args(&server.url("k"), &output, &["--quiet"]))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    child.kill().unwrap();
    child.wait().unwrap();
    let part = dir.path().join("show.mp4.part.ts");
    assert!(!output.exists());
    let frames = video_frames(&part);
    assert!(frames.count >= 25, "{} frames in the part file", frames.count);
    assert_plays(&part);
    let again = run(args(&server.url("k"), &output, &["--for", "1s"]));
    let error = assert_failure(&again, 4);
    assert!(error.contains("show.mp4.part.ts: already exists"), "{error}");
}

#[test]
fn a_source_that_never_starts_fails_after_the_timeout() {
    let server = RtmpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("never.mp4");
    let url = server.url("nobody");
    let started = Instant::now();
    let result = run(args(&url, &output, &["--open-timeout", "1s"]));
    let took = started.elapsed();
    let error = assert_failure(&result, 3);
    assert_eq!(error, format!("error: {url}: sent nothing within 1 s"));
    assert!(took < Duration::from_secs(4), "gave up after {took:?}");
    assert!(crate::util::file_names(dir.path()).is_empty(), "nothing is left behind");
}

#[test]
fn a_delayed_split_recording_waits_then_cuts_files_at_keyframes() {
    let server = RtmpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let _publisher = Publisher::start(&server.url("s"));
    let output = dir.path().join("show.ts");
    let started = Instant::now();
    let result = run(args(
        &server.url("s"),
        &output,
        &["--at", "+2s", "--for", "5s", "--split", "2s"],
    ));
    let took = started.elapsed();
    assert_success(&result);
    assert_says(&result, &["waiting until"], "when it starts");
    assert!(
        took >= Duration::from_secs(7),
        "recorded 5 s after waiting 2 s in {took:?}"
    );
    let files: Vec<PathBuf> = (0..)
        .map(|i| dir.path().join(format!("show-{i:03}.ts")))
        .take_while(|f| f.exists())
        .collect();
    assert!(files.len() >= 2, "{:?}", crate::util::file_names(dir.path()));
    assert_eq!(
        crate::util::file_names(dir.path()).len(),
        files.len(),
        "only the split files"
    );
    for file in &files {
        assert_plays(file);
        let first = probe(
            &[
                "-select_streams",
                "v:0",
                "-read_intervals",
                "%+#1",
                "-show_entries",
                "packet=flags",
            ],
            file,
        );
        assert!(
            first["packets"][0]["flags"].as_str().unwrap().starts_with('K'),
            "{} starts without a keyframe",
            file.display()
        );
    }
}

#[test]
fn bad_record_options_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("x.mp4");
    let url = "rtmp://127.0.0.1:9/live/x";
    for (extra, words) in [
        (vec!["--at", "tonight"], "expected an RFC 3339 time"),
        (vec!["--at", "2020-01-01T00:00:00Z"], "is in the past"),
        (vec!["--for", "0s"], "must be positive"),
        (vec!["--split", "soon"], "--split"),
    ] {
        let line = assert_failure(&run(args(url, &output, &extra)), 2);
        assert!(line.contains(words), "{extra:?}: {line}");
    }
    let line = assert_failure(&run(args(url, &dir.path().join("x.avi"), &[])), 2);
    assert!(line.contains("x.avi: record writes .mp4"), "{line}");
    let schedule = dir.path().join("jobs.toml");
    for (text, words) in [
        (
            "[[job]]\nurl = \"rtmp://h/a\"\noutput = \"a.mp4\"\nfor = \"ever\"\n",
            "job 1: for: `ever`",
        ),
        (
            "[[job]]\nurl = \"rtmp://h/a\"\noutput = \"a.mp4\"\nwhen = \"now\"\n",
            "unknown field `when`",
        ),
        (
            "[[job]]\nurl = \"rtmp://h/a\"\noutput = \"a.mp4\"\n[[job]]\nurl = \"rtmp://h/b\"\noutput = \"a.mp4\"\n",
            "job 2: output a.mp4 is also job 1's",
        ),
    ] {
        std::fs::write(&schedule, text).unwrap();
        let line = assert_failure(&run(["record", "--schedule", schedule.to_str().unwrap()]), 2);
        assert!(line.contains("schedule file") && line.contains(words), "{line}");
    }
    let missing = dir.path().join("missing.toml");
    let line = assert_failure(&run(["record", "--schedule", missing.to_str().unwrap()]), 3);
    assert!(line.contains("no such file"), "{line}");
    assert_eq!(crate::util::file_names(dir.path()), ["jobs.toml".to_owned()].into());
}
