//! Issue 15, multichannel audio: a 5.1 stream gives a stereo downmix and a 5.1 AAC rendition, in
//! HLS groups of one channel layout each (Apple's HLS authoring spec: every variant repeated per
//! group, so a stereo-only player never meets 5.1) and in DASH AdaptationSets of their own;
//! `--surround none` keeps the downmix alone. Judged with ffprobe/ffmpeg and the tests' readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::tracks_audio::{FAST, decoded_seconds, generated};
use crate::util::cli;
use crate::util::ffprobe::{self, number};
use crate::util::m3u8::{Attributes, read_master};
use crate::util::mpd::{Mpd, read_mpd};

/// 3 s of video, English 5.1 at 48 kHz (a tone of its own in each channel, the default stream)
/// and Japanese stereo at 44.1 kHz, in Matroska, made once per test run.
pub(crate) fn title() -> &'static Path {
    static TITLE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = TITLE.get_or_init(|| {
        let tones = [330, 440, 550, 60, 660, 770]
            .map(|f| format!("0.3*sin({f}*2*PI*t)"))
            .join("|");
        generated("surround.mkv", |ffmpeg| {
            ffmpeg
                .args(["-f", "lavfi", "-i", &format!("aevalsrc={tones}:s=48000:d=3:c=5.1")])
                .args(["-f", "lavfi", "-i", "sine=f=660:r=44100:d=3"])
                .args(["-map", "0", "-map", "1", "-map", "2"])
                .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
                .args(["-ac:a:0", "6", "-channel_layout:a:0", "5.1", "-ac:a:1", "2"])
                .args(["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=jpn"])
                .args(["-disposition:a:0", "default", "-disposition:a:1", "0"]);
        })
    });
    path
}

/// What one audio rendition must be: its source stream (`a:N`), language, channels and layout.
struct Rendition {
    source: usize,
    language: &'static str,
    channels: u64,
    layout: &'static str,
    sample_rate: u64,
}

const EN_STEREO: Rendition = Rendition {
    source: 0,
    language: "en",
    channels: 2,
    layout: "stereo",
    sample_rate: 48_000,
};
const EN_SURROUND: Rendition = Rendition {
    channels: 6,
    layout: "5.1",
    ..EN_STEREO
};
const JA_STEREO: Rendition = Rendition {
    source: 1,
    language: "ja",
    channels: 2,
    layout: "stereo",
    sample_rate: 44_100,
};

/// Asserts the rendition a playlist names decodes cleanly with the channels, layout and rate
/// expected, as long as its source stream within one AAC frame.
fn check_rendition(playlist: &Path, expected: &Rendition) {
    ffprobe::assert_decodes_cleanly(playlist);
    let facts = ffprobe::streams_and_format(playlist);
    let audio = &facts["streams"][0];
    let shown = playlist.display();
    assert_eq!(number(&audio["channels"]) as u64, expected.channels, "{shown}");
    assert_eq!(audio["channel_layout"], expected.layout, "{shown}");
    assert_eq!(number(&audio["sample_rate"]) as u64, expected.sample_rate, "{shown}");
    let rate = expected.sample_rate;
    let ours = decoded_seconds(playlist, "a:0", rate);
    let theirs = decoded_seconds(title(), &format!("a:{}", expected.source), rate);
    assert!(
        (ours - theirs).abs() <= 1024.0 / rate as f64 + 1e-6,
        "{shown}: {ours} s vs the source's {theirs} s"
    );
}

/// Asserts master.m3u8 has the audio groups `groups` (GROUP-ID and its renditions in order, the
/// first DEFAULT), each NAME unique in its group, CHANNELS as the rendition has, every variant
/// once per group, and each rendition as `check_rendition` wants.
fn check_hls(out: &Path, groups: &[(&str, &[&Rendition])]) {
    let master = read_master(&out.join("master.m3u8"));
    let audio: Vec<&Attributes> = master
        .media
        .iter()
        .filter(|m| m.plain("TYPE") == Some("AUDIO"))
        .collect();
    let mut listed = 0;
    for (id, renditions) in groups {
        let members: Vec<&&Attributes> = audio.iter().filter(|m| m.quoted("GROUP-ID") == Some(id)).collect();
        assert_eq!(members.len(), renditions.len(), "renditions of group {id}: {audio:?}");
        listed += members.len();
        let mut names = Vec::new();
        for (i, (m, expected)) in members.iter().zip(renditions.iter()).enumerate() {
            assert_eq!(m.quoted("LANGUAGE"), Some(expected.language), "{id} #{i}");
            assert_eq!(
                m.quoted("CHANNELS"),
                Some(expected.channels.to_string().as_str()),
                "{id} #{i}"
            );
            assert_eq!(m.plain("DEFAULT") == Some("YES"), i == 0, "DEFAULT of {id} #{i}");
            let name = m.quoted("NAME").expect("NAME");
            assert!(!names.contains(&name), "NAME {name:?} twice in {id}");
            names.push(name);
            check_rendition(&out.join(m.quoted("URI").expect("URI")), expected);
        }
    }
    assert_eq!(listed, audio.len(), "no audio rendition outside the groups: {audio:?}");
    // A video rendition's variants; an audio-only package's variants are its groups' defaults.
    let mut per_video: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for variant in master.variants.iter().filter(|v| !v.uri.starts_with("audio")) {
        let group = variant
            .attributes
            .quoted("AUDIO")
            .expect("every variant names its audio group");
        per_video.entry(variant.uri.as_str()).or_default().push(group);
    }
    let ids: Vec<&str> = groups.iter().map(|(id, _)| *id).collect();
    for (uri, with) in &per_video {
        assert_eq!(with, &ids, "the variants of {uri}, one per audio group");
    }
}

