//! Issue 15, "How it is shown": one generated title with every kind of track (video with CEA-608
//! captions, English stereo 48 kHz, Japanese 5.1 44.1 kHz, an English commentary, SubRip and ASS
//! subtitle streams, one forced, and a Japanese sidecar) packaged as HLS TS, HLS fMP4, DASH and
//! DASH with HLS. Judges stream-pack does not use: ffprobe/ffmpeg decode every audio rendition,
//! webvtt-py (PyPI, in tests/servers/.venv) reads every WebVTT segment, and the tests' own strict
//! playlist and MPD parsers read the manifests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use crate::tracks_audio::{FAST, decoded_seconds, generated};
use crate::tracks_captions::frames_with_captions;
use crate::util::cli::{assert_failure, assert_says, assert_success, package, package_in_temp};
use crate::util::ffprobe::{self, number};
use crate::util::m3u8::{Attributes, MasterPlaylist, read_master, read_media};
use crate::util::mpd;

/// One frame of the title's video (25 fps): how far a cue may move.
const FRAME: f64 = 0.04;
const SECONDS: &str = "4";
const SDH: &str = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";

/// An audio stream of the title, in the source's order (`a:N`).
struct Audio {
    language: &'static str,
    name: &'static str,
    channels: u64,
    sample_rate: u64,
}

const AUDIO: [Audio; 3] = [
    Audio {
        language: "en",
        name: "English",
        channels: 2,
        sample_rate: 48_000,
    },
    Audio {
        language: "ja",
        name: "Japanese",
        channels: 6,
        sample_rate: 44_100,
    },
    Audio {
        language: "en",
        name: "Director's commentary",
        channels: 2,
        sample_rate: 48_000,
    },
];

/// A subtitle track: cues of (start, end, WebVTT text, WebVTT settings).
struct Text {
    language: &'static str,
    name: &'static str,
    forced: bool,
    hearing_impaired: bool,
    cues: &'static [(f64, f64, &'static str, &'static str)],
}

/// The source's SubRip stream (hearing impaired), its ASS stream (forced signs, placed with
/// `\pos` on a 640x360 script or by an italic top-aligned style), and the Japanese sidecar.
const TEXTS: [Text; 3] = [
    Text {
        language: "en",
        name: "English",
        forced: false,
        hearing_impaired: true,
        cues: &[
            (0.5, 1.2, "<i>Hello</i> &amp; bye", ""),
            (1.3, 2.4, "Across a cut", ""),
            (3.1, 3.6, "Last words", ""),
        ],
    },
    Text {
        language: "fr",
        name: "Panneaux",
        forced: true,
        hearing_impaired: false,
        cues: &[
            (
                0.8,
                1.6,
                "<i>Boulangerie</i>",
                "position:50%,center line:25%,start align:center",
            ),
            (2.2, 3.3, "<i>Sortie\nGare</i>", "line:0 align:center"),
        ],
    },
    Text {
        language: "ja",
        name: "日本語",
        forced: false,
        hearing_impaired: false,
        cues: &[
            (0.2, 0.9, "こんにちは", ""),
            (1.7, 3.4, "境界を<b>跨ぐ</b>\n二行目", ""),
        ],
    },
];

const SUBRIP: &str = "1\n00:00:00,500 --> 00:00:01,200\n<i>Hello</i> & bye\n\n\
                      2\n00:00:01,300 --> 00:00:02,400\nAcross a <font color=\"red\">cut</font>\n\n\
                      3\n00:00:03,100 --> 00:00:03,600\nLast words\n";

const ASS: &str = "[Script Info]\nScriptType: v4.00+\nPlayResX: 640\nPlayResY: 360\n\n\
                   [V4+ Styles]\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, \
                   BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, \
                   Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n\
                   Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,1,0,\
                   2,10,10,10,1\n\
                   Style: Sign,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,-1,0,0,100,100,0,0,1,1,0,\
                   8,10,10,10,1\n\n\
                   [Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
                   Dialogue: 0,0:00:02.20,0:00:03.30,Sign,,0,0,0,,{\\fad(100,100)}Sortie\\NGare\
                   {\\p1}m 0 0 l 20 0 20 20{\\p0}\n\
                   Dialogue: 0,0:00:00.80,0:00:01.60,Default,,0,0,0,,{\\an8\\pos(320,90)\\i1\\c&H0000FF&}Boulangerie\n";

