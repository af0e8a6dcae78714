//! Verifies a whole DASH package against the rules of DESIGN.md §3 and the CLI contract,
//! measuring everything independently: the MPD with `util::mpd` (roxmltree), every init and
//! media segment with `util::bmff` (mp4-atom, strict), streams and playback with ffprobe and
//! ffmpeg, bit rates from file sizes; with `--hls`, the HLS playlists over the same files with
//! the HLS checker.

use crate::hls::check::{self as hls, Expect, Format, Video, assert_close, check_layout, peak_rate, rung_dir};
use crate::util::bmff::{self, Track};
use crate::util::codecs::codec_string;
use crate::util::ffprobe::{self, number};
use crate::util::file_names;
use crate::util::mpd::{self, AdaptationSet, Mpd, Representation};
use crate::util::source::{Source, SourceVideo};
use mp4_atom::Codec;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const MANIFEST: &str = "manifest.mpd";
const PROFILE: &str = "urn:mpeg:dash:profile:isoff-live:2011";
const CHANNEL_CONFIGURATION: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";
const INITIALIZATION: &str = "$RepresentationID$/init.mp4";
const MEDIA: &str = "$RepresentationID$/segment$Number%05d$.m4s";
/// Every output is the source's timeline moved 1.4 s on (as the ffmpeg CLI's MPEG-TS output),
/// and presentationTimeOffset moves it back.
const TIMELINE_OFFSET: f64 = 1.4;
/// How far two times measured in seconds may differ.
const SLACK: f64 = 0.001;
/// How far ffprobe's duration of the MPD may be from the source's, in seconds.
const PLAYBACK_SLACK: f64 = 0.1;

/// A checked package, for tests that look further.
pub struct Dash {
    pub mpd: Mpd,
    pub video: Vec<Represented>,
    pub audio: Option<Represented>,
}

/// A Representation and the files its SegmentTemplate names, read.
pub struct Represented {
    pub id: String,
    timescale: u64,
    presentation_time_offset: u64,
    /// (t, d) of every segment from the SegmentTimeline, in the timescale.
    timeline: Vec<(u64, u64)>,
    pub init: PathBuf,
    pub segments: Vec<PathBuf>,
    pub track: Track,
}

impl Represented {
    /// When segment `index` is presented, in seconds: 0 is the source's start.
    fn start(&self, index: usize) -> f64 {
        (self.timeline[index].0 as f64 - self.presentation_time_offset as f64) / self.timescale as f64
    }

    fn duration(&self, index: usize) -> f64 {
        self.timeline[index].1 as f64 / self.timescale as f64
    }

    /// `360p/segment00003.m4s`, for messages.
    fn name(&self, index: usize) -> String {
        let file = self.segments[index].file_name().expect("a file name");
        format!("{}/{}", self.id, file.to_string_lossy())
    }

    /// The init segment followed by segment `index`, or by every segment: one fMP4 file.
    pub fn playable(&self, index: Option<usize>) -> PathBuf {
        let segments = index.map_or(&self.segments[..], |index| &self.segments[index..=index]);
        ffprobe::concat(&[std::slice::from_ref(&self.init), segments].concat())
    }
}

/// Checks everything the contract says about a DASH package in `out` (and, with `hls`, its
/// HLS playlists); panics on the first violation with a message naming it.
pub fn check_package(out: &Path, expect: &Expect, hls: bool) -> Dash {
    let video_dirs: Vec<String> = expect.rungs.iter().map(|&size| rung_dir(size)).collect();
    check_package_in(out, expect, hls, &video_dirs)
}

/// [`check_package`] with the video Representations (and their folders) named `video_dirs`, one
/// for each of `expect.rungs` in order: two rungs of one size have their bitrate in their names.
pub fn check_package_in(out: &Path, expect: &Expect, hls: bool, video_dirs: &[String]) -> Dash {
    assert!(
        expect.segments.format == Format::Fmp4,
        "DASH segments are CMAF fragments"
    );
    let source = Source::probe(expect.source);
    let manifests: &[&str] = if hls { &[MANIFEST, "master.m3u8"] } else { &[MANIFEST] };
    check_layout(out, video_dirs, expect.audio, manifests);
    let mpd = mpd::read_mpd(&out.join(MANIFEST));
    check_presentation(&mpd, &source, expect);
    let target = mpd.attributes.seconds("minBufferTime");
    let sets = usize::from(!expect.rungs.is_empty()) + usize::from(expect.audio);
    assert_eq!(
        mpd.adaptation_sets.len(),
        sets,
        "AdaptationSets: one for video, one for audio"
    );
    let video = adaptation_set(&mpd, "video", !expect.rungs.is_empty()).map_or_else(Vec::new, |set| {
        check_video_set(out, set, &source, expect, video_dirs, target, hls)
    });
    let audio =
        adaptation_set(&mpd, "audio", expect.audio).map(|set| check_audio_set(out, set, &source, expect, target, hls));
    if let (Some(audio), Some(reference)) = (&audio, video.first()) {
        check_audio_follows_video(audio, reference, expect.segments.audio.frame_duration(&source));
    }
    check_playback(out, &video, &source);
    if hls {
        check_hls(out, expect, video.iter().chain(&audio));
    }
    Dash { mpd, video, audio }
}

