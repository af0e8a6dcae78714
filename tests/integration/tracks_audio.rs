//! Issue 15, audio: a title with several audio streams (English stereo 48 kHz, Japanese stereo
//! 44.1 kHz, an English commentary) becomes one rendition per stream, in HLS (TS and fMP4) and
//! DASH, each named, tagged in BCP 47 and flagged as the source says; `--audio` and
//! `--default-audio` choose. Judged with ffprobe/ffmpeg and the tests' own playlist and MPD readers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::cli;
use crate::util::ffprobe::{self, number};
use crate::util::m3u8::{Attributes, read_master};
use crate::util::mpd::read_mpd;

/// What each audio stream of the title is, in the source's order.
struct Expected {
    language: &'static str,
    name: &'static str,
    sample_rate: u64,
}

const TITLE_AUDIO: [Expected; 3] = [
    Expected {
        language: "en",
        name: "English",
        sample_rate: 48_000,
    },
    Expected {
        language: "ja",
        name: "Japanese",
        sample_rate: 44_100,
    },
    Expected {
        language: "en",
        name: "Director's commentary",
        sample_rate: 48_000,
    },
];

/// The generated title: 3 s of 320x180 video and the three audio streams, in Matroska (which
/// keeps titles and dispositions), made once per test run.
pub(crate) fn title() -> &'static Path {
    static TITLE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = TITLE.get_or_init(|| {
        generated("title.mkv", |ffmpeg| {
            ffmpeg
                .args(["-f", "lavfi", "-i", "sine=f=440:r=48000:d=3"])
                .args(["-f", "lavfi", "-i", "sine=f=660:r=44100:d=3"])
                .args(["-f", "lavfi", "-i", "sine=f=880:r=48000:d=3"])
                .args(["-map", "0", "-map", "1", "-map", "2", "-map", "3"])
                .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2"])
                .args(["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=jpn"])
                .args([
                    "-metadata:s:a:2",
                    "language=eng",
                    "-metadata:s:a:2",
                    "title=Director's commentary",
                ])
                .args(["-disposition:a:0", "default", "-disposition:a:1", "0"])
                .args(["-disposition:a:2", "comment"]);
        })
    });
    path
}

