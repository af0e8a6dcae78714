//! Issue 15, live: `--live` carries every track as a file does. A title with English stereo
//! 48 kHz, Japanese 5.1 44.1 kHz, an English commentary and a forced French SubRip stream, plus a
//! Japanese sidecar, read at its own pace: every audio rendition is listed in the live master
//! playlist and MPD, named, tagged and grouped as in VOD, and decodes (ffmpeg) to its stream's
//! channels and rate; the subtitles are WebVTT segments that slide out of the window with the
//! video's, every cue on the media timeline where the source has it (HLS) and at the period time
//! where the source has it (DASH, while live and once ended). Judged with ffprobe/ffmpeg and the
//! tests' own playlist, MPD and WebVTT readers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::live::{LiveRun, Seen, assert_closed, number as segment_number, read_live};
use crate::tracks_audio::decoded_seconds;
use crate::tracks_text::{period_grid, video_timeline};
use crate::util::cli;
use crate::util::ffprobe::{self, assert_decodes_cleanly, number};
use crate::util::m3u8::{Attributes, read_master};
use crate::util::mpd::{Mpd, SegmentTemplate, expand, parse_mpd};
use crate::util::webvtt;

/// What stream-pack adds to every timestamp (README: "Every output's timestamps are the source's
/// plus 1.4 s").
const TIMELINE_OFFSET: f64 = 1.4;
/// One frame of the test video (25 fps): how far a cue may move.
const FRAME: f64 = 0.04;
const VIDEO: [&str; 2] = ["180p", "144p"];

/// An audio rendition as the master playlist should list it.
struct Rendition {
    dir: &'static str,
    source_stream: usize,
    language: &'static str,
    name: &'static str,
    channels: u64,
    sample_rate: u64,
    commentary: bool,
}

const AUDIO: [Rendition; 4] = [
    Rendition {
        dir: "audio-en",
        source_stream: 0,
        language: "en",
        name: "English",
        channels: 2,
        sample_rate: 48_000,
        commentary: false,
    },
    Rendition {
        dir: "audio-ja",
        source_stream: 1,
        language: "ja",
        name: "Japanese",
        channels: 2,
        sample_rate: 44_100,
        commentary: false,
    },
    Rendition {
        dir: "audio-ja-5.1",
        source_stream: 1,
        language: "ja",
        name: "Japanese",
        channels: 6,
        sample_rate: 44_100,
        commentary: false,
    },
    Rendition {
        dir: "audio-en-2",
        source_stream: 2,
        language: "en",
        name: "Director's commentary",
        channels: 2,
        sample_rate: 48_000,
        commentary: true,
    },
];

/// Cues (start, end, text), seconds of the source.
type Cues = &'static [(f64, f64, &'static str)];
const FRENCH: Cues = &[
    (0.5, 1.5, "Bonjour"),
    (2.6, 3.4, "À travers la limite"),
    (4.5, 5.5, "Encore"),
];
const JAPANESE: Cues = &[(1.2, 2.3, "こんにちは"), (3.5, 4.2, "さようなら"), (5.2, 5.8, "終わり")];

/// A subtitle track as the manifests should list it.
struct Subtitles {
    dir: &'static str,
    language: &'static str,
    name: &'static str,
    forced: bool,
    cues: Cues,
}

/// The source's French SubRip stream (forced, titled) and the Japanese sidecar.
const SUBTITLES: [Subtitles; 2] = [
    Subtitles {
        dir: "subtitles-fr",
        language: "fr",
        name: "Panneaux",
        forced: true,
        cues: FRENCH,
    },
    Subtitles {
        dir: "subtitles-ja",
        language: "ja",
        name: "日本語",
        forced: false,
        cues: JAPANESE,
    },
];

fn srt(cues: Cues) -> String {
    let time = |t: f64| {
        let ms = (t * 1000.0).round() as u64;
        format!("00:00:{:02},{:03}", ms / 1000, ms % 1000)
    };
    cues.iter()
        .enumerate()
        .map(|(i, (start, end, text))| format!("{}\n{} --> {}\n{text}\n\n", i + 1, time(*start), time(*end)))
        .collect()
}

