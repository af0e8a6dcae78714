//! `remux`: a fragmented MP4, an MPEG-TS, and HLS and DASH presentations (local and over HTTP)
//! made by libav from the `main` source, copied into a progressive MP4 and judged against the
//! source with ffprobe, ffmpeg and mp4-atom.

use crate::util::{bmff, capture, cli, ffprobe, file_names, http, made_by_libav, media};
use mp4_atom::FourCC;
use std::path::{Path, PathBuf};
use std::process::Output;

fn remux(input: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.display().to_string();
    cli::run([&["remux", input, "-o", out.as_str()], extra].concat())
}

/// `out` is a progressive MP4 (moov before mdat, no fragments) holding `main`'s video packets
/// at its times with its pictures, and its every audio packet. With `same_sizes`, the packets
/// are byte for byte the source's (MPEG-TS adds an access unit delimiter to each).
fn assert_main_remuxed(out: &Path, same_sizes: bool) {
    let kinds = bmff::top_level_kinds(out);
    let at = |kind: &[u8; 4]| kinds.iter().position(|k| *k == FourCC::new(kind));
    assert!(at(b"moov").unwrap() < at(b"mdat").unwrap(), "moov first: {kinds:?}");
    assert_eq!(at(b"moof"), None, "no fragments: {kinds:?}");
    let source = media("main");
    ffprobe::assert_same_video_packets(&source, out, same_sizes);
    assert_eq!(
        ffprobe::audio_packets(out),
        ffprobe::audio_packets(&source),
        "every audio packet"
    );
    ffprobe::assert_decodes_cleanly(out);
    let start = ffprobe::number(&ffprobe::streams_and_format(out)["format"]["start_time"]);
    assert!(start.abs() < 0.1, "starts at 0, not {start} s");
}

#[test]
fn fragmented_mp4_becomes_progressive() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let input = capture::fragmented_source();
    cli::assert_success(&remux(&input.display().to_string(), &out, &[]));
    assert_main_remuxed(&out, true);
}

#[test]
fn mpeg_ts_becomes_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let ts = made_by_libav(&media("main"), dir.path(), &["-c", "copy", "-f", "mpegts"], "main.ts");
    let out = dir.path().join("out.mp4");
    cli::assert_success(&remux(&ts.display().to_string(), &out, &[]));
    assert_main_remuxed(&out, false);
}

/// `main` as an HLS presentation of 2 s TS segments, in its own folder.
pub(crate) fn hls(dir: &Path) -> PathBuf {
    made_by_libav(
        &media("main"),
        dir,
        &["-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"],
        "index.m3u8",
    )
}

#[test]
fn an_hls_playlist_becomes_one_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let playlist = hls(dir.path());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.mp4");
    cli::assert_success(&remux(&playlist.display().to_string(), &out, &[]));
    assert_main_remuxed(&out, false);
}

#[test]
fn an_hls_playlist_over_http_becomes_one_mp4() {
    let dir = tempfile::tempdir().unwrap();
    hls(dir.path());
    let server = http::serve_dir(dir.path());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.mp4");
    cli::assert_success(&remux(&format!("{}/index.m3u8", server.base), &out, &[]));
    assert_main_remuxed(&out, false);
}

#[test]
fn a_dash_manifest_becomes_one_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = made_by_libav(
        &media("main"),
        dir.path(),
        &["-c", "copy", "-f", "dash", "-seg_duration", "2"],
        "manifest.mpd",
    );
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out.mp4");
    cli::assert_success(&remux(&manifest.display().to_string(), &out, &[]));
    assert_main_remuxed(&out, true);
}

#[test]
fn bad_inputs_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mp4");
    let missing = dir.path().join("missing.ts");
    let error = cli::assert_failure(&remux(&missing.display().to_string(), &out, &[]), 3);
    assert!(error.contains("missing.ts: no such file"), "{error}");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not media\n").unwrap();
    let error = cli::assert_failure(&remux(&text.display().to_string(), &out, &[]), 3);
    assert!(error.contains("notes.txt"), "{error}");
    let server = http::serve(Default::default());
    let url = format!("{}/gone.m3u8", server.base);
    let error = cli::assert_failure(&remux(&url, &out, &[]), 3);
    assert!(error.contains(&url), "{error}");
    assert_eq!(file_names(dir.path()).len(), 1, "only notes.txt: nothing half-written");
    std::fs::write(&out, b"mine").unwrap();
    let input = capture::fragmented_source().display().to_string();
    cli::assert_failure(&remux(&input, &out, &[]), 4);
    assert_eq!(std::fs::read(&out).unwrap(), b"mine");
    cli::assert_success(&remux(&input, &out, &["--force"]));
    assert_main_remuxed(&out, true);
}
