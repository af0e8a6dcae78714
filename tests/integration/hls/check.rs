//! Verifies a whole HLS package against the rules of DESIGN.md §3 and the CLI contract,
//! measuring everything independently: playlists with `util::m3u8`, segments with
//! ffprobe, codec strings from the SPS, bit rates from file sizes.

use crate::util::ffprobe::{self, Track};
use crate::util::file_names;
use crate::util::h264::avc1_codec;
use crate::util::m3u8::{self, MasterPlaylist, MediaPlaylist, Variant};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// MPEG-TS timestamps tick at 90 kHz.
const TICKS: f64 = 90_000.0;
/// How far EXTINF may be from the measured duration, in seconds.
const EXTINF_SLACK: f64 = 0.001;
/// How far BANDWIDTH and AVERAGE-BANDWIDTH may be from the measured rates, relatively.
const RATE_SLACK: f64 = 0.01;
/// AAC frames hold 1024 samples.
const AAC_FRAME: f64 = 1024.0;

/// What a package made from `source` must contain.
pub struct Expect<'a> {
    pub source: &'a Path,
    pub segment_duration: f64,
    /// The (width, height) of every video rendition, in any order; empty for audio only.
    pub rungs: &'a [(u32, u32)],
    pub audio: bool,
}

/// A checked package, for tests that look further (bit rates, sample rates).
pub struct Package {
    pub video: Vec<Rendition>,
    pub audio: Option<Rendition>,
}

/// One folder of the package: its media playlist and its measured segments.
pub struct Rendition {
    /// The folder's name, e.g. `360p` or `audio`.
    pub dir: String,
    folder: PathBuf,
    pub playlist: MediaPlaylist,
    pub segments: Vec<Segment>,
}

pub struct Segment {
    pub file_bytes: u64,
    /// Bytes of the elementary stream (the segment's packets), without TS overhead.
    pub payload_bytes: u64,
    pub extinf: f64,
    /// First presentation timestamp, in 90 kHz ticks.
    pub start: i64,
    /// Duration measured by ffprobe, in seconds.
    pub measured: f64,
    /// ffprobe's description of the segment's only stream.
    pub stream: Value,
}

impl Rendition {
    /// Bit rate of the elementary stream over the whole rendition, in bit/s.
    pub fn payload_bitrate(&self) -> f64 {
        let bytes: u64 = self.segments.iter().map(|s| s.payload_bytes).sum();
        bytes as f64 * 8.0 / self.duration()
    }

    fn duration(&self) -> f64 {
        self.segments.iter().map(|s| s.extinf).sum()
    }

    fn extinfs(&self) -> Vec<f64> {
        self.segments.iter().map(|s| s.extinf).collect()
    }
}

/// Facts of the source, from ffprobe.
struct Source {
    video: Option<SourceVideo>,
    sample_rate: Option<u64>,
}

struct SourceVideo {
    frame_rate: f64,
    frames: usize,
    /// Last frame's presentation time + one frame − first frame's presentation time.
    duration: f64,
}

impl SourceVideo {
    fn frame_duration(&self) -> f64 {
        1.0 / self.frame_rate
    }
}

impl Source {
    fn probe(path: &Path) -> Self {
        let json = ffprobe::streams_and_format(path);
        let streams = json["streams"].as_array().expect("streams");
        let of_kind = |kind: &str| streams.iter().find(|s| s["codec_type"] == kind);
        let video = of_kind("video").map(|stream| {
            let frame_rate = ffprobe::rational(stream["avg_frame_rate"].as_str().expect("rate"));
            let frames = ffprobe::video_frames(path);
            SourceVideo {
                frame_rate,
                frames: frames.count,
                duration: frames.span + 1.0 / frame_rate,
            }
        });
        let sample_rate = of_kind("audio").map(|s| ffprobe::number(&s["sample_rate"]) as u64);
        Source { video, sample_rate }
    }

    fn video(&self) -> &SourceVideo {
        self.video.as_ref().expect("the source has video")
    }

    fn audio_frame_duration(&self) -> f64 {
        AAC_FRAME / self.sample_rate.expect("the source has audio") as f64
    }
}