/// The generated title, 6 s, in Matroska (which keeps titles and dispositions), made once.
fn title() -> &'static Path {
    static TITLE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = TITLE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let french = dir.path().join("fr.srt");
        std::fs::write(&french, srt(FRENCH)).unwrap();
        let path = dir.path().join("title.mkv");
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=s=320x180:r=25:d=6"])
            .args(["-f", "lavfi", "-i", "sine=f=440:r=48000:d=6"])
            .args([
                "-f",
                "lavfi",
                "-i",
                "sine=f=660:r=44100:d=6,aformat=channel_layouts=5.1",
            ])
            .args(["-f", "lavfi", "-i", "sine=f=880:r=48000:d=6"])
            .arg("-i")
            .arg(&french)
            .args(["-map", "0", "-map", "1", "-map", "2", "-map", "3", "-map", "4"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", "srt"])
            .args(["-ac:a:0", "2", "-ac:a:2", "2"])
            .args(["-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=jpn"])
            .args(["-metadata:s:a:2", "language=eng"])
            .args(["-metadata:s:a:2", "title=Director's commentary"])
            .args(["-disposition:a:0", "default", "-disposition:a:1", "0"])
            .args(["-disposition:a:2", "comment"])
            .args(["-metadata:s:s:0", "language=fre", "-metadata:s:s:0", "title=Panneaux"])
            .args(["-disposition:s:0", "forced"])
            .arg(&path)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg could not make the title");
        (dir, path)
    });
    path
}

/// The Japanese sidecar written in `dir`, as `--subtitles` names it.
fn japanese_sidecar(dir: &Path) -> String {
    let sidecar = dir.join("ja.srt");
    std::fs::write(&sidecar, srt(JAPANESE)).unwrap();
    format!("{}:ja:日本語", sidecar.display())
}

/// What the reads of a live run saw besides each playlist's window: the video's segment durations
/// and each subtitle segment's text, by number.
#[derive(Default)]
struct Collected {
    video: BTreeMap<u64, f64>,
    subtitles: BTreeMap<(&'static str, u64), String>,
}

impl Collected {
    fn look(&mut self, out: &Path) {
        if let Some(playlist) = read_live(&out.join("180p/index.m3u8")) {
            for segment in &playlist.segments {
                self.video.insert(segment_number(&segment.uri), segment.duration);
            }
        }
        for Subtitles { dir, .. } in SUBTITLES {
            let Some(playlist) = read_live(&out.join(dir).join("index.m3u8")) else {
                continue;
            };
            for segment in &playlist.segments {
                // Listed, so written whole, and kept a target duration after it leaves.
                let file = out.join(dir).join(&segment.uri);
                self.subtitles
                    .entry((dir, segment_number(&segment.uri)))
                    .or_insert_with(|| std::fs::read_to_string(&file).unwrap());
            }
        }
    }

    /// Segment `n` of the video, seconds of the source: (start, end).
    fn bounds(&self, n: u64) -> (f64, f64) {
        assert!(
            (0..=n).all(|k| self.video.contains_key(&k)),
            "video segment {n} or one before it never seen"
        );
        let start: f64 = (0..n).map(|k| self.video[&k]).sum();
        (start, start + self.video[&n])
    }

