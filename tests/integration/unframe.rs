//! `unframe`: tagged websocket captures (seed 002) built from a fragmented MP4 that libav made
//! from the `main` source, as a file and served live by a local websocket server; the result is
//! judged against that fMP4 with ffprobe, ffmpeg and mp4-atom.

use crate::util::capture;
use crate::util::ws::{self, After};
use crate::util::{bmff, cli, ffprobe, file_names, media};
use mp4_atom::FourCC;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

fn write_capture(dir: &Path, messages: &[Vec<u8>]) -> PathBuf {
    let path = dir.join("capture.bin");
    std::fs::write(&path, capture::file_bytes(messages)).unwrap();
    path
}

fn unframe(args: &[&std::ffi::OsStr]) -> Output {
    cli::run([&[std::ffi::OsStr::new("unframe")], args].concat())
}

/// The number of moof boxes in a file, by mp4-atom.
fn fragments(file: &Path) -> usize {
    bmff::top_level_kinds(file)
        .iter()
        .filter(|k| **k == FourCC::new(b"moof"))
        .count()
}

/// A progressive MP4: moov before the media, no fragments.
fn assert_progressive(file: &Path) {
    let kinds = bmff::top_level_kinds(file);
    let at = |kind: &[u8; 4]| kinds.iter().position(|k| *k == FourCC::new(kind));
    assert!(at(b"moov").unwrap() < at(b"mdat").unwrap(), "moov first: {kinds:?}");
    assert_eq!(at(b"moof"), None, "no fragments: {kinds:?}");
}

/// The packets of every stream: count per stream, in stream order.
fn packet_counts(file: &Path) -> Vec<usize> {
    ffprobe::tracks(file).iter().map(|t| t.packets.len()).collect()
}

#[test]
fn a_capture_file_unframes_to_the_same_frames() {
    let dir = tempfile::tempdir().unwrap();
    let source = capture::fragmented_source();
    let messages = capture::messages(&source);
    assert!(messages.len() > 20, "several fragments: {} messages", messages.len());
    let capture = write_capture(dir.path(), &messages);
    let out = dir.path().join("out.mp4");
    cli::assert_success(&unframe(&[capture.as_os_str(), "-o".as_ref(), out.as_os_str()]));
    assert_progressive(&out);
    ffprobe::assert_same_video_packets(&source, &out, true);
    assert_eq!(packet_counts(&out), packet_counts(&source));
    ffprobe::assert_decodes_cleanly(&out);
}

#[test]
fn keep_fragmented_gives_the_fragmented_mp4_back() {
    let dir = tempfile::tempdir().unwrap();
    let source = capture::fragmented_source();
    let capture = write_capture(dir.path(), &capture::messages(&source));
    let out = dir.path().join("out.mp4");
    cli::assert_success(&unframe(&[
        capture.as_os_str(),
        "--keep-fragmented".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]));
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&source).unwrap(),
        "ftyp, moov, then every moof and mdat as libav wrote them"
    );
}

#[test]
fn a_capture_cut_off_mid_fragment_keeps_every_complete_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let source = capture::fragmented_source();
    let messages = capture::messages(&source);
    let bytes = capture::file_bytes(&messages);
    // Cut 100 bytes into the third fragment's mdat payload: the init message and two
    // fragments of seven messages, then the third's begin, then its payload.
    let payload = 1 + 2 * 7 + 1;
    assert_eq!(messages[payload][0], 252, "the third fragment's payload message");
    let upto: usize = messages[..payload].iter().map(|m| m.len() + 4).sum::<usize>() + 4 + 100;
    let capture = dir.path().join("cut.bin");
    std::fs::write(&capture, &bytes[..upto]).unwrap();
    let out = dir.path().join("out.mp4");
    let output = unframe(&[
        capture.as_os_str(),
        "--keep-fragmented".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    cli::assert_success(&output);
    cli::assert_says(&output, &["dropped", "fragment"], "that the last fragment was dropped");
    cli::assert_says(&output, &["capture ends inside"], "where the capture was cut");
    assert_eq!(fragments(&out), 2, "the two complete fragments");
    let kept: Vec<u8> = bmff::split(&source)
        .into_iter()
        .take(2 + 4)
        .flat_map(|(_, bytes)| bytes)
        .collect();
    assert!(
        std::fs::read(&out).unwrap() == kept,
        "the first two fragments as they were"
    );
    ffprobe::assert_decodes_cleanly(&out);
}

/// Unframes `messages` written as a capture file; asserts it failed with exit 3 naming the file,
/// left nothing, and returns the error line.
fn refused(messages: &[Vec<u8>]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let capture = write_capture(dir.path(), messages);
    refused_file(&capture)
}

fn refused_file(capture: &Path) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let output = unframe(&[
        capture.as_os_str(),
        "-o".as_ref(),
        out_dir.path().join("out.mp4").as_os_str(),
    ]);
    let error = cli::assert_failure(&output, 3);
    assert!(
        error.contains(&capture.display().to_string()),
        "names the capture: {error}"
    );
    assert!(file_names(out_dir.path()).is_empty(), "a failed unframe leaves nothing");
    error
}