/// Checks everything the contract says about an HLS package in `out`; panics on the first
/// violation with a message naming it.
pub fn check_package(out: &Path, expect: &Expect) -> Package {
    let source = Source::probe(expect.source);
    let video_dirs: Vec<String> = expect.rungs.iter().map(|&size| rung_dir(size)).collect();
    check_layout(out, &video_dirs, expect.audio);
    let video: Vec<Rendition> = video_dirs
        .iter()
        .map(|dir| read_rendition(out, dir, Some(source.video().frame_duration())))
        .collect();
    let audio = expect.audio.then(|| read_rendition(out, "audio", None));
    let all: Vec<&Rendition> = video.iter().chain(&audio).collect();
    check_media_playlists(&all);
    for (rendition, &size) in video.iter().zip(expect.rungs) {
        check_video_rendition(rendition, size, source.video(), expect.segment_duration);
    }
    check_alignment(&video);
    if let Some(audio) = &audio {
        check_audio_rendition(audio, &video, &source, expect.segment_duration);
    }
    let master = m3u8::read_master(&out.join("master.m3u8"));
    check_master(&master, &video, audio.as_ref(), &source);
    check_decoding(out, &video, &source);
    Package { video, audio }
}

/// A rung's folder is named after its short side: 640x360 and 360x640 are both `360p`.
fn rung_dir((width, height): (u32, u32)) -> String {
    format!("{}p", width.min(height))
}

fn check_layout(out: &Path, video_dirs: &[String], audio: bool) {
    let mut expected: BTreeSet<String> = video_dirs.iter().cloned().collect();
    assert_eq!(expected.len(), video_dirs.len(), "two rungs share a folder");
    expected.insert("master.m3u8".into());
    if audio {
        expected.insert("audio".into());
    }
    assert_eq!(file_names(out), expected, "entries of {}", out.display());
}

/// Parses `out/dir/index.m3u8`, checks the folder holds exactly it and its segments named
/// `segment00000.ts`, `segment00001.ts`, … in order, and measures every segment.
/// `frame_duration` is given for video (whose last frame ends one frame after its pts).
fn read_rendition(out: &Path, dir: &str, frame_duration: Option<f64>) -> Rendition {
    let folder = out.join(dir);
    let playlist = m3u8::read_media(&folder.join("index.m3u8"));
    let uris: Vec<&str> = playlist.segments.iter().map(|s| s.uri.as_str()).collect();
    let names: Vec<String> = (0..uris.len()).map(|i| format!("segment{i:05}.ts")).collect();
    assert!(!uris.is_empty(), "{dir}/index.m3u8 lists no segment");
    assert_eq!(uris, names, "segment URIs of {dir}/index.m3u8");
    let mut files = file_names(&folder);
    assert!(files.remove("index.m3u8"));
    assert_eq!(files, names.iter().cloned().collect(), "files in {dir}/");
    let paths: Vec<PathBuf> = names.iter().map(|name| folder.join(name)).collect();
    let extinfs: Vec<f64> = playlist.segments.iter().map(|s| s.duration).collect();
    let segments = measure_segments(&paths, &extinfs, frame_duration);
    Rendition {
        dir: dir.to_string(),
        folder,
        playlist,
        segments,
    }
}

fn measure_segments(paths: &[PathBuf], extinfs: &[f64], frame: Option<f64>) -> Vec<Segment> {
    let probed: Vec<(Track, i64, f64)> = paths.iter().map(|path| probe_segment(path, frame)).collect();
    let starts: Vec<i64> = probed.iter().map(|(_, start, _)| *start).collect();
    probed
        .into_iter()
        .enumerate()
        .map(|(index, (track, start, end))| {
            let stop = starts.get(index + 1).map_or(end, |&next| next as f64);
            Segment {
                file_bytes: std::fs::metadata(&paths[index]).expect("segment size").len(),
                payload_bytes: track.packets.iter().map(|p| p.size).sum(),
                extinf: extinfs[index],
                start,
                measured: (stop - start as f64) / TICKS,
                stream: track.stream,
            }
        })
        .collect()
}