    /// Every subtitle segment seen holds exactly the cues of `cues` that overlap its segment of
    /// the video, each on the media timeline where the source has it.
    fn judge_cues(&self, dir: &str, cues: Cues) {
        let numbers: Vec<u64> = self
            .subtitles
            .keys()
            .filter(|(d, _)| *d == dir)
            .map(|(_, n)| *n)
            .collect();
        let video: Vec<u64> = self.video.keys().copied().collect();
        assert_eq!(video, (0..6).collect::<Vec<_>>(), "6 one-second video segments seen");
        assert_eq!(numbers, video, "{dir}: a subtitle segment for every video segment");
        for n in numbers {
            let span = Span {
                first: n == 0,
                ..Span::of(self.bounds(n))
            };
            judge_hls_segment(&self.subtitles[&(dir, n)], span, cues, &format!("{dir}/{n}"));
        }
    }
}

/// Where a subtitle segment lies, seconds of the source.
#[derive(Clone, Copy)]
struct Span {
    from: f64,
    to: f64,
    /// Where the presentation begins: a cue that began before shows from there.
    opens: f64,
    /// The presentation's first segment, which also takes the cues before it.
    first: bool,
}

impl Span {
    fn of((from, to): (f64, f64)) -> Span {
        Span {
            from,
            to,
            opens: 0.0,
            first: false,
        }
    }
}

/// The cues `found` in one subtitle segment, (start, end, text) in seconds of the source, are
/// exactly the cues of `cues` that overlap the segment's span, each where the source has it
/// (within a frame).
fn judge_segment(found: &[(f64, f64, String)], span: Span, cues: Cues, what: &str) {
    for (start, end, text) in found {
        let (s, e, _) = cues
            .iter()
            .find(|c| c.2 == text)
            .unwrap_or_else(|| panic!("{what}: cue {text:?} is not in the source"));
        let s = s.max(span.opens);
        assert!(
            (start - s).abs() <= FRAME && (end - e).abs() <= FRAME,
            "{what}: {text:?} at {start}..{end}, source {s}..{e}"
        );
        assert!(
            *start < span.to + FRAME && (*end > span.from - FRAME || span.first),
            "{what}: {text:?} outside {}..{}",
            span.from,
            span.to
        );
    }
    for (start, end, text) in cues {
        if *start < span.to - FRAME && *end > span.from + FRAME {
            assert!(found.iter().any(|c| c.2 == *text), "{what}: {text:?} missing");
        }
    }
}

/// An HLS subtitle segment's `text`: its cues, put on the media timeline by its X-TIMESTAMP-MAP,
/// are the source's that overlap `span`.
fn judge_hls_segment(text: &str, span: Span, cues: Cues, what: &str) {
    let vtt = webvtt::parse(text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
    let found: Vec<(f64, f64, String)> = vtt
        .cues
        .iter()
        .map(|cue| {
            let (start, end) = vtt.media_times(cue);
            (start - TIMELINE_OFFSET, end - TIMELINE_OFFSET, cue.text.clone())
        })
        .collect();
    judge_segment(&found, span, cues, what);
}

/// The EXT-X-MEDIA of the master playlist of `TYPE` `kind`, as (GROUP-ID, URI, LANGUAGE, NAME,
/// DEFAULT, AUTOSELECT, CHANNELS or FORCED), sorted.
fn media_of(master: &[Attributes], kind: &str) -> Vec<[String; 7]> {
    let text = |value: Option<&str>| value.unwrap_or("").to_owned();
    let mut media: Vec<[String; 7]> = master
        .iter()
        .filter(|m| m.plain("TYPE") == Some(kind))
        .map(|m| {
            [
                text(m.quoted("GROUP-ID")),
                text(m.quoted("URI")),
                text(m.quoted("LANGUAGE")),
                text(m.quoted("NAME")),
                text(m.plain("DEFAULT")),
                text(m.plain("AUTOSELECT")),
                text(m.quoted("CHANNELS").or(m.plain("FORCED"))),
            ]
        })
        .collect();
    media.sort();
    media
}

fn row(group: &str, uri: &str, language: &str, name: &str, default: bool, autoselect: bool, last: &str) -> [String; 7] {
    let yes = |flag: bool| if flag { "YES" } else { "" }.to_owned();
    [
        group.into(),
        uri.into(),
        language.into(),
        name.into(),
        yes(default),
        yes(autoselect),
        last.into(),
    ]
}

/// The audio groups of Apple's authoring spec: in each, every stream once, in the group's layout
/// if it has it; English the default, the commentary not AUTOSELECT.
fn expected_audio_media() -> Vec<[String; 7]> {
    let mut rows = Vec::new();
    for (group, dirs) in [
        ("audio-stereo", ["audio-en", "audio-ja", "audio-en-2"]),
        ("audio-5.1", ["audio-en", "audio-ja-5.1", "audio-en-2"]),
    ] {
        for dir in dirs {
            let a = AUDIO.iter().find(|a| a.dir == dir).unwrap();
            let uri = format!("{dir}/index.m3u8");
            let default = a.source_stream == 0;
            rows.push(row(
                group,
                &uri,
                a.language,
                a.name,
                default,
                !a.commentary,
                &a.channels.to_string(),
            ));
        }
    }
    rows.sort();
    rows
}

fn expected_subtitle_media() -> Vec<[String; 7]> {
    let forced = |flag: bool| if flag { "YES" } else { "" };
    SUBTITLES
        .iter()
        .map(|t| {
            let uri = format!("{}/index.m3u8", t.dir);
            row("subs", &uri, t.language, t.name, false, true, forced(t.forced))
        })
        .collect()
}

/// Each audio rendition's playlist decodes cleanly to its channels and rate; with `whole`, to
/// as long as its source stream, within one AAC frame.
fn judge_audio(out: &Path, whole: bool) {
    for a in &AUDIO {
        let playlist = out.join(a.dir).join("index.m3u8");
        assert_decodes_cleanly(&playlist);
        let facts = ffprobe::streams_and_format(&playlist);
        let stream = &facts["streams"][0];
        assert_eq!(number(&stream["channels"]) as u64, a.channels, "{}", a.dir);
        assert_eq!(number(&stream["sample_rate"]) as u64, a.sample_rate, "{}", a.dir);
        if whole {
            let frame = 1024.0 / a.sample_rate as f64;
            let ours = decoded_seconds(&playlist, "a:0", a.sample_rate);
            let theirs = decoded_seconds(title(), &format!("a:{}", a.source_stream), a.sample_rate);
            assert!(
                (ours - theirs).abs() <= frame + 1e-6,
                "{}: {ours} s vs the source's {theirs} s",
                a.dir
            );
        }
    }
}

#[test]
fn a_live_window_slides_every_audio_rendition_and_subtitle_track_together() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("live");
    let sidecar = japanese_sidecar(root.path());
    let extra = ["--window", "3", "--delete-segments", "--subtitles", &sidecar];
    let mut run = LiveRun::start("hls", &[title().to_str().unwrap()], &out, &extra);
    let names: Vec<&str> = VIDEO
        .into_iter()
        .chain(AUDIO.iter().map(|a| a.dir))
        .chain(SUBTITLES.iter().map(|t| t.dir))
        .collect();
    let mut seen: BTreeMap<&str, Seen> = names.iter().map(|n| (*n, Seen::default())).collect();
    let mut collected = Collected::default();
    let mut masters = 0;
    let status = run.watch(Duration::from_secs(60), |out, now| {
        for (name, seen) in &mut seen {
            seen.look(&out.join(name), 3, now);
        }
        collected.look(out);
        if out.join("master.m3u8").exists() {
            let master = read_master(&out.join("master.m3u8"));
            assert_eq!(media_of(&master.media, "AUDIO"), expected_audio_media(), "while live");
            masters += 1;
        }
    });
    assert!(status.success(), "{}", run.stderr());
    assert!(masters >= 10, "read the live master {masters} times");
    for name in &names {
        let is_audio = name.starts_with("audio");
        // An audio rendition ends with its own last frames, which may make one segment more.
        let listed = if is_audio { 3..=4 } else { 3..=3 };
        let last = assert_closed(&out.join(name), &seen[name], listed);
        assert!(last.media_sequence >= 3, "{name}: 6 segments, the last 3 kept");
        if !name.starts_with("subtitles") {
            assert_decodes_cleanly(&out.join(name).join("index.m3u8"));
        }
    }
    let master = read_master(&out.join("master.m3u8"));
    assert_eq!(media_of(&master.media, "AUDIO"), expected_audio_media());
    assert_eq!(media_of(&master.media, "SUBTITLES"), expected_subtitle_media());
    assert_eq!(master.variants.len(), 4, "each rung with each audio group");
    for variant in &master.variants {
        assert_eq!(variant.attributes.quoted("SUBTITLES"), Some("subs"));
    }
    judge_audio(&out, false);
    for t in &SUBTITLES {
        collected.judge_cues(t.dir, t.cues);
    }
}

/// One read of a live MPD and of the subtitle segments it listed, as they were then.
struct MpdRead {
    text: String,
    mpd: Mpd,
    /// Each listed segment's text, by its path in the package.
    segments: BTreeMap<String, String>,
}

impl MpdRead {
    /// The MPD in `out` and the subtitle segments it lists, `None` before there is one or when
    /// the MPD was replaced while its segments were read (the read would mix two states).
    fn take(out: &Path) -> Option<MpdRead> {
        let text = std::fs::read_to_string(out.join("manifest.mpd")).ok()?;
        let mpd = parse_mpd(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let segments = text_segments(&mpd)
            .into_iter()
            .map(|path| {
                let file = out.join(&path);
                let body = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{} listed but not readable: {e}", file.display()));
                (path, body)
            })
            .collect();
        let unchanged = std::fs::read_to_string(out.join("manifest.mpd")).is_ok_and(|again| again == text);
        unchanged.then_some(MpdRead { text, mpd, segments })
    }
}

/// The path in the package of every subtitle segment `mpd` lists.
fn text_segments(mpd: &Mpd) -> Vec<String> {
    let texts = mpd
        .adaptation_sets
        .iter()
        .filter(|s| s.attributes.get("contentType") == Some("text"));
    texts
        .flat_map(|set| {
            let representation = &set.representations[0];
            let id = representation.attributes.get("id").expect("Representation@id");
            let template = &representation.segment_template;
            let first: u64 = template.attributes.parse("startNumber");
            let media = template.attributes.get("media").expect("SegmentTemplate@media");
            let count = template.segments().len() as u64;
            (first..first + count).map(move |n| expand(media, id, n))
        })
        .collect()
}

/// The top rung's SegmentTemplate: the first of the video AdaptationSet, which comes first
/// ([`judge_mpd_audio`]).
fn video_template(mpd: &Mpd) -> &SegmentTemplate {
    &mpd.adaptation_sets[0].representations[0].segment_template
}

/// The MPD lists a text AdaptationSet per subtitle track (lang, Label, Role) of WebVTT segments
/// (no init segment, no presentationTimeOffset: cue times are period time) numbered and cut as
/// the top video's, and each listed segment, as `read` held it, carries exactly the source's cues
/// that overlap it, at the period time where the source has them: the period time of a source
/// instant is found from the video in `out` as ffprobe reads its first frame in the source and
/// in the package, less the MPD's presentationTimeOffset.
fn judge_mpd_text(out: &Path, read: &MpdRead) {
    let (video_grid, ahead) = video_timeline(out, &read.mpd, title());
    let first_number: u64 = video_template(&read.mpd).attributes.parse("startNumber");
    // A period time plus `shift` is the source's time.
    let shift = -ahead;
    let texts: Vec<_> = read
        .mpd
        .adaptation_sets
        .iter()
        .filter(|s| s.attributes.get("contentType") == Some("text"))
        .collect();
    assert_eq!(texts.len(), SUBTITLES.len(), "a text AdaptationSet per subtitle track");
    for (set, track) in texts.into_iter().zip(&SUBTITLES) {
        assert_eq!(set.attributes.get("lang"), Some(track.language));
        assert_eq!(set.attributes.get("mimeType"), Some("text/vtt"));
        assert_eq!(set.labels, [track.name]);
        let role = if track.forced { "forced-subtitle" } else { "subtitle" };
        let [role_element] = &set.roles[..] else {
            panic!("one Role")
        };
        assert_eq!(role_element.get("schemeIdUri"), Some("urn:mpeg:dash:role:2011"));
        assert_eq!(role_element.get("value"), Some(role), "{}", track.dir);
        let representation = &set.representations[0];
        assert_eq!(representation.attributes.get("id"), Some(track.dir));
        let template = &representation.segment_template;
        assert_eq!(template.attributes.get("initialization"), None);
        assert_eq!(template.attributes.get("presentationTimeOffset").unwrap_or("0"), "0");
        assert_eq!(
            template.attributes.parse::<u64>("startNumber"),
            first_number,
            "{}",
            track.dir
        );
        let grid = period_grid(template, 0);
        assert_eq!(
            grid.len(),
            video_grid.len(),
            "{}: as many segments as the video",
            track.dir
        );
        for ((from, to), video) in grid.iter().zip(&video_grid) {
            assert!(
                (from - video.0).abs() < 1e-6 && (to - video.1).abs() < 1e-6,
                "{}: {grid:?} against the video's {video_grid:?}",
                track.dir
            );
        }
        let media = template.attributes.get("media").expect("SegmentTemplate@media");
        for (k, (from, to)) in grid.into_iter().enumerate() {
            let n = first_number + k as u64;
            let path = expand(media, track.dir, n);
            let text = &read.segments[&path];
            let vtt = webvtt::parse(text).unwrap_or_else(|e| panic!("{path}: {e}\n{text}"));
            let found: Vec<(f64, f64, String)> = vtt
                .cues
                .into_iter()
                .map(|cue| (cue.start + shift, cue.end + shift, cue.text))
                .collect();
            let span = Span {
                from: from + shift,
                to: to + shift,
                opens: shift,
                first: n == 0,
            };
            judge_segment(&found, span, track.cues, &format!("{path} in the MPD"));
        }
    }
}

/// Runs `dash --live --hls` with `extra` on the title and the Japanese sidecar, reading the MPD
/// and the subtitle segments it lists, and the HLS playlists into `collected`, as it runs; checks
/// that each dynamic MPD and the static one at the end list every track, audio and text, with
/// every text segment at the right period time, and that no segment a dynamic MPD listed changed
/// afterwards. Returns the MPD at the end and the startNumber of each dynamic MPD state.
fn run_dash_live(out: &Path, extra: &[&str], collected: &mut Collected) -> (MpdRead, Vec<u64>) {
    let sidecar = japanese_sidecar(out.parent().unwrap());
    let args = [&["--hls", "--subtitles", &sidecar][..], extra].concat();
    let mut run = LiveRun::start("dash", &[title().to_str().unwrap()], out, &args);
    // Each state of the dynamic MPD, once.
    let mut dynamic: Vec<MpdRead> = Vec::new();
    let mut dynamic_reads = 0;
    let status = run.watch(Duration::from_secs(60), |out, _| {
        collected.look(out);
        let Some(read) = MpdRead::take(out).filter(|r| r.mpd.attributes.get("type") == Some("dynamic")) else {
            return;
        };
        dynamic_reads += 1;
        judge_mpd_audio(&read.mpd);
        if dynamic.last().is_none_or(|last| last.text != read.text) {
            dynamic.push(read);
        }
    });
    let stderr = run.stderr();
    assert!(status.success(), "{stderr}");
    collected.look(out);
    assert!(dynamic_reads >= 5, "read the dynamic MPD {dynamic_reads} times");
    assert!(dynamic.len() >= 3, "{} states of the dynamic MPD", dynamic.len());
    let last = MpdRead::take(out).expect("the MPD at the end");
    assert_eq!(last.mpd.attributes.get("type"), Some("static"));
    judge_mpd_audio(&last.mpd);
    for read in dynamic.iter().chain([&last]) {
        judge_mpd_text(out, read);
    }
    // A segment a player may have fetched never changes.
    for (path, text) in dynamic.iter().flat_map(|read| &read.segments) {
        let now = std::fs::read_to_string(out.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&now, text, "{path} changed after an MPD listed it");
    }
    let starts = dynamic
        .iter()
        .map(|r| video_template(&r.mpd).attributes.parse("startNumber"))
        .collect();
    (last, starts)
}

#[test]
fn a_live_mpd_lists_every_audio_rendition_and_subtitle_track_and_the_hls_side_every_track() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("dash");
    let (last, _) = run_dash_live(&out, &[], &mut Collected::default());
    let video = video_template(&last.mpd);
    assert_eq!(video.segments().len(), 6, "an event lists every segment");
    let master = read_master(&out.join("master.m3u8"));
    assert_eq!(media_of(&master.media, "AUDIO"), expected_audio_media());
    assert_eq!(media_of(&master.media, "SUBTITLES"), expected_subtitle_media());
    // An event: every segment kept, so each rendition decodes to its source stream's length.
    judge_audio(&out, true);
    for t in &SUBTITLES {
        let playlist = read_live(&out.join(t.dir).join("index.m3u8")).unwrap();
        assert_eq!(playlist.playlist_type.as_deref(), Some("EVENT"));
        assert!(playlist.endlist, "{}: closed at the end", t.dir);
        assert_eq!(
            playlist.segments.len(),
            6,
            "{}: a segment per second of the source",
            t.dir
        );
    }
}

/// A window that slides and ends: the dynamic MPDs list the subtitles' newest segments with the
/// video's startNumber, their cue times counted from the source's start (the live period's);
/// the static MPD at the end starts its period at the first segment still listed, and the
/// subtitle segments it lists count their cue times from there, while the files the dynamic MPDs
/// and the HLS playlists listed are left as they were (the HLS ones still put every cue on the
/// media timeline where the source has it).
#[test]
fn a_live_window_moves_the_subtitles_with_the_dash_period() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("window");
    let mut collected = Collected::default();
    let (last, starts) = run_dash_live(&out, &["--window", "3"], &mut collected);
    assert!(
        starts.first() == Some(&0) && starts.iter().any(|n| *n > 0),
        "the dynamic MPDs' window moved: {starts:?}"
    );
    let video = video_template(&last.mpd);
    assert_eq!(
        video.attributes.parse::<u64>("startNumber"),
        3,
        "the last 3 of 6 segments"
    );
    let pto: u64 = video.attributes.parse("presentationTimeOffset");
    assert_eq!(
        pto,
        video.segments()[0].0,
        "the period starts at the first listed segment"
    );
    for t in &SUBTITLES {
        let playlist = read_live(&out.join(t.dir).join("index.m3u8")).unwrap();
        assert!(playlist.endlist, "{}: closed at the end", t.dir);
        let numbers: Vec<u64> = playlist.segments.iter().map(|s| segment_number(&s.uri)).collect();
        assert_eq!(numbers, [3, 4, 5], "{}", t.dir);
        for n in numbers {
            let text = std::fs::read_to_string(out.join(t.dir).join(format!("segment{n:05}.vtt"))).unwrap();
            judge_hls_segment(
                &text,
                Span::of(collected.bounds(n)),
                t.cues,
                &format!("{}/{n} at the end", t.dir),
            );
        }
    }
}