/// The BANDWIDTH of the variant of the one video rung with the audio group `id`.
fn bandwidth_with(out: &Path, id: &str) -> u64 {
    let master = read_master(&out.join("master.m3u8"));
    let variant = master
        .variants
        .iter()
        .find(|v| v.attributes.quoted("AUDIO") == Some(id))
        .expect("a variant with the group");
    variant
        .attributes
        .plain("BANDWIDTH")
        .expect("BANDWIDTH")
        .parse()
        .expect("a number")
}

const SURROUND_GROUPS: [(&str, &[&Rendition]); 2] = [
    ("audio-stereo", &[&EN_STEREO, &JA_STEREO]),
    ("audio-5.1", &[&EN_SURROUND, &JA_STEREO]),
];

#[test]
fn a_surround_stream_gives_a_stereo_and_a_surround_group_in_hls_ts() {
    let (_dir, out) = cli::package_in_temp("hls", title(), &FAST);
    check_hls(&out, &SURROUND_GROUPS);
    assert!(
        bandwidth_with(&out, "audio-5.1") > bandwidth_with(&out, "audio-stereo"),
        "the 5.1 variant counts the 5.1 rendition"
    );
}

#[test]
fn a_surround_stream_gives_a_stereo_and_a_surround_group_in_hls_fmp4() {
    let args = [&FAST[..], &["--format", "fmp4"]].concat();
    let (_dir, out) = cli::package_in_temp("hls", title(), &args);
    check_hls(&out, &SURROUND_GROUPS);
}

#[test]
fn a_surround_stream_gives_an_adaptation_set_per_layout_in_dash() {
    let args = [&FAST[..], &["--hls"]].concat();
    let (_dir, out) = cli::package_in_temp("dash", title(), &args);
    check_hls(&out, &SURROUND_GROUPS);
    let mpd = read_mpd(&out.join("manifest.mpd"));
    assert_eq!(
        languages_and_channels(&mpd),
        [
            (Some("en"), Some("2")),
            (Some("en"), Some("6")),
            (Some("ja"), Some("2"))
        ],
        "the English stereo and 5.1 each an AdaptationSet"
    );
}

/// Each audio AdaptationSet's @lang and AudioChannelConfiguration value, the configuration in
/// the MPEG-DASH scheme.
pub(crate) fn languages_and_channels(mpd: &Mpd) -> Vec<(Option<&str>, Option<&str>)> {
    mpd.adaptation_sets
        .iter()
        .filter(|set| set.attributes.get("contentType") == Some("audio"))
        .map(|set| {
            let configuration = set.representations[0].audio_channel_configuration.as_ref();
            let scheme = configuration.and_then(|c| c.get("schemeIdUri"));
            assert_eq!(scheme, Some("urn:mpeg:dash:23003:3:audio_channel_configuration:2011"));
            (set.attributes.get("lang"), configuration.and_then(|c| c.get("value")))
        })
        .collect()
}

