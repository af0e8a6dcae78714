//! Subtitles: sidecar files (and the source's text streams) as segmented WebVTT renditions, judged
//! with the tests' own WebVTT reader and playlist parser: every cue on the media timeline where
//! the source has it, every subtitle segment cut where the video's is.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::cli::{assert_failure, assert_success, package};
use crate::util::m3u8::{MediaPlaylist, read_master, read_media};
use crate::util::webvtt;

/// What stream-pack adds to every timestamp (README: "Every output's timestamps are the source's
/// plus 1.4 s").
const TIMELINE_OFFSET: f64 = 1.4;
/// One frame of the test video (25 fps): how far a cue may move.
const FRAME: f64 = 0.04;
const SEGMENT: &str = "1.5";

/// A subtitle track as the source or sidecar has it: cues of (start, end, text).
struct Expected {
    language: &'static str,
    name: &'static str,
    forced: bool,
    cues: Vec<(f64, f64, &'static str)>,
}

fn japanese() -> Expected {
    Expected {
        language: "ja",
        name: "日本語",
        forced: false,
        cues: vec![
            (0.2, 1.0, "こんにちは"),
            (1.4, 3.2, "境界を<i>跨ぐ</i>"),
            (3.52, 3.96, "終わり\n二行目"),
        ],
    }
}

/// SubRip text of `cues`.
fn srt(cues: &[(f64, f64, &str)]) -> String {
    let time = |t: f64| {
        let ms = (t * 1000.0).round() as u64;
        format!(
            "{:02}:{:02}:{:02},{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    cues.iter()
        .enumerate()
        .map(|(i, (start, end, text))| format!("{}\n{} --> {}\n{text}\n\n", i + 1, time(*start), time(*end)))
        .collect()
}

/// 4 s of 320x180 video at 25 fps and a tone, in `name` (its extension picks the container).
fn make_source(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"])
        .args(["-f", "lavfi", "-i", "sine=duration=4:sample_rate=48000"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {name}");
    path
}

/// The subtitle playlist of `language` is cut like the video's, and every cue of `expected` is on
/// the media timeline where the source has it, in every segment it overlaps.
fn judge(out: &Path, expected: &Expected) {
    let master = read_master(&out.join("master.m3u8"));
    assert!(
        master
            .variants
            .iter()
            .all(|v| v.attributes.quoted("SUBTITLES") == Some("subs"))
    );
    let media = master
        .media
        .iter()
        .find(|m| m.plain("TYPE") == Some("SUBTITLES") && m.quoted("LANGUAGE") == Some(expected.language))
        .unwrap_or_else(|| panic!("no SUBTITLES rendition in {}", expected.language));
    assert_eq!(media.quoted("GROUP-ID"), Some("subs"));
    assert_eq!(media.quoted("NAME"), Some(expected.name));
    assert_eq!(media.plain("FORCED") == Some("YES"), expected.forced);
    assert_ne!(media.plain("DEFAULT"), Some("YES"), "subtitles are not on by default");
    let uri = media.quoted("URI").expect("a URI");
    let subtitles = read_media(&out.join(uri));
    let video = read_media(&out.join(&master.variants[0].uri));
    let bounds = boundaries(&video);
    assert_eq!(
        boundaries(&subtitles),
        bounds,
        "subtitle segments end where the video's do"
    );
    assert_eq!(subtitles.target_duration, video.target_duration);
    let dir = out.join(uri).parent().unwrap().to_owned();
    let segments: Vec<webvtt::WebVtt> = subtitles
        .segments
        .iter()
        .map(|s| {
            let text = std::fs::read_to_string(dir.join(&s.uri)).unwrap();
            webvtt::parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", s.uri))
        })
        .collect();
    for (index, segment) in segments.iter().enumerate() {
        let (from, to) = (bounds[index].0, bounds[index].1);
        for cue in &segment.cues {
            let (start, end) = segment.media_times(cue);
            let (start, end) = (start - TIMELINE_OFFSET, end - TIMELINE_OFFSET);
            assert!(
                start < to + FRAME && end > from - FRAME,
                "cue {cue:?} outside segment {index}"
            );
            let source = expected.cues.iter().find(|c| c.2 == cue.text);
            let (s, e, _) = source.unwrap_or_else(|| panic!("cue {cue:?} is not in the source"));
            assert!(
                (start - s).abs() <= FRAME && (end - e).abs() <= FRAME,
                "{cue:?} at {start}..{end}, source {s}..{e}"
            );
        }
    }
    for (start, end, text) in &expected.cues {
        let overlapped: Vec<usize> = (0..bounds.len())
            .filter(|i| *start < bounds[*i].1 && *end > bounds[*i].0)
            .collect();
        assert!(!overlapped.is_empty(), "{text:?} falls in no segment");
        for i in overlapped {
            assert!(
                segments[i].cues.iter().any(|c| c.text == *text),
                "{text:?} missing from segment {i}"
            );
        }
    }
}

/// Each segment's start and end, seconds from the first segment's start.
fn boundaries(playlist: &MediaPlaylist) -> Vec<(f64, f64)> {
    let mut start = 0.0;
    playlist
        .segments
        .iter()
        .map(|s| {
            start += s.duration;
            (start - s.duration, start)
        })
        .collect()
}

#[test]
fn a_sidecar_becomes_segmented_webvtt_in_ts_and_fmp4() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), "plain.mp4");
    let sidecar = dir.path().join("ja.srt");
    std::fs::write(&sidecar, srt(&japanese().cues)).unwrap();
    let spec = format!("{}:ja:日本語", sidecar.display());
    for format in ["ts", "fmp4"] {
        let out = dir.path().join(format!("out-{format}"));
        let args = [
            "--reps",
            "180",
            "--segment-duration",
            SEGMENT,
            "--format",
            format,
            "--subtitles",
            &spec,
        ];
        assert_success(&package("hls", &source, &out, &args));
        judge(&out, &japanese());
    }
}

#[test]
fn bad_sidecars_are_one_line_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), "plain.mp4");
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    let binary: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let cases = [
        (
            dir.path().join("missing.srt").display().to_string(),
            3,
            "missing.srt: no such file",
        ),
        (write("binary.srt", &binary), 3, "binary.srt: not UTF-8"),
        (
            write("order.srt", srt(&[(2.0, 3.0, "b"), (1.0, 1.5, "a")]).as_bytes()),
            3,
            "order.srt: line 6",
        ),
        (
            write("backwards.vtt", b"WEBVTT\n\n00:02.000 --> 00:01.000\nx\n"),
            3,
            "backwards.vtt: line 3",
        ),
        (
            format!("{}:not a language", write("fine.srt", b"")),
            2,
            "not a language tag",
        ),
    ];
    for (spec, code, says) in cases {
        let out = dir.path().join("out");
        let output = package("hls", &source, &out, &["--reps", "180", "--subtitles", &spec]);
        let line = assert_failure(&output, code);
        assert!(line.contains(says), "{spec}: {line}");
        assert!(!out.exists(), "{spec}: the failed run left {}", out.display());
    }
}