/// A static isoff-live MPD lasting as long as the source (within one frame).
fn check_presentation(mpd: &Mpd, source: &Source, expect: &Expect) {
    let attributes = &mpd.attributes;
    assert_eq!(attributes.get("type"), Some("static"), "MPD@type");
    assert_eq!(attributes.get("profiles"), Some(PROFILE), "MPD@profiles");
    assert!(attributes.seconds("minBufferTime") > 0.0, "MPD@minBufferTime");
    let frame = match &source.video {
        Some(video) => video.frame_duration(),
        None => expect.segments.audio.frame_duration(source),
    };
    let duration = attributes.seconds("mediaPresentationDuration");
    assert!(
        (duration - source.duration()).abs() <= frame + 1e-9,
        "MPD@mediaPresentationDuration {duration} s, the source lasts {} s",
        source.duration()
    );
}

/// The AdaptationSet of this contentType, which exists if and only if `expected`.
fn adaptation_set<'a>(mpd: &'a Mpd, content_type: &str, expected: bool) -> Option<&'a AdaptationSet> {
    let sets: Vec<&AdaptationSet> = mpd
        .adaptation_sets
        .iter()
        .filter(|set| set.attributes.get("contentType") == Some(content_type))
        .collect();
    assert_eq!(
        sets.len(),
        usize::from(expected),
        "AdaptationSets of contentType {content_type}"
    );
    sets.first().copied()
}

fn check_video_set(
    out: &Path,
    set: &AdaptationSet,
    source: &Source,
    expect: &Expect,
    ids: &[String],
    target: f64,
    hls: bool,
) -> Vec<Represented> {
    let (attributes, video) = (&set.attributes, source.video());
    assert_eq!(
        attributes.get("mimeType"),
        Some("video/mp4"),
        "video AdaptationSet@mimeType"
    );
    assert_eq!(attributes.get("segmentAlignment"), Some("true"), "@segmentAlignment");
    assert_eq!(attributes.get("startWithSAP"), Some("1"), "@startWithSAP");
    let widest = expect.rungs.iter().map(|&(width, _)| width).max();
    let tallest = expect.rungs.iter().map(|&(_, height)| height).max();
    assert_eq!(Some(attributes.parse::<u32>("maxWidth")), widest, "@maxWidth");
    assert_eq!(Some(attributes.parse::<u32>("maxHeight")), tallest, "@maxHeight");
    let rate = &video.frame_rate_text;
    let frame_rate = rate.strip_suffix("/1").unwrap_or(rate);
    assert_eq!(attributes.get("frameRate"), Some(frame_rate), "@frameRate");
    let par = format!("{}:{}", video.aspect.0, video.aspect.1);
    assert_eq!(attributes.get("par"), Some(par.as_str()), "@par");
    assert_eq!(
        set.representations.len(),
        expect.rungs.len(),
        "one Representation per rung"
    );
    let represented: Vec<Represented> = expect
        .rungs
        .iter()
        .zip(ids)
        .map(|(&size, id)| {
            let representation = set
                .representations
                .iter()
                .find(|r| r.attributes.get("id") == Some(id.as_str()))
                .unwrap_or_else(|| panic!("no Representation with @id {id}"));
            check_video_representation(out, representation, size, video, expect, target, hls)
        })
        .collect();
    check_alignment(&represented);
    represented
}