const SIDECAR: &str = "1\n00:00:00,200 --> 00:00:00,900\nこんにちは\n\n\
                       2\n00:00:01,700 --> 00:00:03,400\n境界を<b>跨ぐ</b>\n二行目\n";

/// The title, made once per test run by ffmpeg: the captioned fixture's video looped to 4 s and
/// re-encoded (libx264 writes the decoded A/53 captions back), three tones, two subtitle streams.
fn title() -> &'static Path {
    static TITLE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (dir, path) = TITLE.get_or_init(|| {
        let subtitles = tempfile::tempdir().expect("create a temporary folder");
        let (srt, ass) = (subtitles.path().join("en.srt"), subtitles.path().join("fr.ass"));
        std::fs::write(&srt, SUBRIP).unwrap();
        std::fs::write(&ass, ASS).unwrap();
        let captioned = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captions/cea608.mp4");
        let made = generated("title.mkv", |ffmpeg| {
            ffmpeg
                .args(["-f", "lavfi", "-i", "sine=f=440:r=48000:d=4"])
                .args([
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=f=660:r=44100:d=4,aformat=channel_layouts=5.1",
                ])
                .args(["-f", "lavfi", "-i", "sine=f=880:r=48000:d=4"])
                .arg("-i")
                .arg(&srt)
                .arg("-i")
                .arg(&ass)
                .args(["-stream_loop", "1", "-i"])
                .arg(&captioned)
                .args([
                    "-map", "6:v", "-map", "1", "-map", "2", "-map", "3", "-map", "4", "-map", "5",
                ])
                .args(["-t", SECONDS, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
                .args(["-ac:a:0", "2", "-ac:a:2", "2", "-c:s:0", "srt", "-c:s:1", "ass"])
                .args(["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=jpn"])
                .args(["-metadata:s:a:2", "language=eng", "-metadata:s:a:2"])
                .arg("title=Director's commentary")
                .args([
                    "-disposition:a:0",
                    "default",
                    "-disposition:a:1",
                    "0",
                    "-disposition:a:2",
                    "comment",
                ])
                .args([
                    "-metadata:s:s:0",
                    "language=eng",
                    "-disposition:s:0",
                    "hearing_impaired",
                ])
                .args(["-metadata:s:s:1", "language=fre", "-metadata:s:s:1", "title=Panneaux"])
                .args(["-disposition:s:1", "forced"]);
        });
        drop(subtitles);
        made
    });
    assert!(dir.path().exists());
    path
}

/// The Japanese sidecar, as `--subtitles` names it.
fn sidecar(dir: &Path) -> String {
    let path = dir.join("ja.srt");
    std::fs::write(&path, SIDECAR).unwrap();
    format!("{}:ja:日本語", path.display())
}

/// Packages the title with `command` and `extra`, the sidecar added.
fn packaged(command: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let spec = sidecar(dir.path());
    let args = [&FAST[..], extra, &["--subtitles", &spec]].concat();
    let (parent, out) = package_in_temp(command, title(), &args);
    drop(dir);
    (parent, out)
}

#[test]
fn the_generated_title_has_what_the_tests_expect_of_it() {
    let facts = ffprobe::streams_and_format(title());
    let streams = facts["streams"].as_array().expect("streams");
    let kinds: Vec<&str> = streams.iter().map(|s| s["codec_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["video", "audio", "audio", "audio", "subtitle", "subtitle"]);
    let codecs: Vec<&str> = streams[4..].iter().map(|s| s["codec_name"].as_str().unwrap()).collect();
    assert_eq!(codecs, ["subrip", "ass"]);
    for (stream, audio) in streams[1..4].iter().zip(&AUDIO) {
        assert_eq!(number(&stream["channels"]) as u64, audio.channels);
        assert_eq!(number(&stream["sample_rate"]) as u64, audio.sample_rate);
    }
    let (with, _) = frames_with_captions(title());
    assert!(with > 50, "the title's video carries captions in {with} frames");
}

#[test]
fn a_whole_title_in_hls_ts() {
    let (_dir, out) = packaged("hls", &[]);
    judge_hls(&out);
}

#[test]
fn a_whole_title_in_hls_fmp4() {
    let (_dir, out) = packaged("hls", &["--format", "fmp4"]);
    judge_hls(&out);
}

#[test]
fn a_whole_title_in_dash() {
    let (_dir, out) = packaged("dash", &[]);
    judge_dash(&out);
}

#[test]
fn a_whole_title_in_dash_with_hls() {
    let (_dir, out) = packaged("dash", &["--hls"]);
    judge_dash(&out);
    judge_hls(&out);
}

/// master.m3u8: every audio rendition decodes as its source stream, every subtitle rendition's
/// cues are where the source has them, the variants carry captions and say so.
fn judge_hls(out: &Path) {
    let master = read_master(&out.join("master.m3u8"));
    let audio = media_of(&master, "AUDIO");
    let mut kept: Vec<(usize, u64)> = audio.iter().map(|m| judge_hls_audio(out, m)).collect();
    kept.sort();
    kept.dedup();
    assert_eq!(
        kept,
        [(0, 2), (1, 2), (1, 6), (2, 2)],
        "a rendition per stream and layout"
    );
    let groups: std::collections::BTreeSet<&str> = audio.iter().filter_map(|m| m.quoted("GROUP-ID")).collect();
    for group in groups {
        let defaults = audio
            .iter()
            .filter(|m| m.quoted("GROUP-ID") == Some(group) && m.plain("DEFAULT") == Some("YES"));
        assert_eq!(defaults.count(), 1, "one DEFAULT in {group}");
    }
    let first_pts = first_video_pts(&out.join(&master.variants[0].uri));
    let subtitles = media_of(&master, "SUBTITLES");
    assert_eq!(subtitles.len(), TEXTS.len(), "a SUBTITLES rendition per text track");
    for text in &TEXTS {
        let media = subtitles
            .iter()
            .find(|m| m.quoted("LANGUAGE") == Some(text.language))
            .unwrap_or_else(|| panic!("no SUBTITLES in {}", text.language));
        assert_eq!(media.quoted("NAME"), Some(text.name));
        assert_eq!(
            media.plain("FORCED") == Some("YES"),
            text.forced,
            "FORCED of {}",
            text.name
        );
        assert_eq!(media.quoted("CHARACTERISTICS") == Some(SDH), text.hearing_impaired);
        assert_ne!(media.plain("DEFAULT"), Some("YES"));
        judge_cues(out, media.quoted("URI").expect("URI"), text, first_pts);
    }
    let captions = master
        .media
        .iter()
        .find(|m| m.plain("TYPE") == Some("CLOSED-CAPTIONS"))
        .expect("a CLOSED-CAPTIONS rendition");
    assert_eq!(captions.quoted("INSTREAM-ID"), Some("CC1"));
    for variant in &master.variants {
        assert_eq!(variant.attributes.quoted("SUBTITLES"), Some("subs"));
        assert_eq!(
            variant.attributes.quoted("CLOSED-CAPTIONS"),
            captions.quoted("GROUP-ID")
        );
        let (with, frames) = frames_with_captions(&out.join(&variant.uri));
        assert!(
            with * 2 > frames,
            "{}: {with} of {frames} frames carry captions",
            variant.uri
        );
    }
}

/// The EXT-X-MEDIA of `kind` (`AUDIO`, `SUBTITLES`).
fn media_of<'a>(master: &'a MasterPlaylist, kind: &str) -> Vec<&'a Attributes> {
    master.media.iter().filter(|m| m.plain("TYPE") == Some(kind)).collect()
}

/// Which source stream an audio rendition is (by LANGUAGE and NAME) and how many channels it
/// has, after checking it decodes to CHANNELS channels at that stream's rate, for as long as the
/// stream within one AAC frame; the commentary is not AUTOSELECT.
fn judge_hls_audio(out: &Path, media: &Attributes) -> (usize, u64) {
    let name = media.quoted("NAME").expect("NAME");
    let index = AUDIO
        .iter()
        .rposition(|a| Some(a.language) == media.quoted("LANGUAGE") && name.starts_with(a.name))
        .unwrap_or_else(|| panic!("an audio rendition {name:?} the source does not have"));
    assert_eq!(
        media.plain("AUTOSELECT") == Some("YES"),
        index != 2,
        "AUTOSELECT of {name}"
    );
    let channels: u64 = media.quoted("CHANNELS").expect("CHANNELS").parse().unwrap();
    judge_decoded(&out.join(media.quoted("URI").expect("URI")), index, channels);
    (index, channels)
}

/// `file`'s audio decodes to `channels` channels at source stream `index`'s rate, as long as it
/// within one AAC frame.
fn judge_decoded(file: &Path, index: usize, channels: u64) {
    ffprobe::assert_decodes_cleanly(file);
    let stream = &ffprobe::streams_and_format(file)["streams"][0];
    let rate = AUDIO[index].sample_rate;
    assert_eq!(number(&stream["channels"]) as u64, channels, "{}", file.display());
    assert_eq!(number(&stream["sample_rate"]) as u64, rate, "{}", file.display());
    let ours = decoded_seconds(file, "a:0", rate);
    let theirs = decoded_seconds(title(), &format!("a:{index}"), rate);
    assert!(
        (ours - theirs).abs() <= 1024.0 / rate as f64 + 1e-6,
        "{}: {ours} s vs the source's {theirs} s",
        file.display()
    );
}

/// The first presentation time of the video `playlist`'s stream, as ffprobe reads it.
fn first_video_pts(playlist: &Path) -> f64 {
    let facts = ffprobe::probe(
        &["-select_streams", "v:0", "-show_entries", "stream=start_time"],
        playlist,
    );
    let start = number(&facts["streams"][0]["start_time"]);
    assert!(start > 0.0 && start < 10.0, "{}: starts at {start}", playlist.display());
    start
}

/// Every cue of every segment of the subtitle playlist `uri`, read by webvtt-py and put on the
/// media timeline by its X-TIMESTAMP-MAP, is one of the track's at the source's time (the media's
/// first timestamp, `first_pts`, is the source's 0), with its text and settings; and every cue of
/// the track is in every segment it overlaps.
fn judge_cues(out: &Path, uri: &str, text: &Text, first_pts: f64) {
    let playlist = out.join(uri);
    let dir = playlist.parent().unwrap().to_owned();
    let media = read_media(&playlist);
    let files: Vec<PathBuf> = media.segments.iter().map(|s| dir.join(&s.uri)).collect();
    let mut bounds = Vec::new();
    let mut start = 0.0;
    for segment in &media.segments {
        bounds.push((start, start + segment.duration));
        start += segment.duration;
    }
    for (index, segment) in read_webvtt(&files).iter().enumerate() {
        let shift = segment.mpegts as f64 / 90_000.0 - segment.local - first_pts;
        let (from, to) = bounds[index];
        for (start, end, body, settings) in &segment.cues {
            let (start, end) = (start + shift, end + shift);
            let source = text.cues.iter().find(|c| c.2 == body);
            let (s, e, _, wanted) = source.unwrap_or_else(|| panic!("{uri} #{index}: {body:?} is not in the source"));
            assert!(
                (start - s).abs() <= FRAME && (end - e).abs() <= FRAME,
                "{uri} #{index}: {body:?} at {start}..{end}, the source's at {s}..{e}"
            );
            assert_eq!(settings, wanted, "{uri}: settings of {body:?}");
            assert!(
                start < to + FRAME && end > from - FRAME,
                "{uri}: {body:?} outside segment {index}"
            );
        }
        for (s, e, body, _) in text.cues {
            if *s < to && *e > from {
                assert!(
                    segment.cues.iter().any(|c| c.2 == *body),
                    "{uri}: {body:?} missing from segment {index}"
                );
            }
        }
    }
}

/// A WebVTT file as webvtt-py reads it: its X-TIMESTAMP-MAP and its cues (start and end in
/// seconds, raw text, settings).
struct WebVtt {
    mpegts: u64,
    local: f64,
    cues: Vec<(f64, f64, String, String)>,
}

/// Reads `files` with webvtt-py, in one Python run.
fn read_webvtt(files: &[PathBuf]) -> Vec<WebVtt> {
    const SCRIPT: &str = r#"
import json, sys, webvtt
def seconds(t):
    return t.hours * 3600 + t.minutes * 60 + t.seconds + t.milliseconds / 1000
out = []
for path in sys.argv[1:]:
    vtt = webvtt.read(path)
    maps = [m for m in vtt.metadata if m.startswith("X-TIMESTAMP-MAP=")]
    fields = dict(f.split(":", 1) for f in maps[0].split("=", 1)[1].split(","))
    local = webvtt.models.Timestamp.from_string(fields["LOCAL"])
    out.append({"mpegts": int(fields["MPEGTS"]), "local": seconds(local),
                "cues": [[seconds(c.start_time), seconds(c.end_time), c.raw_text, str(c.settings)] for c in vtt]})
print(json.dumps(out))
"#;
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/.venv/bin/python");
    let output = Command::new(&python)
        .args(["-c", SCRIPT])
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("run {} (scripts/test.sh installs it): {e}", python.display()));
    assert!(
        output.status.success(),
        "webvtt-py: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).expect("JSON from the script");
    read.as_array()
        .expect("a list")
        .iter()
        .map(|file| WebVtt {
            mpegts: file["mpegts"].as_u64().expect("MPEGTS"),
            local: number(&file["local"]),
            cues: file["cues"]
                .as_array()
                .expect("cues")
                .iter()
                .map(|c| (number(&c[0]), number(&c[1]), string(&c[2]), string(&c[3])))
                .collect(),
        })
        .collect()
}

fn string(value: &Value) -> String {
    value.as_str().expect("a string").to_owned()
}

/// manifest.mpd, read with roxmltree (the tests' strict MPD reader knows no text
/// AdaptationSets, whose form another change of issue 15 decides): an audio AdaptationSet per
/// rendition whose Representation decodes as its source stream, with its lang, Role and channel
/// configuration; a text AdaptationSet per track with its lang, Label and Role; the video's
/// captions signalled.
fn judge_dash(out: &Path) {
    let text = std::fs::read_to_string(out.join("manifest.mpd")).expect("read manifest.mpd");
    let document = roxmltree::Document::parse(&text).expect("manifest.mpd is XML");
    let sets = |kind: &str| -> Vec<roxmltree::Node> {
        document
            .descendants()
            .filter(|n| n.has_tag_name("AdaptationSet") && n.attribute("contentType") == Some(kind))
            .collect()
    };
    let mut kept = Vec::new();
    for set in sets("audio") {
        let label = child_text(set, "Label");
        let index = AUDIO
            .iter()
            .rposition(|a| set.attribute("lang") == Some(a.language) && label.starts_with(a.name))
            .unwrap_or_else(|| panic!("an audio AdaptationSet {label:?} the source does not have"));
        let role = child(set, "Role").and_then(|r| r.attribute("value"));
        assert_eq!(role == Some("commentary"), index == 2, "Role of {label}");
        let configuration = child(set, "AudioChannelConfiguration").expect("AudioChannelConfiguration");
        let channels: u64 = configuration.attribute("value").expect("@value").parse().unwrap();
        judge_decoded(&representation_file(out, set), index, channels);
        kept.push((index, channels));
    }
    kept.sort();
    assert_eq!(
        kept,
        [(0, 2), (1, 2), (1, 6), (2, 2)],
        "an AdaptationSet per stream and layout"
    );
    let texts = sets("text");
    assert_eq!(texts.len(), TEXTS.len(), "a text AdaptationSet per track");
    for text in &TEXTS {
        let set = texts
            .iter()
            .find(|s| s.attribute("lang") == Some(text.language))
            .unwrap_or_else(|| panic!("no text AdaptationSet in {}", text.language));
        assert_eq!(child_text(*set, "Label"), text.name);
        let role = child(*set, "Role").expect("a Role");
        assert_eq!(role.attribute("schemeIdUri"), Some("urn:mpeg:dash:role:2011"));
        let wanted = if text.forced { "forced-subtitle" } else { "subtitle" };
        assert_eq!(role.attribute("value"), Some(wanted), "Role of {}", text.name);
    }
    let video = sets("video");
    let captions = video[0].children().find(|n| {
        n.has_tag_name("Accessibility") && n.attribute("schemeIdUri") == Some("urn:scte:dash:cc:cea-608:2015")
    });
    assert_eq!(captions.and_then(|a| a.attribute("value")), Some("CC1=eng"));
}

/// The first element `name` inside `node`.
fn child<'a, 'input>(node: roxmltree::Node<'a, 'input>, name: &str) -> Option<roxmltree::Node<'a, 'input>> {
    node.descendants().find(|n| n.has_tag_name(name))
}

fn child_text(node: roxmltree::Node, name: &str) -> String {
    child(node, name).and_then(|n| n.text()).unwrap_or_default().to_owned()
}

/// The first Representation of `set`: its init and media segments (as its SegmentTemplate and
/// SegmentTimeline name them), read one after another as one file.
fn representation_file(out: &Path, set: roxmltree::Node) -> PathBuf {
    let representation = child(set, "Representation").expect("a Representation");
    let id = representation.attribute("id").expect("@id");
    let template = child(set, "SegmentTemplate").expect("a SegmentTemplate");
    let first: u64 = template.attribute("startNumber").map_or(1, |n| n.parse().unwrap());
    let init = template.attribute("initialization").expect("@initialization");
    let media = template.attribute("media").expect("@media");
    let count: u64 = template
        .descendants()
        .filter(|n| n.has_tag_name("S"))
        .map(|s| 1 + s.attribute("r").map_or(0, |r| r.parse::<u64>().unwrap()))
        .sum();
    let files: Vec<PathBuf> = std::iter::once(out.join(mpd::expand(init, id, 0)))
        .chain((first..first + count).map(|n| out.join(mpd::expand(media, id, n))))
        .collect();
    ffprobe::concat(&files)
}

#[test]
fn subtitle_streams_chooses_the_sources_text_streams() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let spec = sidecar(parent.path());
    let languages = |selection: &str| {
        let out = parent.path().join(format!("out-{selection}"));
        let args = [
            &FAST[..],
            &["--audio", "1", "--subtitles", &spec, "--subtitle-streams", selection],
        ]
        .concat();
        assert_success(&package("hls", title(), &out, &args));
        let master = read_master(&out.join("master.m3u8"));
        media_of(&master, "SUBTITLES")
            .iter()
            .map(|m| m.quoted("LANGUAGE").unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(languages("fre"), ["fr", "ja"], "the French stream and the sidecar");
    assert_eq!(languages("5,4"), ["fr", "en", "ja"], "in the order asked");
    assert_eq!(languages("none"), ["ja"], "the sidecar alone");
    assert_eq!(languages("all"), ["en", "fr", "ja"]);
    for (selection, says) in [
        ("7", "7: no such text subtitle stream"),
        ("ja", "ja: no such"),
        (
            "1",
            "1: no such text subtitle stream (the source's: #4 (subrip, eng), #5 (ass, fre))",
        ),
    ] {
        let out = parent.path().join("refused");
        let args = [&FAST[..], &["--subtitle-streams", selection]].concat();
        let line = assert_failure(&package("hls", title(), &out, &args), 2);
        assert!(line.contains(says) && line.contains("subtitle"), "{selection}: {line}");
        assert!(!out.exists(), "{selection}: the refused run left {}", out.display());
    }
}

#[test]
fn a_windows_1252_sidecar_is_read_with_a_note_and_a_binary_one_refused() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let latin = dir.path().join("fr.srt");
    std::fs::write(
        &latin,
        b"1\r\n00:00:00,500 --> 00:00:01,500\r\nCaf\xe9 \x93cr\xe8me\x94 \x96 l\xe0\r\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let spec = format!("{}:fr", latin.display());
    let args = [
        &FAST[..],
        &["--audio", "1", "--subtitle-streams", "none", "--subtitles", &spec],
    ]
    .concat();
    let output = package("hls", title(), &out, &args);
    assert_success(&output);
    assert_says(
        &output,
        &["fr.srt", "Windows-1252"],
        "that the sidecar was read as Windows-1252",
    );
    let master = read_master(&out.join("master.m3u8"));
    let uri = master
        .media
        .iter()
        .find_map(|m| m.quoted("URI").filter(|u| u.contains("subtitles")));
    let playlist = out.join(uri.expect("a subtitle rendition"));
    let segment = playlist.parent().unwrap().join(&read_media(&playlist).segments[0].uri);
    let cues = read_webvtt(&[segment]);
    assert_eq!(cues[0].cues[0].2, "Café “crème” – là");

    let binary = dir.path().join("binary.srt");
    let mut bytes = b"1\n00:00:00,500 --> 00:00:01,500\n\xe9".to_vec();
    bytes.extend([0x1b, 0x9d, 0x01, 0x02]);
    std::fs::write(&binary, bytes).unwrap();
    let refused = dir.path().join("refused");
    let spec = format!("{}:fr", binary.display());
    let line = assert_failure(&package("hls", title(), &refused, &["--subtitles", &spec]), 3);
    assert!(line.contains("binary.srt: not UTF-8, UTF-16 or Windows-1252"), "{line}");
    assert!(!refused.exists());
}

/// What a Rust caller does: the source's French stream and one English audio stream chosen, a
/// track of cues built in code added; the package has exactly those, each cue where it was put.
#[test]
fn a_rust_caller_chooses_streams_and_adds_a_track_built_in_code() {
    use stream_pack::package::audio::{AudioPick, AudioSelection};
    use stream_pack::package::subtitles::{Cue, TextTrack};

    let parent = tempfile::tempdir().expect("create a temporary folder");
    let mut options = stream_pack::PackageOptions::hls(title(), parent.path().join("out"));
    options.reps = "180".parse().expect("a rung");
    options.segment_duration = 1.0;
    options.encoder_preset = "ultrafast".into();
    options.audio = AudioSelection::Streams(vec![AudioPick::Index(1)]);
    options.subtitle_streams = AudioSelection::Streams(vec![AudioPick::Language("fr".into())]);
    let signs = TextTrack {
        language: "de".into(),
        name: "Schilder".into(),
        forced: true,
        hearing_impaired: false,
        cues: vec![
            Cue::new(600, 2_300, "Ausgang"),
            Cue {
                settings: "line:0 align:start".into(),
                ..Cue::new(2_500, 3_000, "<i>Gleis</i> 9")
            },
        ],
    };
    options.text_tracks.push(TextTrack {
        cues: vec![Cue::new(1_000, 500, "backwards")],
        ..signs.clone()
    });
    let refused = stream_pack::package(&options, &mut stream_pack::progress::Silent).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("\"Schilder\": cue 1: the cue ends before it starts"),
        "{refused}"
    );
    assert!(!options.output.exists(), "nothing is written for a refused track");

    options.text_tracks = vec![signs];
    stream_pack::package(&options, &mut stream_pack::progress::Silent).expect("the package");
    let master = read_master(&options.output.join("master.m3u8"));
    assert_eq!(media_of(&master, "AUDIO").len(), 1);
    let subtitles = media_of(&master, "SUBTITLES");
    let languages: Vec<&str> = subtitles.iter().filter_map(|m| m.quoted("LANGUAGE")).collect();
    assert_eq!(languages, ["fr", "de"]);
    assert_eq!(subtitles[1].quoted("NAME"), Some("Schilder"));
    assert_eq!(subtitles[1].plain("FORCED"), Some("YES"));
    let built = Text {
        language: "de",
        name: "Schilder",
        forced: true,
        hearing_impaired: false,
        cues: &[
            (0.6, 2.3, "Ausgang", ""),
            (2.5, 3.0, "<i>Gleis</i> 9", "line:0 align:start"),
        ],
    };
    let first_pts = first_video_pts(&options.output.join(&master.variants[0].uri));
    judge_cues(&options.output, subtitles[1].quoted("URI").unwrap(), &built, first_pts);
    judge_cues(
        &options.output,
        subtitles[0].quoted("URI").unwrap(),
        &TEXTS[1],
        first_pts,
    );
}