/// The MPD has the video, an AdaptationSet per audio rendition, each in its language, named, in
/// its role, at its rate and channels, then the subtitles' (judged by [`judge_mpd_text`]).
fn judge_mpd_audio(mpd: &Mpd) {
    let kinds: Vec<_> = mpd
        .adaptation_sets
        .iter()
        .map(|s| s.attributes.get("contentType"))
        .collect();
    assert_eq!(
        kinds,
        [
            Some("video"),
            Some("audio"),
            Some("audio"),
            Some("audio"),
            Some("audio"),
            Some("text"),
            Some("text")
        ]
    );
    let roles = ["main", "alternate", "alternate", "commentary"];
    for (set, (a, role)) in mpd.adaptation_sets[1..].iter().zip(AUDIO.iter().zip(roles)) {
        let representation = &set.representations[0];
        assert_eq!(representation.attributes.get("id"), Some(a.dir));
        assert_eq!(set.attributes.get("lang"), Some(a.language));
        assert_eq!(set.labels, [a.name]);
        assert_eq!(set.roles[0].get("value"), Some(role), "{}", a.dir);
        let rate = a.sample_rate.to_string();
        assert_eq!(representation.attributes.get("audioSamplingRate"), Some(rate.as_str()));
        let channels = representation
            .audio_channel_configuration
            .as_ref()
            .expect("AudioChannelConfiguration");
        assert_eq!(
            channels.get("value"),
            Some(a.channels.to_string().as_str()),
            "{}",
            a.dir
        );
    }
}