fn check_video_representation(
    out: &Path,
    representation: &Representation,
    (width, height): (u32, u32),
    source: &SourceVideo,
    expect: &Expect,
    target: f64,
    hls: bool,
) -> Represented {
    let represented = read_representation(out, representation, target, hls);
    let (id, attributes) = (&represented.id, &representation.attributes);
    let size = (attributes.parse::<u32>("width"), attributes.parse::<u32>("height"));
    assert_eq!(size, (width, height), "{id}: @width, @height");
    assert_eq!(attributes.get("sar"), Some("1:1"), "{id}: @sar");
    let video = expect.segments.video;
    let codecs = attributes.get("codecs").unwrap_or_default();
    assert!(
        codecs.starts_with(&format!("{}.", video.sample_entry())),
        "{id}: @codecs {codecs}, expected {}.…",
        video.sample_entry()
    );
    let entry = represented.track.init.codec.visual().expect("a visual sample entry");
    let coded = (u32::from(entry.width), u32::from(entry.height));
    assert_eq!(coded, (width, height), "{id}/init.mp4: sample entry size");
    let timescale = represented.timescale as f64;
    let (first_t, _) = represented.timeline[0];
    assert_eq!(
        first_t, represented.presentation_time_offset,
        "{id}: the first segment's @t − @presentationTimeOffset must map the source's start to 0"
    );
    assert_eq!(
        first_t,
        (TIMELINE_OFFSET * timescale).round() as u64,
        "{id}: the first tfdt"
    );
    for index in 0..represented.segments.len() {
        let name = represented.name(index);
        let tracks = ffprobe::tracks(&represented.playable(Some(index)));
        let [track] = &tracks[..] else {
            panic!("{name} must hold exactly one stream")
        };
        let stream = &track.stream;
        assert_eq!(stream["codec_name"], video.codec_name(), "{name}: codec");
        assert_eq!(stream["pix_fmt"], "yuv420p", "{name}: pixel format");
        let decoded = (stream["width"].as_u64(), stream["height"].as_u64());
        assert_eq!(decoded, (Some(width.into()), Some(height.into())), "{name}: frame size");
        assert!(track.packets[0].keyframe, "{name}: ffprobe sees no keyframe first");
    }
    check_video_durations(&represented, source, expect);
    represented
}

/// Reads the files a Representation's SegmentTemplate names and checks them against it: the
/// folder holds exactly them (and index.m3u8 with `hls`); every CMAF rule of
/// `bmff::read_track`; @timescale is the mdhd's; the SegmentTimeline is continuous and each
/// S is its segment's tfdt and duration; @bandwidth is the peak rate over `target` seconds
/// and @codecs the sample entry's codec string.
fn read_representation(out: &Path, representation: &Representation, target: f64, hls: bool) -> Represented {
    let attributes = &representation.attributes;
    let id = attributes.get("id").expect("Representation@id").to_string();
    let template = &representation.segment_template;
    let settings = &template.attributes;
    assert_eq!(
        settings.get("initialization"),
        Some(INITIALIZATION),
        "{id}: @initialization"
    );
    assert_eq!(settings.get("media"), Some(MEDIA), "{id}: @media");
    assert_eq!(settings.parse::<u64>("startNumber"), 0, "{id}: @startNumber");
    let timescale: u64 = settings.parse("timescale");
    let timeline = template.segments();
    let init = out.join(mpd::expand(INITIALIZATION, &id, 0));
    let segments: Vec<PathBuf> = (0..timeline.len() as u64)
        .map(|number| out.join(mpd::expand(MEDIA, &id, number)))
        .collect();
    let folder = out.join(&id);
    let mut expected: BTreeSet<String> = std::iter::once(&init)
        .chain(&segments)
        .map(|path| path.strip_prefix(&folder).expect("in the folder").display().to_string())
        .collect();
    if hls {
        expected.insert("index.m3u8".into());
    }
    assert_eq!(file_names(&folder), expected, "files in {id}/");
    let track = bmff::read_track(&init, &segments);
    assert_eq!(
        u64::from(track.init.timescale),
        timescale,
        "{id}: @timescale vs the mdhd"
    );
    for pair in timeline.windows(2) {
        let ((t, d), (next, _)) = (pair[0], pair[1]);
        assert_eq!(next, t + d, "{id}: the SegmentTimeline is not continuous: {timeline:?}");
    }
    for (index, (&(t, d), fragment)) in timeline.iter().zip(&track.fragments).enumerate() {
        let name = format!("{id}/segment{index:05}.m4s");
        assert_eq!(fragment.decode_time, t, "{name}: tfdt vs the SegmentTimeline's @t");
        assert_eq!(fragment.duration(), d, "{name}: duration vs the SegmentTimeline's @d");
    }
    let sized: Vec<(u64, f64)> = segments
        .iter()
        .zip(&timeline)
        .map(|(path, &(_, d))| {
            let bytes = std::fs::metadata(path).expect("segment size").len();
            (bytes, d as f64 / timescale as f64)
        })
        .collect();
    let bandwidth = attributes.parse::<u64>("bandwidth") as f64;
    let peak = peak_rate(&sized, target);
    assert_close(
        bandwidth,
        peak,
        &format!("{id}: @bandwidth vs the peak over {target} s"),
    );
    let read = codec_string(&track.init.codec);
    assert_eq!(
        attributes.get("codecs"),
        Some(read.as_str()),
        "{id}: @codecs vs the sample entry"
    );
    Represented {
        id,
        timescale,
        presentation_time_offset: settings.parse("presentationTimeOffset"),
        timeline,
        init,
        segments,
        track,
    }
}