/// The segment's only track, its first presentation timestamp and the end of its last
/// frame (90 kHz ticks). A segment's first packet must be a keyframe that is also the
/// first frame presented.
fn probe_segment(path: &Path, frame: Option<f64>) -> (Track, i64, f64) {
    let name = path.display();
    let mut tracks = ffprobe::tracks(path);
    assert_eq!(tracks.len(), 1, "{name} must hold exactly one stream");
    let track = tracks.remove(0);
    assert_eq!(track.stream["time_base"], "1/90000", "{name}: time base");
    let first = track.packets.first().unwrap_or_else(|| panic!("{name} has no packet"));
    assert!(first.keyframe, "{name} does not start with a keyframe");
    let start = track.packets.iter().map(|p| p.pts).min().expect("packets");
    assert_eq!(
        first.pts, start,
        "{name}: a frame is presented before its first keyframe"
    );
    let last = track.packets.iter().max_by_key(|p| p.pts).expect("packets");
    let last_duration = match frame {
        Some(seconds) => seconds * TICKS,
        None => last.duration.unwrap_or_else(|| panic!("{name}: no packet duration")) as f64,
    };
    let end = last.pts as f64 + last_duration;
    (track, start, end)
}

fn check_media_playlists(renditions: &[&Rendition]) {
    for rendition in renditions {
        let (dir, playlist) = (&rendition.dir, &rendition.playlist);
        assert_eq!(playlist.version, Some(3), "{dir}: EXT-X-VERSION");
        assert_eq!(
            playlist.playlist_type.as_deref(),
            Some("VOD"),
            "{dir}: EXT-X-PLAYLIST-TYPE"
        );
        assert!(playlist.endlist, "{dir}: EXT-X-ENDLIST missing");
        assert_eq!(playlist.media_sequence, 0, "{dir}: EXT-X-MEDIA-SEQUENCE");
    }
    let longest = renditions
        .iter()
        .flat_map(|r| &r.segments)
        .map(|s| s.extinf.round() as u64)
        .max()
        .expect("segments");
    for rendition in renditions {
        assert_eq!(
            rendition.playlist.target_duration,
            longest,
            "{}: EXT-X-TARGETDURATION must be the longest EXTINF of the package rounded, {:?}",
            rendition.dir,
            rendition.extinfs()
        );
    }
}

fn check_video_rendition(rendition: &Rendition, (width, height): (u32, u32), source: &SourceVideo, requested: f64) {
    for (index, segment) in rendition.segments.iter().enumerate() {
        let stream = &segment.stream;
        let name = format!("{}/segment{index:05}.ts", rendition.dir);
        assert_eq!(stream["codec_name"], "h264", "{name}: codec");
        assert_eq!(stream["pix_fmt"], "yuv420p", "{name}: pixel format");
        assert_eq!(
            (stream["width"].as_u64(), stream["height"].as_u64()),
            (Some(width.into()), Some(height.into())),
            "{name}: frame size"
        );
        let sar = stream["sample_aspect_ratio"].as_str();
        assert!(
            matches!(sar, None | Some("1:1" | "0:1")),
            "{name}: pixels must be square, SAR is {sar:?}"
        );
    }
    check_extinf_is_measured(rendition, 0.0);
    check_requested_durations(rendition, requested, source.frame_duration(), 0.0);
}

/// EXTINF is the duration ffprobe measures, within 1 ms; the last segment's EXTINF may be
/// up to `last_shorter` less (a final AAC frame only partly filled: its true duration is
/// known to the encoder, while ffprobe counts the whole frame).
fn check_extinf_is_measured(rendition: &Rendition, last_shorter: f64) {
    let count = rendition.segments.len();
    for (index, segment) in rendition.segments.iter().enumerate() {
        let (extinf, measured) = (segment.extinf, segment.measured);
        let lowest = if index + 1 == count {
            measured - last_shorter
        } else {
            measured
        };
        assert!(
            (lowest - EXTINF_SLACK - 1e-9..=measured + EXTINF_SLACK + 1e-9).contains(&extinf),
            "{}/segment{index:05}.ts: EXTINF {extinf} but it lasts {measured}",
            rendition.dir
        );
    }
}