#[test]
fn live_audio_is_chosen_as_in_vod() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("chosen");
    let source = title().to_str().unwrap();
    let extra = ["--audio", "3,2", "--default-audio", "ja", "--surround", "none"];
    let mut run = LiveRun::start("hls", &[source], &out, &extra);
    let status = run.watch(Duration::from_secs(60), |_, _| {});
    assert!(status.success(), "{}", run.stderr());
    let master = read_master(&out.join("master.m3u8"));
    let expected = vec![
        row(
            "audio",
            "audio-en/index.m3u8",
            "en",
            "Director's commentary",
            false,
            false,
            "2",
        ),
        row("audio", "audio-ja/index.m3u8", "ja", "Japanese", true, true, "2"),
    ];
    assert_eq!(media_of(&master.media, "AUDIO"), expected);
    let facts = ffprobe::streams_and_format(&out.join("audio-ja/index.m3u8"));
    assert_eq!(number(&facts["streams"][0]["channels"]), 2.0);
    assert_eq!(number(&facts["streams"][0]["sample_rate"]), 44_100.0);
    // A stream that is not there is refused before anything is written.
    let refused = root.path().join("refused");
    let output = cli::hls(title(), &refused, &["--live", "--audio", "7"]);
    let message = cli::assert_failure(&output, 2);
    assert!(message.contains("--audio 7"), "{message}");
    assert!(!refused.exists());
}