#[test]
fn corrupt_captures_are_refused_naming_the_message() {
    let good = capture::messages(&capture::fragmented_source());
    let mut unknown = good.clone();
    unknown[9][0] = 0x13;
    let error = refused(&unknown);
    assert!(
        error.contains("message 10") && error.contains("unknown tag 19"),
        "{error}"
    );
    let mut lost = good.clone();
    lost.remove(4);
    let error = refused(&lost);
    assert!(error.contains("not one moof box"), "{error}");
    let mut short = good.clone();
    let shorter = short[2].len() - 10;
    short[2].truncate(shorter);
    let error = refused(&short);
    assert!(error.contains("mdat header does not announce"), "{error}");
    let error = refused(&good[1..]);
    assert!(error.contains("before the init segment"), "{error}");
}

#[test]
fn files_that_are_no_capture_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.bin");
    std::fs::write(&huge, [0xff, 0xff, 0xff, 0xff, 0xfa, 0]).unwrap();
    assert!(refused_file(&huge).contains("more than the limit"));
    let mp4 = dir.path().join("movie.mp4");
    std::fs::copy(media("tiny"), &mp4).unwrap();
    refused_file(&mp4);
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, b"").unwrap();
    assert!(refused_file(&empty).contains("empty"));
    let only_init = capture::messages(&capture::fragmented_source())[..1].to_vec();
    assert!(refused(&only_init).contains("no complete fragment"));
}

#[test]
fn a_live_capture_takes_what_the_server_sends_until_it_closes() {
    let source = capture::fragmented_source();
    let server = ws::serve(capture::messages(&source), After::Close);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.mp4");
    let output = unframe(&[
        "--ws".as_ref(),
        server.url.as_ref(),
        "--header".as_ref(),
        "Origin: http://127.0.0.1".as_ref(),
        "--send".as_ref(),
        "ping".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    cli::assert_success(&output);
    drop(server);
    assert_progressive(&out);
    ffprobe::assert_same_video_packets(&source, &out, true);
    assert_eq!(packet_counts(&out), packet_counts(&source));
}

#[test]
fn a_live_capture_stops_after_the_duration_asked() {
    let source = capture::fragmented_source();
    // The init segment and two fragments of seven messages, then a connection that stays
    // open and quiet.
    let server = ws::serve(capture::messages(&source)[..15].to_vec(), After::Hold);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("live.mp4");
    let started = Instant::now();
    let output = unframe(&[
        "--ws".as_ref(),
        server.url.as_ref(),
        "--for".as_ref(),
        "2s".as_ref(),
        "--keep-fragmented".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let took = started.elapsed();
    cli::assert_success(&output);
    drop(server);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(20),
        "stopped after {took:?}"
    );
    assert_eq!(fragments(&out), 2);
    ffprobe::assert_decodes_cleanly(&out);
}

#[test]
fn a_websocket_that_cannot_be_reached_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    // A port just released: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/live");
    let output = unframe(&[
        "--ws".as_ref(),
        url.as_ref(),
        "-o".as_ref(),
        dir.path().join("o.mp4").as_os_str(),
    ]);
    let error = cli::assert_failure(&output, 3);
    assert!(error.contains(&url), "{error}");
    assert!(file_names(dir.path()).is_empty());
    let output = unframe(&[
        "--ws".as_ref(),
        "http://127.0.0.1/".as_ref(),
        "-o".as_ref(),
        dir.path().join("o.mp4").as_os_str(),
    ]);
    cli::assert_failure(&output, 2);
}