/// Every segment but the last lasts the requested duration within one frame; with `--copy` and
/// `--passthrough-top`, segments are cut at the source's keyframes instead.
fn check_video_durations(represented: &Represented, source: &SourceVideo, expect: &Expect) {
    let (requested, frame) = (expect.segment_duration, source.frame_duration());
    let last = represented.segments.len() - 1;
    for index in 0..=last {
        let (name, start, duration) = (
            represented.name(index),
            represented.start(index),
            represented.duration(index),
        );
        match expect.segments.video {
            Video::Copy | Video::Passthrough => {
                assert!(
                    source.is_keyframe(start),
                    "{name} starts at {start} s, not at a source keyframe"
                );
                let end = source.keyframe_cut(start, requested);
                assert!(
                    (start + duration - end).abs() <= SLACK,
                    "{name} lasts {duration} s from {start} s; cut at source keyframes it ends at {end} s"
                );
            }
            _ if index < last => assert!(
                (duration - requested).abs() <= frame + 1e-9,
                "{name}: lasts {duration} s, requested {requested} ± {frame}"
            ),
            _ => assert!(
                duration <= requested + frame + 1e-9,
                "{name}: the last lasts {duration} s"
            ),
        }
    }
}

/// Segment i of every video Representation has the same tfdt, so the same start.
fn check_alignment(video: &[Represented]) {
    let starts = |r: &Represented| (r.timescale, r.presentation_time_offset, r.timeline.clone());
    if let Some((first, others)) = video.split_first() {
        for other in others {
            assert_eq!(
                starts(other),
                starts(first),
                "(timescale, presentationTimeOffset, SegmentTimeline) of {} and {} differ",
                other.id,
                first.id
            );
        }
    }
}

fn check_audio_set(
    out: &Path,
    set: &AdaptationSet,
    source: &Source,
    expect: &Expect,
    target: f64,
    hls: bool,
) -> Represented {
    let attributes = &set.attributes;
    assert_eq!(
        attributes.get("mimeType"),
        Some("audio/mp4"),
        "audio AdaptationSet@mimeType"
    );
    assert_eq!(
        attributes.get("lang"),
        Some(source.audio().bcp47()),
        "audio AdaptationSet@lang vs the source's tag in BCP 47"
    );
    let [representation] = &set.representations[..] else {
        panic!("the audio AdaptationSet has one Representation")
    };
    let represented = read_representation(out, representation, target, hls);
    assert_eq!(represented.id, "audio", "audio Representation@id");
    let codec = expect.segments.audio;
    let attributes = &representation.attributes;
    assert_eq!(attributes.get("codecs"), Some(codec.codec_string()), "audio: @codecs");
    let entry = match &represented.track.init.codec {
        Codec::Mp4a(mp4a) => &mp4a.audio,
        Codec::Opus(opus) => &opus.audio,
        other => panic!("audio/init.mp4: unexpected sample entry {other:?}"),
    };
    let rate = codec.sample_rate(source);
    assert_eq!(
        attributes.parse::<u64>("audioSamplingRate"),
        rate,
        "audio: @audioSamplingRate"
    );
    assert_eq!(
        u64::from(entry.sample_rate.integer()),
        rate,
        "audio/init.mp4: sample rate"
    );
    let channels = representation
        .audio_channel_configuration
        .as_ref()
        .expect("an AudioChannelConfiguration");
    assert_eq!(channels.get("schemeIdUri"), Some(CHANNEL_CONFIGURATION));
    assert_eq!(channels.get("value"), Some("2"), "audio: channels");
    assert_eq!(entry.channel_count, 2, "audio/init.mp4: channels");
    let frame = codec.frame_duration(source);
    // The encoder's priming samples come before the source's start: at most one frame.
    let priming = represented.presentation_time_offset as f64 - represented.timeline[0].0 as f64;
    let most = frame * represented.timescale as f64;
    assert!(
        (0.0..=most).contains(&priming),
        "audio: @presentationTimeOffset − the first @t is {priming} ticks, not 0 to {most} (the priming)"
    );
    for index in 0..represented.segments.len() {
        let name = represented.name(index);
        let tracks = ffprobe::tracks(&represented.playable(Some(index)));
        let [track] = &tracks[..] else {
            panic!("{name} must hold exactly one stream")
        };
        assert_eq!(track.stream["codec_name"], codec.codec_name(), "{name}: codec");
        assert_eq!(number(&track.stream["sample_rate"]) as u64, rate, "{name}: sample rate");
    }
    if expect.rungs.is_empty() {
        check_audio_durations(&represented, expect.segment_duration, frame);
    }
    represented
}