/// Waits (up to 10 s) until something listens on UDP `port`, as /proc/net/udp shows it.
fn wait_for_udp_listener(port: u16) {
    let local = format!(":{port:04X} ");
    for _ in 0..100 {
        let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
        if table.lines().any(|line| {
            line.split_whitespace()
                .nth(1)
                .is_some_and(|a| format!("{a} ").contains(&local))
        }) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listened on UDP port {port}");
}

#[test]
fn a_live_mpeg_ts_stream_brings_every_audio_stream_over_the_network() {
    // RTMP carries one audio stream; MPEG-TS over UDP, as broadcast contribution links send it,
    // carries them all (languages, not titles or dispositions).
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("udp://127.0.0.1:{port}");
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("udp");
    let mut run = LiveRun::start(
        "hls",
        &[&url],
        &out,
        &["--window", "3", "--delete-segments", "--stall-timeout", "2s"],
    );
    wait_for_udp_listener(port);
    let mut sender = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re"])
        .arg("-i")
        .arg(title())
        .args([
            "-map",
            "0:v",
            "-map",
            "0:a",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "copy",
        ])
        .args(["-f", "mpegts"])
        .arg(format!("{url}?pkt_size=1316"))
        .spawn()
        .expect("run ffmpeg");
    let names: Vec<&str> = VIDEO.into_iter().chain(AUDIO.iter().map(|a| a.dir)).collect();
    let mut seen: BTreeMap<&str, Seen> = names.iter().map(|n| (*n, Seen::default())).collect();
    let status = run.watch(Duration::from_secs(60), |out, now| {
        for (name, seen) in &mut seen {
            seen.look(&out.join(name), 3, now);
        }
    });
    assert!(sender.wait().unwrap().success(), "ffmpeg could not send the title");
    let stderr = run.stderr();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("sent nothing for 2 s"),
        "the stream ends by going silent: {stderr}"
    );
    for name in &names {
        let listed = if name.starts_with("audio") { 3..=4 } else { 3..=3 };
        assert_closed(&out.join(name), &seen[name], listed);
    }
    let master = read_master(&out.join("master.m3u8"));
    let languages: Vec<(Option<&str>, Option<&str>, Option<&str>)> = master
        .media
        .iter()
        .filter(|m| m.quoted("GROUP-ID") == Some("audio-5.1"))
        .map(|m| (m.quoted("URI"), m.quoted("LANGUAGE"), m.quoted("CHANNELS")))
        .collect();
    assert_eq!(
        languages,
        [
            (Some("audio-en/index.m3u8"), Some("en"), Some("2")),
            (Some("audio-ja-5.1/index.m3u8"), Some("ja"), Some("6")),
            (Some("audio-en-2/index.m3u8"), Some("en"), Some("2")),
        ]
    );
    judge_audio(&out, false);
}