/// Every segment but the last lasts the requested duration within `tolerance` (EXTINF
/// within 1 ms more), the first may last `first_longer` more; the last lasts no longer.
fn check_requested_durations(rendition: &Rendition, requested: f64, tolerance: f64, first_longer: f64) {
    let (last, others) = rendition.segments.split_last().expect("segments");
    for (index, segment) in others.iter().enumerate() {
        let name = format!("{}/segment{index:05}.ts", rendition.dir);
        let (extinf, measured) = (segment.extinf, segment.measured);
        let longer = if index == 0 { first_longer } else { 0.0 };
        let range = |slack: f64| requested - tolerance - slack..=requested + tolerance + longer + slack;
        assert!(
            range(1e-9).contains(&measured),
            "{name}: lasts {measured} s, requested {requested} ± {tolerance}"
        );
        assert!(
            range(EXTINF_SLACK + 1e-9).contains(&extinf),
            "{name}: EXTINF {extinf}, requested {requested} ± {tolerance}"
        );
    }
    assert!(
        last.measured <= requested + tolerance + 1e-9,
        "{}: the last segment lasts {} s, longer than requested {requested}",
        rendition.dir,
        last.measured
    );
}

/// Segment i of every rung starts at the same presentation time.
fn check_alignment(video: &[Rendition]) {
    let starts = |r: &Rendition| r.segments.iter().map(|s| s.start).collect::<Vec<_>>();
    if let Some((first, others)) = video.split_first() {
        for other in others {
            assert_eq!(
                starts(other),
                starts(first),
                "segment start times (90 kHz) of {} and {} differ",
                other.dir,
                first.dir
            );
        }
    }
}

fn check_audio_rendition(audio: &Rendition, video: &[Rendition], source: &Source, requested: f64) {
    let frame = source.audio_frame_duration();
    for (index, segment) in audio.segments.iter().enumerate() {
        let (name, stream) = (format!("audio/segment{index:05}.ts"), &segment.stream);
        assert_eq!(stream["codec_name"], "aac", "{name}: codec");
        assert_eq!(stream["profile"], "LC", "{name}: AAC profile");
        assert_eq!(stream["channels"], 2, "{name}: channels");
        let rate = ffprobe::number(&stream["sample_rate"]) as u64;
        assert_eq!(Some(rate), source.sample_rate, "{name}: sample rate");
    }
    check_extinf_is_measured(audio, frame);
    match video.first() {
        // The first segment may also hold the encoder's priming frame.
        None => check_requested_durations(audio, requested, frame, frame),
        Some(reference) => check_audio_follows_video(audio, reference, frame),
    }
}

/// Audio segment i starts within one AAC frame (+ 1 ms) of video segment i: the audio is
/// cut at the video's cuts, and the first audio segment may hold the AAC encoder's priming
/// frame before the video starts. Every audio EXTINF but the first (which holds that frame)
/// and the last is within one AAC frame (+ 1 ms) of its video segment's.
fn check_audio_follows_video(audio: &Rendition, video: &Rendition, frame: f64) {
    let (audio_extinfs, video_extinfs) = (audio.extinfs(), video.extinfs());
    assert_eq!(
        audio_extinfs.len(),
        video_extinfs.len(),
        "audio and video segment counts differ: {audio_extinfs:?} vs {video_extinfs:?}"
    );
    for (index, (a, v)) in audio.segments.iter().zip(&video.segments).enumerate() {
        let offset = (a.start - v.start) as f64 / TICKS;
        assert!(
            offset.abs() <= frame + EXTINF_SLACK,
            "audio/segment{index:05}.ts starts {offset} s away from {}/segment{index:05}.ts",
            video.dir
        );
    }
    let pairs = audio_extinfs.iter().zip(&video_extinfs).enumerate();
    for (index, (a, v)) in pairs.take(video_extinfs.len() - 1).skip(1) {
        assert!(
            (a - v).abs() <= frame + EXTINF_SLACK + 1e-9,
            "audio/segment{index:05}.ts: EXTINF {a}, its video segment's {v} (± {frame})"
        );
    }
}