/// Without video: every segment but the last lasts the requested duration within one audio
/// frame, the first up to one frame more (the priming); the last no longer.
fn check_audio_durations(audio: &Represented, requested: f64, frame: f64) {
    let last = audio.segments.len() - 1;
    for index in 0..=last {
        let (name, duration) = (audio.name(index), audio.duration(index));
        let longest = requested + frame + if index == 0 { frame } else { 0.0 } + 1e-9;
        let shortest = if index == last { 0.0 } else { requested - frame - 1e-9 };
        assert!(
            (shortest..=longest).contains(&duration),
            "{name}: lasts {duration} s, requested {requested}"
        );
    }
}

/// Audio segment i is presented within one audio frame (+ 1 ms) of video segment i.
fn check_audio_follows_video(audio: &Represented, video: &Represented, frame: f64) {
    assert_eq!(
        audio.segments.len(),
        video.segments.len(),
        "audio and video segment counts"
    );
    for index in 0..video.segments.len() {
        let offset = audio.start(index) - video.start(index);
        assert!(
            offset.abs() <= frame + SLACK,
            "{} starts {offset} s away from {}",
            audio.name(index),
            video.name(index)
        );
    }
}

/// libav plays the MPD without an error and for as long as the source; each video
/// Representation (init + segments read as one file) decodes to the source's frames.
/// (FFmpeg 5.1's DASH demuxer drops frames at segment joins, so frames are not counted
/// through the MPD; it also resolves a relative MPD path wrongly.)
fn check_playback(out: &Path, video: &[Represented], source: &Source) {
    let manifest = std::path::absolute(out.join(MANIFEST)).expect("an absolute path");
    ffprobe::assert_decodes_cleanly(&manifest);
    let format = ffprobe::probe(&["-show_format"], &manifest);
    let duration = number(&format["format"]["duration"]);
    assert!(
        (duration - source.duration()).abs() <= PLAYBACK_SLACK,
        "ffprobe: the MPD lasts {duration} s, the source {} s",
        source.duration()
    );
    for represented in video {
        let source = source.video();
        let frames = ffprobe::video_frames(&represented.playable(None));
        assert_eq!(frames.count, source.frames, "{}: decoded frame count", represented.id);
        let duration = frames.span + source.frame_duration();
        assert!(
            (duration - source.duration).abs() <= source.frame_duration() + 1e-6,
            "{}: decodes to {duration} s, the source to {} s",
            represented.id,
            source.duration
        );
    }
}

/// The HLS playlists pass the HLS checks and name exactly the files the MPD names.
fn check_hls<'a>(out: &Path, expect: &Expect, represented: impl Iterator<Item = &'a Represented>) {
    let package = hls::check_playlists(out, expect);
    let renditions: Vec<&hls::Rendition> = package.video.iter().chain(&package.audio).collect();
    for represented in represented {
        let rendition = renditions
            .iter()
            .find(|rendition| rendition.dir == represented.id)
            .unwrap_or_else(|| panic!("no HLS rendition for Representation {}", represented.id));
        let map = rendition.playlist.map.as_deref().expect("EXT-X-MAP");
        assert_eq!(
            rendition.folder.join(map),
            represented.init,
            "{}: EXT-X-MAP",
            rendition.dir
        );
        let listed: Vec<PathBuf> = rendition
            .playlist
            .segments
            .iter()
            .map(|s| rendition.folder.join(&s.uri))
            .collect();
        assert_eq!(
            listed, represented.segments,
            "{}: the playlist's segments vs the MPD's",
            rendition.dir
        );
    }
}