/// A title `file` made by ffmpeg in a temporary folder, from 3 s of 320x180 video and what
/// `streams` adds: more inputs, maps, codecs and tags.
pub(crate) fn generated(file: &str, streams: impl FnOnce(&mut Command)) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let path = dir.path().join(file);
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg
        .args(["-v", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=3"]);
    streams(&mut ffmpeg);
    let status = ffmpeg.arg(&path).status().expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {file}");
    (dir, path)
}

pub(crate) const FAST: [&str; 6] = [
    "--reps",
    "180",
    "--segment-duration",
    "1",
    "--encoder-preset",
    "ultrafast",
];

/// Seconds of audio the stream `selector` (`a:0`) of `file` decodes to: its samples over its rate.
pub(crate) fn decoded_seconds(file: &Path, selector: &str, rate: u64) -> f64 {
    let frames = ffprobe::probe(
        &["-select_streams", selector, "-show_entries", "frame=nb_samples"],
        file,
    );
    let samples: f64 = frames["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|frame| number(&frame["nb_samples"]))
        .sum();
    samples / rate as f64
}

/// Asserts the audio group of master.m3u8 lists `expected` in order, exactly one DEFAULT (the
/// `default`th), NAMEs unique, the commentary not AUTOSELECT; then that each rendition decodes,
/// in stereo, at its source stream's rate and for as long within one AAC frame. Returns the
/// renditions' EXT-X-MEDIA.
fn check_hls(out: &Path, expected: &[(usize, &Expected)], default: usize) -> Vec<Attributes> {
    let master = read_master(&out.join("master.m3u8"));
    let media: Vec<Attributes> = master
        .media
        .into_iter()
        .filter(|m| m.plain("TYPE") == Some("AUDIO"))
        .collect();
    assert_eq!(media.len(), expected.len(), "one EXT-X-MEDIA per audio rendition");
    let mut names = Vec::new();
    for (i, (m, (source_index, stream))) in media.iter().zip(expected).enumerate() {
        assert_eq!(m.quoted("GROUP-ID"), Some("audio"));
        assert_eq!(m.quoted("LANGUAGE"), Some(stream.language), "LANGUAGE of {i}");
        let name = m.quoted("NAME").expect("NAME");
        assert!(name.starts_with(stream.name), "NAME {name:?} of {i}");
        assert!(!names.contains(&name), "NAME {name:?} twice in the group");
        names.push(name);
        let is_default = m.plain("DEFAULT") == Some("YES");
        assert_eq!(is_default, i == default, "DEFAULT of {i}");
        let commentary = stream.name.contains("commentary");
        assert_eq!(m.plain("AUTOSELECT") == Some("YES"), !commentary, "AUTOSELECT of {i}");
        let playlist = out.join(m.quoted("URI").expect("URI"));
        ffprobe::assert_decodes_cleanly(&playlist);
        let facts = ffprobe::streams_and_format(&playlist);
        let audio = &facts["streams"][0];
        assert_eq!(number(&audio["channels"]), 2.0, "{}", playlist.display());
        assert_eq!(
            number(&audio["sample_rate"]) as u64,
            stream.sample_rate,
            "{}",
            playlist.display()
        );
        let frame = 1024.0 / stream.sample_rate as f64;
        let (ours, theirs) = (
            decoded_seconds(&playlist, "a:0", stream.sample_rate),
            decoded_seconds(title(), &format!("a:{source_index}"), stream.sample_rate),
        );
        assert!(
            (ours - theirs).abs() <= frame + 1e-6,
            "{}: {ours} s vs the source's {theirs} s",
            playlist.display()
        );
    }
    media
}

fn all() -> Vec<(usize, &'static Expected)> {
    TITLE_AUDIO.iter().enumerate().collect()
}

#[test]
fn every_audio_stream_becomes_a_rendition_in_hls_ts() {
    let (_dir, out) = cli::package_in_temp("hls", title(), &FAST);
    check_hls(&out, &all(), 0);
}

#[test]
fn every_audio_stream_becomes_a_rendition_in_hls_fmp4() {
    let args = [&FAST[..], &["--format", "fmp4"]].concat();
    let (_dir, out) = cli::package_in_temp("hls", title(), &args);
    check_hls(&out, &all(), 0);
}

#[test]
fn every_audio_stream_becomes_an_adaptation_set_in_dash() {
    let args = [&FAST[..], &["--hls"]].concat();
    let (_dir, out) = cli::package_in_temp("dash", title(), &args);
    check_hls(&out, &all(), 0);
    let mpd = read_mpd(&out.join("manifest.mpd"));
    let audio: Vec<_> = mpd
        .adaptation_sets
        .iter()
        .filter(|set| set.attributes.get("contentType") == Some("audio"))
        .collect();
    assert_eq!(audio.len(), 3, "an AdaptationSet per audio rendition");
    let role = |i: usize| audio[i].roles.first().and_then(|r| r.get("value"));
    for (set, stream) in audio.iter().zip(&TITLE_AUDIO) {
        assert_eq!(set.attributes.get("lang"), Some(stream.language));
        assert_eq!(set.roles[0].get("schemeIdUri"), Some("urn:mpeg:dash:role:2011"));
        assert!(set.labels[0].starts_with(stream.name), "Label {:?}", set.labels);
        let representation = &set.representations[0];
        assert_eq!(
            representation.attributes.get("audioSamplingRate"),
            Some(stream.sample_rate.to_string().as_str())
        );
    }
    assert_eq!(
        (role(0), role(1), role(2)),
        (Some("main"), Some("alternate"), Some("commentary"))
    );
}

#[test]
fn copy_keeps_every_aac_stream_as_its_own_rendition() {
    let (_dir, out) = cli::package_in_temp("hls", title(), &["--copy", "--segment-duration", "1"]);
    check_hls(&out, &all(), 0);
}

#[test]
fn passthrough_top_keeps_every_audio_stream_as_its_own_rendition() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let out = parent.path().join("out");
    // A top rung of the source's size and a maxrate above its 0.6 Mb/s, which it fits.
    let args = [
        "--reps",
        "320x180@700k,160x90@100k",
        "--passthrough-top",
        "--segment-duration",
        "1",
    ];
    let output = cli::package("hls", title(), &out, &[&args[..], &FAST[4..]].concat());
    cli::assert_success(&output);
    cli::assert_says(
        &output,
        &["180p", "source's own"],
        "that the top rung is the source's stream",
    );
    check_hls(&out, &all(), 0);
}

#[test]
fn audio_ja_keeps_the_japanese_stream_alone() {
    let args = [&FAST[..], &["--audio", "ja"]].concat();
    let (_dir, out) = cli::package_in_temp("hls", title(), &args);
    check_hls(&out, &[(1, &TITLE_AUDIO[1])], 0);
    assert!(out.join("audio").is_dir(), "a lone rendition keeps the folder audio/");
}

#[test]
fn default_audio_ja_makes_the_japanese_rendition_the_default() {
    let args = [&FAST[..], &["--default-audio", "ja"]].concat();
    let (_dir, out) = cli::package_in_temp("hls", title(), &args);
    check_hls(&out, &all(), 1);
}

#[test]
fn audio_none_gives_a_video_only_package() {
    let args = [&FAST[..], &["--audio", "none"]].concat();
    let (_dir, out) = cli::package_in_temp("hls", title(), &args);
    let master = read_master(&out.join("master.m3u8"));
    assert!(master.media.is_empty(), "no EXT-X-MEDIA: {:?}", master.media);
    assert!(master.variants.iter().all(|v| v.attributes.quoted("AUDIO").is_none()));
}

#[test]
fn audio_naming_a_stream_that_is_not_there_is_refused_and_leaves_nothing() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let out = parent.path().join("out");
    let line = cli::assert_failure(&cli::hls(title(), &out, &[&FAST[..], &["--audio", "7"]].concat()), 2);
    assert!(line.contains('7') && line.contains("audio"), "{line}");
    assert!(!out.exists(), "nothing is left behind");
    assert_eq!(std::fs::read_dir(parent.path()).expect("read the folder").count(), 0);
}

#[test]
fn probe_lists_every_audio_stream_with_language_title_disposition_and_channels() {
    let output = cli::run([
        std::ffi::OsStr::new("probe"),
        title().as_os_str(),
        std::ffi::OsStr::new("--json"),
    ]);
    cli::assert_success(&output);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("probe prints JSON");
    let audio: Vec<&serde_json::Value> = json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter(|s| s["kind"] == "audio")
        .collect();
    assert_eq!(audio.len(), 3);
    assert_eq!(audio[1]["language"], "jpn");
    assert_eq!(audio[2]["title"], "Director's commentary");
    assert!(
        audio[2]["disposition"]
            .as_array()
            .expect("disposition")
            .contains(&"comment".into())
    );
    assert!(audio.iter().all(|s| s["channels"] == 2));
    let table = cli::run([std::ffi::OsStr::new("probe"), title().as_os_str()]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("Director's commentary") && table.contains("comment"),
        "{table}"
    );
}