/// The RMS level (dB) of each channel of the audio `file` decodes to, as ffmpeg's astats says it.
fn channel_levels(file: &Path) -> Vec<f64> {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-i"])
        .arg(file)
        .args(["-af", "astats=measure_overall=none:measure_perchannel=RMS_level"])
        .args(["-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter_map(|line| line.split("RMS level dB: ").nth(1))
        .map(|level| level.trim().parse().expect("a level"))
        .collect()
}

#[test]
fn the_stereo_rendition_is_a_standard_downmix_of_the_surround_stream() {
    let (_dir, out) = cli::package_in_temp("hls", title(), &FAST);
    // Each source channel is a 0.3 sine (power 0.045); the standard downmix puts the front, half
    // the power of the centre and of the surround on its side into each side, and no LFE.
    let expected = 10.0 * (0.045f64 * (1.0 + 0.5 + 0.5)).log10();
    let levels = channel_levels(&out.join("audio-en/index.m3u8"));
    assert_eq!(levels.len(), 2, "{levels:?}");
    for level in levels {
        assert!(
            (level - expected).abs() < 0.5,
            "{level} dB, not the downmix's {expected} dB"
        );
    }
}

#[test]
fn surround_none_keeps_the_stereo_downmix_alone_in_one_group() {
    let args = [&FAST[..], &["--surround", "none"]].concat();
    let (_dir, out) = cli::package_in_temp("hls", title(), &args);
    check_hls(&out, &[("audio", &[&EN_STEREO, &JA_STEREO])]);
    let text = std::fs::read_to_string(out.join("master.m3u8")).expect("read master.m3u8");
    assert!(!text.contains("CHANNELS=\"6\""), "{text}");
}

#[test]
fn an_audio_only_surround_source_keeps_its_groups_so_players_read_channels() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let source = dir.path().join("surround-audio.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(title())
        .args(["-map", "0:a:0", "-c", "copy"])
        .arg(&source)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not take the 5.1 stream alone");
    let (_out_dir, out) = cli::package_in_temp("hls", &source, &FAST[2..]);
    check_hls(&out, &[("audio-stereo", &[&EN_STEREO]), ("audio-5.1", &[&EN_SURROUND])]);
    let master = read_master(&out.join("master.m3u8"));
    let variants: Vec<(&str, Option<&str>)> = master
        .variants
        .iter()
        .map(|v| (v.uri.as_str(), v.attributes.quoted("AUDIO")))
        .collect();
    assert_eq!(
        variants,
        [
            ("audio/index.m3u8", Some("audio-stereo")),
            ("audio-5.1/index.m3u8", Some("audio-5.1"))
        ]
    );
}

/// The seconds each audio rendition was encoded to, as the progress reports on stderr give them,
/// report by report, in the order of `names`; every report after the probe names each of them.
fn reported_track_times(stderr: &[u8], names: &[&str]) -> Vec<Vec<f64>> {
    let reports: Vec<serde_json::Value> = String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .filter(|report: &serde_json::Value| report["stage"] != "probe")
        .collect();
    assert_eq!(reports.last().map(|r| &r["stage"]), Some(&"done".into()));
    reports
        .iter()
        .map(|report| {
            let tracks = report["tracks"].as_array().expect("tracks in every report");
            assert_eq!(tracks.len(), names.len(), "{report}");
            names
                .iter()
                .map(|name| {
                    let track = tracks.iter().find(|t| t["name"] == *name);
                    number(&track.unwrap_or_else(|| panic!("{name} in {report}"))["media_time"])
                })
                .collect()
        })
        .collect()
}

#[test]
fn progress_json_reports_how_far_each_rung_and_audio_rendition_has_encoded() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let out = dir.path().join("out");
    let output = cli::package_showing("json", "hls", title(), &out, &FAST);
    cli::assert_success(&output);
    let master = read_master(&out.join("master.m3u8"));
    // Each rendition once, with its length in the source and how close it must be: a video rung
    // within a frame (25 fps), an audio one within an AAC frame. The Japanese one is in both groups.
    let video = ffprobe::video_frames(title());
    let video_seconds = video.count as f64 / 25.0;
    let audio = |expected: &Rendition| {
        let rate = expected.sample_rate;
        let seconds = decoded_seconds(title(), &format!("a:{}", expected.source), rate);
        (seconds, 1024.0 / rate as f64)
    };
    let uris = master.variants.iter().map(|v| v.uri.as_str());
    let uris = uris.chain(master.media.iter().filter_map(|m| m.quoted("URI")));
    let mut renditions: Vec<(&str, (f64, f64))> = Vec::new();
    for name in uris.filter_map(|uri| uri.split('/').next()) {
        let expected = match name {
            "audio-en" => audio(&EN_STEREO),
            "audio-en-5.1" => audio(&EN_SURROUND),
            "audio-ja" => audio(&JA_STEREO),
            _ => (video_seconds, 1.0 / 25.0),
        };
        if renditions.iter().all(|(seen, _)| *seen != name) {
            renditions.push((name, expected));
        }
    }
    let names: Vec<&str> = renditions.iter().map(|(name, _)| *name).collect();
    assert_eq!(names.len(), 4, "the rung and three audio renditions: {names:?}");
    let times = reported_track_times(&output.stderr, &names);
    for pair in times.windows(2) {
        assert!(pair[0].iter().zip(&pair[1]).all(|(a, b)| a <= b), "went back: {pair:?}");
    }
    let last = times.last().expect("a report");
    for ((name, (source, within)), reported) in renditions.iter().zip(last) {
        assert!(
            (reported - source).abs() <= within + 1e-6,
            "{name}: reported {reported} s, the source's stream lasts {source} s"
        );
    }
}