fn check_master(master: &MasterPlaylist, video: &[Rendition], audio: Option<&Rendition>, source: &Source) {
    if video.is_empty() {
        let audio = audio.expect("a package has video or audio");
        assert_eq!(master.variants.len(), 1, "an audio-only master has one variant");
        let variant = &master.variants[0];
        assert_eq!(variant.uri, "audio/index.m3u8");
        assert_eq!(variant.attributes.quoted("CODECS"), Some("mp4a.40.2"));
        assert_eq!(variant.attributes.plain("RESOLUTION"), None);
        assert_eq!(variant.attributes.quoted("AUDIO"), None);
        return check_bandwidths(variant, &[audio]);
    }
    assert!(master.independent_segments, "EXT-X-INDEPENDENT-SEGMENTS missing");
    assert_eq!(master.variants.len(), video.len(), "one variant per rung");
    check_audio_media(master, audio.is_some());
    let frame_rate = format!("{:.3}", source.video().frame_rate);
    for rendition in video {
        check_video_variant(master, rendition, audio, &frame_rate);
    }
}

fn check_audio_media(master: &MasterPlaylist, audio: bool) {
    if !audio {
        assert!(master.media.is_empty(), "EXT-X-MEDIA without audio: {:?}", master.media);
        return;
    }
    assert_eq!(master.media.len(), 1, "one EXT-X-MEDIA: {:?}", master.media);
    let media = &master.media[0];
    assert_eq!(media.plain("TYPE"), Some("AUDIO"));
    assert_eq!(media.quoted("GROUP-ID"), Some("audio"));
    assert_eq!(media.quoted("URI"), Some("audio/index.m3u8"));
    assert!(media.quoted("NAME").is_some(), "EXT-X-MEDIA needs a NAME");
}

fn check_video_variant(master: &MasterPlaylist, rendition: &Rendition, audio: Option<&Rendition>, frame_rate: &str) {
    let uri = format!("{}/index.m3u8", rendition.dir);
    let variant = master
        .variants
        .iter()
        .find(|variant| variant.uri == uri)
        .unwrap_or_else(|| panic!("no variant points at {uri}"));
    let attributes = &variant.attributes;
    let stream = &rendition.segments[0].stream;
    let resolution = format!("{}x{}", stream["width"], stream["height"]);
    assert_eq!(attributes.plain("RESOLUTION"), Some(resolution.as_str()), "{uri}");
    assert_eq!(attributes.plain("FRAME-RATE"), Some(frame_rate), "{uri}");
    assert_eq!(attributes.quoted("AUDIO"), audio.map(|_| "audio"), "{uri}: AUDIO");
    check_codecs(variant, rendition, audio.is_some());
    let renditions: Vec<&Rendition> = std::iter::once(rendition).chain(audio).collect();
    check_bandwidths(variant, &renditions);
}

/// CODECS lists `avc1.PPCCLL` as read from the rung's SPS (and `mp4a.40.2` with audio).
fn check_codecs(variant: &Variant, rendition: &Rendition, audio: bool) {
    let codecs = variant.attributes.quoted("CODECS").expect("CODECS");
    let listed: BTreeSet<&str> = codecs.split(',').collect();
    let avc1 = avc1_codec(&rendition.folder.join("segment00000.ts"));
    let dir = &rendition.dir;
    let written = listed.iter().find(|c| c.starts_with("avc1.")).copied().unwrap_or("");
    assert!(
        written.eq_ignore_ascii_case(&avc1),
        "CODECS {codecs:?}: the SPS of {dir} says {avc1}"
    );
    assert_eq!(written, avc1, "CODECS {codecs:?}: write the hex digits as {avc1}");
    let mut expected: BTreeSet<&str> = BTreeSet::from([avc1.as_str()]);
    if audio {
        expected.insert("mp4a.40.2");
    }
    assert_eq!(listed, expected, "CODECS of {dir}");
}

