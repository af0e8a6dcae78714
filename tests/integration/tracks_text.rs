//! Subtitles: sidecar files (and the source's text streams) as segmented WebVTT renditions, judged
//! with the tests' own WebVTT reader and playlist parser: every cue on the media timeline where
//! the source has it, every subtitle segment cut where the video's is.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::cli::{assert_failure, assert_says, assert_success, package};
use crate::util::ffprobe::{concat, number, probe};
use crate::util::m3u8::{MediaPlaylist, read_master, read_media};
use crate::util::{mpd, webvtt};

/// One frame of the test video (25 fps): how far a cue may move.
const FRAME: f64 = 0.04;
const SEGMENT: &str = "1.5";

/// A subtitle track as the source or sidecar has it: cues of (start, end, text as WebVTT says it).
pub(crate) struct Expected {
    pub(crate) language: &'static str,
    pub(crate) name: &'static str,
    pub(crate) forced: bool,
    pub(crate) hearing_impaired: bool,
    pub(crate) cues: Vec<(f64, f64, &'static str)>,
}

/// The source's English subtitles: a SubRip stream (hearing impaired) in Matroska, mov_text in MP4.
pub(crate) fn english() -> (Expected, &'static str) {
    let expected = Expected {
        language: "en",
        name: "English",
        forced: false,
        hearing_impaired: true,
        cues: vec![
            (0.5, 1.2, "<i>Hello</i> &amp; bye"),
            (1.3, 3.4, "Across two cuts"),
            (3.6, 3.9, "Last"),
        ],
    };
    (
        expected,
        "1\n00:00:00,500 --> 00:00:01,200\n<i>Hello</i> & bye\n\n2\n00:00:01,300 --> 00:00:03,400\nAcross two cuts\n\n3\n00:00:03,600 --> 00:00:03,900\nLast\n",
    )
}

/// The source's forced French subtitles (signs), with a title.
pub(crate) fn french() -> (Expected, &'static str) {
    let expected = Expected {
        language: "fr",
        name: "Panneaux",
        forced: true,
        hearing_impaired: false,
        cues: vec![(2.0, 2.5, "Boulangerie")],
    };
    (expected, "1\n00:00:02,000 --> 00:00:02,500\nBoulangerie\n")
}

pub(crate) fn japanese() -> Expected {
    Expected {
        language: "ja",
        name: "日本語",
        forced: false,
        hearing_impaired: false,
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

/// 4 s of 320x180 video at 25 fps and a tone, in `name` (its extension picks the container), with
/// a subtitle stream of each `(SubRip text, ffmpeg options)` in `codec`.
fn make_source(dir: &Path, name: &str, codec: &str, subtitles: &[(&str, &[&str])]) -> PathBuf {
    let path = dir.join(name);
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg
        .args(["-v", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"])
        .args(["-f", "lavfi", "-i", "sine=duration=4:sample_rate=48000"]);
    for (index, (text, _)) in subtitles.iter().enumerate() {
        let file = dir.join(format!("{name}.{index}.srt"));
        std::fs::write(&file, text).unwrap();
        ffmpeg.arg("-i").arg(file);
    }
    ffmpeg.args(["-map", "0", "-map", "1"]);
    for (index, (_, options)) in subtitles.iter().enumerate() {
        ffmpeg.args(["-map", &(index + 2).to_string()]).args(*options);
    }
    ffmpeg.args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-c:s", codec]);
    let status = ffmpeg.arg(&path).status().expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {name}");
    path
}

/// Packages `source` with `command` into `out` in one 180p rendition cut every SEGMENT seconds,
/// with `extra` options; it must succeed.
pub(crate) fn package_small(command: &str, source: &Path, out: &Path, extra: &[&str]) {
    let args = [&["--reps", "180", "--segment-duration", SEGMENT][..], extra].concat();
    assert_success(&package(command, source, out, &args));
}

/// The Japanese sidecar written in `dir`, as `--subtitles` names it.
pub(crate) fn japanese_sidecar(dir: &Path) -> String {
    let sidecar = dir.join("ja.srt");
    std::fs::write(&sidecar, srt(&japanese().cues)).unwrap();
    format!("{}:ja:日本語", sidecar.display())
}

/// A Matroska title with the English (hearing impaired) and forced French SubRip streams.
pub(crate) fn title_mkv(dir: &Path) -> PathBuf {
    let english: &[&str] = &[
        "-metadata:s:s:0",
        "language=eng",
        "-disposition:s:0",
        "hearing_impaired",
    ];
    let french: &[&str] = &[
        "-metadata:s:s:1",
        "language=fre",
        "-metadata:s:s:1",
        "title=Panneaux",
        "-disposition:s:1",
        "forced",
    ];
    make_source(
        dir,
        "title.mkv",
        "srt",
        &[(self::english().1, english), (self::french().1, french)],
    )
}

/// `expected` with each cue's times as the source file has them (ffprobe's packet times of its
/// subtitle stream `index`, one packet a cue), which a container may have moved a little.
pub(crate) fn as_stored(source: &Path, index: usize, expected: Expected) -> Expected {
    let packets = probe(
        &[
            "-select_streams",
            &format!("s:{index}"),
            "-show_entries",
            "packet=pts_time,duration_time,size",
            "-show_packets",
        ],
        source,
    );
    // MP4 fills the gaps between cues with empty samples (mov_text: a 2-byte length of 0).
    let packets: Vec<_> = packets["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter(|p| number(&p["size"]) > 2.0)
        .cloned()
        .collect();
    assert_eq!(
        packets.len(),
        expected.cues.len(),
        "a packet per cue in {}",
        source.display()
    );
    let cues = expected
        .cues
        .iter()
        .zip(&packets)
        .map(|((_, _, text), packet)| {
            let start = number(&packet["pts_time"]);
            (start, start + number(&packet["duration_time"]), *text)
        })
        .collect();
    Expected { cues, ..expected }
}

/// The subtitle playlist of `language` is cut like the video's, and every cue of `expected` is on
/// the media timeline where the source has it, in every segment it overlaps: the segment's
/// `X-TIMESTAMP-MAP` puts its cues on the media timeline, which is the source's as far ahead as
/// ffprobe reads the video's first frame in the first segment and in `source`. Returns the
/// segment files, in order.
pub(crate) fn judge(out: &Path, source: &Path, expected: &Expected) -> Vec<PathBuf> {
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
    let sdh = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound";
    assert_eq!(media.quoted("CHARACTERISTICS") == Some(sdh), expected.hearing_impaired);
    assert_ne!(media.plain("DEFAULT"), Some("YES"), "subtitles are not on by default");
    let uri = media.quoted("URI").expect("a URI");
    let subtitles = read_media(&out.join(uri));
    let video_uri = out.join(&master.variants[0].uri);
    let video = read_media(&video_uri);
    assert_eq!(
        boundaries(&subtitles),
        boundaries(&video),
        "subtitle segments end where the video's do"
    );
    assert_eq!(subtitles.target_duration, video.target_duration);
    let video_dir = video_uri.parent().unwrap();
    let first: Vec<PathBuf> = video
        .map
        .iter()
        .chain([&video.segments[0].uri])
        .map(|file| video_dir.join(file))
        .collect();
    let source_start = first_video_time(source);
    let ahead = first_video_time(&concat(&first)) - source_start;
    let grid: Vec<(f64, f64)> = boundaries(&video)
        .into_iter()
        .map(|(from, to)| (from + source_start, to + source_start))
        .collect();
    let dir = out.join(uri).parent().unwrap().to_owned();
    let files: Vec<PathBuf> = subtitles.segments.iter().map(|s| dir.join(&s.uri)).collect();
    let segments: Vec<Vec<(f64, f64, String)>> = files
        .iter()
        .map(|file| {
            let segment = read_webvtt(file);
            let on_source = |cue: &webvtt::Cue| {
                let (start, end) = segment.media_times(cue);
                (start - ahead, end - ahead, cue.text.clone())
            };
            segment.cues.iter().map(on_source).collect()
        })
        .collect();
    judge_cues(
        &segments,
        &grid,
        &expected.cues,
        &format!("{uri} in the master playlist"),
    );
    files
}

/// A WebVTT file as the tests' reader reads it.
fn read_webvtt(file: &Path) -> webvtt::WebVtt {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    webvtt::parse(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", file.display()))
}

/// Every cue of each segment (start, end, text) lies in that segment of `grid` (within a frame)
/// and is a cue of `cues` at its times; every cue of `cues` is in each segment it overlaps. All
/// times in seconds on one timeline.
fn judge_cues(segments: &[Vec<(f64, f64, String)>], grid: &[(f64, f64)], cues: &[(f64, f64, &str)], what: &str) {
    assert_eq!(segments.len(), grid.len(), "{what}: a WebVTT file per segment");
    for (index, (segment, (from, to))) in segments.iter().zip(grid).enumerate() {
        for (start, end, text) in segment {
            assert!(
                *start < to + FRAME && *end > from - FRAME,
                "{what}: {text:?} at {start}..{end} is outside segment {index} ({from}..{to})"
            );
            let source = cues.iter().find(|c| c.2 == text);
            let (s, e, _) = source.unwrap_or_else(|| panic!("{what}: {text:?} is not in the source"));
            assert!(
                (start - s).abs() <= FRAME && (end - e).abs() <= FRAME,
                "{what}: {text:?} at {start}..{end}, the source has it at {s}..{e}"
            );
        }
    }
    for (start, end, text) in cues {
        let overlapped: Vec<usize> = (0..grid.len())
            .filter(|i| *start < grid[*i].1 && *end > grid[*i].0)
            .collect();
        assert!(!overlapped.is_empty(), "{what}: {text:?} falls in no segment");
        for i in overlapped {
            assert!(
                segments[i].iter().any(|c| c.2 == *text),
                "{what}: {text:?} missing from segment {i}"
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
    let source = make_source(dir.path(), "plain.mp4", "mov_text", &[]);
    let spec = japanese_sidecar(dir.path());
    for format in ["ts", "fmp4"] {
        let out = dir.path().join(format!("out-{format}"));
        package_small("hls", &source, &out, &["--format", format, "--subtitles", &spec]);
        judge(&out, &source, &japanese());
    }
}

#[test]
fn bad_sidecars_are_one_line_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), "plain.mp4", "mov_text", &[]);
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

#[test]
fn the_sources_subrip_and_mov_text_streams_become_webvtt_beside_a_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let spec = japanese_sidecar(dir.path());
    let mkv = title_mkv(dir.path());
    let out = dir.path().join("mkv");
    package_small("hls", &mkv, &out, &["--subtitles", &spec]);
    judge(&out, &mkv, &as_stored(&mkv, 0, english().0));
    judge(&out, &mkv, &as_stored(&mkv, 1, french().0));
    judge(&out, &mkv, &japanese());

    let (en, en_srt) = english();
    let mp4 = make_source(
        dir.path(),
        "title.mp4",
        "mov_text",
        &[(en_srt, &["-metadata:s:s:0", "language=eng"])],
    );
    let en = Expected {
        hearing_impaired: false,
        ..as_stored(&mp4, 0, en)
    };
    for (command, extra) in [("hls", ["--format", "fmp4"]), ("dash", ["--hls", "--force"])] {
        let out = dir.path().join(format!("mp4-{command}"));
        package_small(command, &mp4, &out, &extra);
        judge(&out, &mp4, &en);
    }
    let out = dir.path().join("mp4-dash");
    assert_eq!(
        judge(&out, &mp4, &en),
        judge_dash(&out, &mp4, &en),
        "HLS and DASH list the same WebVTT files"
    );
}

#[test]
fn dash_has_a_text_adaptation_set_per_track_of_webvtt_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mkv = title_mkv(dir.path());
    let spec = japanese_sidecar(dir.path());
    let out = dir.path().join("out");
    package_small("dash", &mkv, &out, &["--subtitles", &spec]);
    judge_dash(&out, &mkv, &as_stored(&mkv, 0, english().0));
    judge_dash(&out, &mkv, &as_stored(&mkv, 1, french().0));
    judge_dash(&out, &mkv, &japanese());
}

/// A source whose video starts 0.3 s after its audio: the DASH period starts with the video, and
/// the subtitle segments count their cue times from there, the same files for HLS and DASH.
#[test]
fn subtitles_count_from_a_period_that_starts_after_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let late = dir.path().join("late.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-itsoffset", "0.3"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4"])
        .args(["-f", "lavfi", "-i", "sine=duration=4.3:sample_rate=48000"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
        .arg(&late)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make late.mkv");
    let (english, english_srt) = english();
    let sidecar = dir.path().join("en.srt");
    std::fs::write(&sidecar, english_srt).unwrap();
    let spec = format!("{}:en:English", sidecar.display());
    let out = dir.path().join("out");
    package_small("dash", &late, &out, &["--hls", "--subtitles", &spec]);
    let english = Expected {
        hearing_impaired: false,
        ..english
    };
    let shared = judge_dash(&out, &late, &english);
    assert_eq!(
        judge(&out, &late, &english),
        shared,
        "HLS and DASH list the same WebVTT files"
    );
    let folder = shared[0].parent().unwrap();
    let mut held: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    held.sort();
    let mut listed = shared.clone();
    listed.push(folder.join("index.m3u8"));
    listed.sort();
    assert_eq!(
        held, listed,
        "the subtitle folder holds the segments and the playlist, nothing else"
    );
}

/// The MPD has a text AdaptationSet for `expected` (lang, Label, Role, Accessibility) of WebVTT
/// segments cut where the video's are, and every cue of `expected` is in each segment it
/// overlaps, at the period time where the source has it. Segmented WebVTT cue times are period
/// time to DASH players; the period time of a source instant is found from the video as ffprobe
/// reads its first frame in the source and in the package, less the MPD's
/// presentationTimeOffset. Returns the segment files, in order.
pub(crate) fn judge_dash(out: &Path, source: &Path, expected: &Expected) -> Vec<PathBuf> {
    let mpd = mpd::read_mpd(&out.join("manifest.mpd"));
    let set = mpd
        .adaptation_sets
        .iter()
        .find(|s| {
            s.attributes.get("contentType") == Some("text")
                && s.attributes.get("lang") == Some(expected.language)
                && s.labels == [expected.name]
        })
        .unwrap_or_else(|| panic!("no text AdaptationSet {} {}", expected.language, expected.name));
    assert_eq!(set.attributes.get("mimeType"), Some("text/vtt"));
    let [role] = &set.roles[..] else { panic!("one Role") };
    assert_eq!(role.get("schemeIdUri"), Some("urn:mpeg:dash:role:2011"));
    let wanted = if expected.forced { "forced-subtitle" } else { "subtitle" };
    assert_eq!(role.get("value"), Some(wanted));
    let accessibility = set.accessibility.first().and_then(|a| a.get("value"));
    assert_eq!(accessibility == Some("2"), expected.hearing_impaired);
    let [text] = &set.representations[..] else {
        panic!("one Representation")
    };
    let template = &text.segment_template.attributes;
    assert_eq!(
        template.get("initialization"),
        None,
        "WebVTT segments need no init segment"
    );
    assert_eq!(
        template.get("presentationTimeOffset").unwrap_or("0"),
        "0",
        "cue times are period time"
    );
    let grid = period_grid(&text.segment_template, 0);
    let (video_grid, offset) = video_timeline(out, &mpd, source);
    assert_eq!(grid.len(), video_grid.len(), "a WebVTT segment per video segment");
    for (text, video) in grid.iter().zip(&video_grid) {
        assert!(
            (text.0 - video.0).abs() < 1e-6 && (text.1 - video.1).abs() < 1e-6,
            "WebVTT segments {grid:?}, video segments {video_grid:?}"
        );
    }
    let id = text.attributes.get("id").expect("Representation@id");
    let media = template.get("media").expect("SegmentTemplate@media");
    let files: Vec<PathBuf> = (0..grid.len() as u64)
        .map(|number| out.join(mpd::expand(media, id, number)))
        .collect();
    let segments: Vec<Vec<(f64, f64, String)>> = files
        .iter()
        .map(|file| {
            let cues = read_webvtt(file).cues.into_iter();
            cues.map(|cue| (cue.start, cue.end, cue.text)).collect()
        })
        .collect();
    // The source's cues in period time; the period shows nothing before its start.
    let cues: Vec<(f64, f64, &str)> = expected
        .cues
        .iter()
        .map(|(start, end, text)| ((start + offset).max(0.0), end + offset, *text))
        .collect();
    judge_cues(&segments, &grid, &cues, &format!("{id} in the MPD"));
    files
}

/// Each segment's (start, end) in seconds of period time: its SegmentTimeline less `offset` ticks.
pub(crate) fn period_grid(template: &mpd::SegmentTemplate, offset: u64) -> Vec<(f64, f64)> {
    let timescale: f64 = template.attributes.parse("timescale");
    let seconds = |ticks: u64| (ticks as f64 - offset as f64) / timescale;
    template
        .segments()
        .into_iter()
        .map(|(t, d)| (seconds(t).max(0.0), seconds(t + d)))
        .collect()
}

/// The video's segments in period time, and how far period time is ahead of the source's time:
/// ffprobe's first video frame in the package, less the presentationTimeOffset, less the same
/// frame's time in the source.
pub(crate) fn video_timeline(out: &Path, mpd: &mpd::Mpd, source: &Path) -> (Vec<(f64, f64)>, f64) {
    let video = mpd
        .adaptation_sets
        .iter()
        .find(|s| s.attributes.get("contentType") == Some("video"))
        .expect("a video AdaptationSet");
    let representation = &video.representations[0];
    let template = &representation.segment_template;
    let id = representation.attributes.get("id").expect("Representation@id");
    let presentation_offset: u64 = template.attributes.parse("presentationTimeOffset");
    let timescale: f64 = template.attributes.parse("timescale");
    let files = [
        out.join(mpd::expand(
            template.attributes.get("initialization").expect("@initialization"),
            id,
            0,
        )),
        out.join(mpd::expand(template.attributes.get("media").expect("@media"), id, 0)),
    ];
    let in_package = first_video_time(&concat(&files)) - presentation_offset as f64 / timescale;
    let grid = period_grid(template, presentation_offset);
    (grid, in_package - first_video_time(source))
}

/// The earliest presentation time of the first video stream, as ffprobe reads it.
fn first_video_time(file: &Path) -> f64 {
    let packets = probe(
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-show_packets",
        ],
        file,
    );
    let times = packets["packets"].as_array().expect("packets").iter();
    times.map(|p| number(&p["pts_time"])).fold(f64::INFINITY, f64::min)
}

/// A PGS (Blu-ray) subtitle stream of two empty display sets, each a presentation composition
/// segment and an end segment: what ffmpeg cannot encode from text, written by hand.
fn pgs() -> Vec<u8> {
    let segment = |pts: u32, kind: u8, data: &[u8]| {
        let mut bytes = b"PG".to_vec();
        bytes.extend(pts.to_be_bytes());
        bytes.extend(0u32.to_be_bytes());
        bytes.push(kind);
        bytes.extend((data.len() as u16).to_be_bytes());
        bytes.extend(data);
        bytes
    };
    let composition = |number: u8, state: u8| [1, 64, 0, 180, 0x10, 0, number, state, 0, 0, 0];
    [
        segment(90_000, 0x16, &composition(0, 0x80)),
        segment(90_000, 0x80, &[]),
        segment(180_000, 0x16, &composition(1, 0)),
        segment(180_000, 0x80, &[]),
    ]
    .concat()
}

#[test]
fn picture_subtitles_are_left_out_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let plain = make_source(dir.path(), "plain.mp4", "mov_text", &[]);
    let sup = dir.path().join("signs.sup");
    std::fs::write(&sup, pgs()).unwrap();
    let with_pgs = dir.path().join("pgs.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(&plain)
        .arg("-i")
        .arg(&sup)
        .args(["-map", "0", "-map", "1", "-c", "copy"])
        .arg(&with_pgs)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not mux the PGS stream");
    let out = dir.path().join("out");
    let output = package("hls", &with_pgs, &out, &["--reps", "180"]);
    assert_success(&output);
    assert_says(
        &output,
        &["subtitle stream #2", "hdmv_pgs_subtitle", "left out"],
        "that the PGS stream was left out",
    );
    let master = read_master(&out.join("master.m3u8"));
    assert!(!master.media.iter().any(|m| m.plain("TYPE") == Some("SUBTITLES")));
    assert!(
        master
            .variants
            .iter()
            .all(|v| v.attributes.quoted("SUBTITLES").is_none())
    );
}

#[test]
fn utf16_and_ass_sidecars_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let source = make_source(dir.path(), "plain.mp4", "mov_text", &[]);
    let utf16 = dir.path().join("ja16.srt");
    let text = srt(&japanese().cues);
    let units = [0xfeff_u16].into_iter().chain(text.encode_utf16());
    std::fs::write(&utf16, units.flat_map(u16::to_le_bytes).collect::<Vec<u8>>()).unwrap();
    let ass = dir.path().join("de.ass");
    std::fs::write(
        &ass,
        "[Script Info]\nScriptType: v4.00+\n\n[Events]\n\
         Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n\
         Dialogue: 0,0:00:02.50,0:00:03.20,Default,,0,0,0,,{\\an8}Oben {\\i1}Schild{\\i0}\n\
         Dialogue: 0,0:00:00.40,0:00:01.10,Default,,0,0,0,,Erste\\NZeile zwei\n",
    )
    .unwrap();
    let german = Expected {
        language: "de",
        name: "Deutsch",
        forced: false,
        hearing_impaired: false,
        cues: vec![(0.4, 1.1, "Erste\nZeile zwei"), (2.5, 3.2, "Oben <i>Schild</i>")],
    };
    let specs = [
        format!("{}:ja:日本語", utf16.display()),
        format!("{}:de:Deutsch", ass.display()),
    ];
    let out = dir.path().join("out");
    let args = ["--subtitles", &specs[0], "--subtitles", &specs[1]];
    package_small("hls", &source, &out, &args);
    judge(&out, &source, &japanese());
    judge(&out, &source, &german);
}