/// BANDWIDTH and AVERAGE-BANDWIDTH are the sums over the variant's renditions (video and
/// its audio) of the peak and of the average segment bit rate, within 1%, whether the
/// durations are taken from EXTINF or from ffprobe.
fn check_bandwidths(variant: &Variant, renditions: &[&Rendition]) {
    let attribute = |name: &str| -> f64 {
        let text = variant
            .attributes
            .plain(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        text.parse::<u64>()
            .unwrap_or_else(|_| panic!("{name}={text} is not an integer")) as f64
    };
    let (bandwidth, average) = (attribute("BANDWIDTH"), attribute("AVERAGE-BANDWIDTH"));
    for (label, measured) in [("EXTINF", false), ("ffprobe", true)] {
        let sized = |r: &Rendition| -> Vec<(u64, f64)> {
            let duration = |s: &Segment| if measured { s.measured } else { s.extinf };
            r.segments.iter().map(|s| (s.file_bytes, duration(s))).collect()
        };
        let target = renditions[0].playlist.target_duration as f64;
        let peak: f64 = renditions.iter().map(|r| peak_rate(&sized(r), target)).sum();
        let mean: f64 = renditions.iter().map(|r| average_rate(&sized(r))).sum();
        let uri = &variant.uri;
        assert_close(
            bandwidth,
            peak,
            &format!("{uri}: BANDWIDTH vs peak with {label} durations"),
        );
        assert_close(
            average,
            mean,
            &format!("{uri}: AVERAGE-BANDWIDTH with {label} durations"),
        );
    }
}

fn assert_close(written: f64, expected: f64, what: &str) {
    assert!(
        (written - expected).abs() <= expected * RATE_SLACK + 1.0,
        "{what}: written {written}, measured {expected:.0}"
    );
}

/// RFC 8216 §4.3.4.2: the largest bit rate of any run of consecutive segments lasting
/// between 0.5 and 1.5 target durations; the whole rendition's rate if no run does.
/// `segments` are (bytes, seconds).
fn peak_rate(segments: &[(u64, f64)], target_duration: f64) -> f64 {
    let window = 0.5 * target_duration..=1.5 * target_duration;
    let mut peak: Option<f64> = None;
    for first in 0..segments.len() {
        let (mut bytes, mut seconds) = (0, 0.0);
        for &(size, duration) in &segments[first..] {
            bytes += size;
            seconds += duration;
            if window.contains(&seconds) {
                let rate = bytes as f64 * 8.0 / seconds;
                peak = Some(peak.map_or(rate, |peak: f64| peak.max(rate)));
            }
        }
    }
    peak.unwrap_or_else(|| average_rate(segments))
}

fn average_rate(segments: &[(u64, f64)]) -> f64 {
    let bytes: u64 = segments.iter().map(|&(size, _)| size).sum();
    let seconds: f64 = segments.iter().map(|&(_, duration)| duration).sum();
    bytes as f64 * 8.0 / seconds
}

/// The package plays: ffmpeg decodes the master without an error, and every rung decodes
/// to the source's frame count and duration (within one frame).
fn check_decoding(out: &Path, video: &[Rendition], source: &Source) {
    ffprobe::assert_decodes_cleanly(&out.join("master.m3u8"));
    for rendition in video {
        let source = source.video();
        let frames = ffprobe::video_frames(&out.join(&rendition.dir).join("index.m3u8"));
        let duration = frames.span + source.frame_duration();
        assert_eq!(frames.count, source.frames, "{}: decoded frame count", rendition.dir);
        assert!(
            (duration - source.duration).abs() <= source.frame_duration() + 1e-6,
            "{}: decodes to {duration} s, the source to {} s",
            rendition.dir,
            source.duration
        );
    }
}

#[test]
fn peak_rate_follows_rfc_8216() {
    // Target 2 s: single segments qualify (1..=3 s); pairs of 2 s segments do not.
    let segments = [(1000, 2.0), (3000, 2.0), (500, 1.0)];
    assert_eq!(peak_rate(&segments, 2.0), 12000.0);
    // Too short alone (0.5 s), the second segment counts with the third (1.5 s).
    let segments = [(800, 4.0), (1500, 0.5), (1500, 1.0)];
    assert_eq!(peak_rate(&segments, 2.0), 16000.0);
    // No run lasts 1..=3 s: the whole rendition's rate.
    assert_eq!(peak_rate(&[(1000, 4.0), (3000, 4.0)], 2.0), 4000.0);
}
