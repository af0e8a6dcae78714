//! Verifies a whole HLS package against the rules of DESIGN.md §3 and the CLI contract,
//! measuring everything independently: playlists with `util::m3u8`, segments with ffprobe
//! (and fMP4 boxes with `util::bmff`), encrypted ones once decrypted by openssl
//! (`util::aes`), codec strings from the SPS or the sample entry, bit rates from file sizes.

use crate::util::aes;
use crate::util::bmff;
use crate::util::codecs::codec_string;
use crate::util::ffprobe::{self, Track};
use crate::util::file_names;
use crate::util::h264::avc1_codec;
use crate::util::m3u8::{self, Key, MasterPlaylist, MediaPlaylist, Variant};
use crate::util::source::{Source, SourceVideo};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// MPEG-TS timestamps tick at 90 kHz.
const TICKS: f64 = 90_000.0;
/// MPEG-TS packets are 188 bytes, each starting with the sync byte 0x47.
const TS_PACKET: usize = 188;
/// How far EXTINF may be from the measured duration, in seconds.
const EXTINF_SLACK: f64 = 0.001;
/// How far BANDWIDTH and AVERAGE-BANDWIDTH may be from the measured rates, relatively.
const RATE_SLACK: f64 = 0.01;
/// The init segment of every fMP4 rendition.
pub const INIT: &str = "init.mp4";

/// What a package made from `source` must contain.
pub struct Expect<'a> {
    pub source: &'a Path,
    pub segment_duration: f64,
    /// The (width, height) of every video rendition, in any order; empty for audio only.
    pub rungs: &'a [(u32, u32)],
    pub audio: bool,
    pub segments: Segments,
}

/// What the segments hold.
#[derive(Clone, Copy)]
pub struct Segments {
    pub format: Format,
    pub video: Video,
    pub audio: Audio,
    /// Every media segment (not the init segment) is under an AES-128 EXT-X-KEY with an
    /// explicit IV, and decrypts with the key file its URI names; else no segment is.
    pub encrypted: bool,
}

impl Segments {
    /// H.264 and AAC in MPEG-TS, the default of `hls`.
    pub const TS: Segments = Segments {
        format: Format::Ts,
        video: Video::H264,
        audio: Audio::Aac,
        encrypted: false,
    };
    /// H.264 and AAC in CMAF fragments: `hls --format fmp4`, and `dash`.
    pub const FMP4: Segments = Segments {
        format: Format::Fmp4,
        ..Segments::TS
    };
}

#[derive(Clone, Copy, PartialEq)]
pub enum Format {
    Ts,
    Fmp4,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Ts => "ts",
            Format::Fmp4 => "m4s",
        }
    }

    /// EXT-X-VERSION: EXT-X-MAP without EXT-X-I-FRAMES-ONLY needs version 6 (RFC 8216 §7).
    fn version(self) -> u32 {
        match self {
            Format::Ts => 3,
            Format::Fmp4 => 6,
        }
    }

    /// The init segment EXT-X-MAP names.
    fn init(self) -> Option<&'static str> {
        (self == Format::Fmp4).then_some(INIT)
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Video {
    H264,
    H265,
    Vp9,
    Av1,
    /// `--copy`: the source's H.264 packets, cut at the source's keyframes.
    Copy,
    /// `--passthrough-top`: the first rung is the source's H.264 packets, the others are encoded
    /// with H.264, and every rung is cut at the source's keyframes.
    Passthrough,
}

impl Video {
    /// ffprobe's codec_name.
    pub fn codec_name(self) -> &'static str {
        match self {
            Video::H264 | Video::Copy | Video::Passthrough => "h264",
            Video::H265 => "hevc",
            Video::Vp9 => "vp9",
            Video::Av1 => "av1",
        }
    }

    /// The sample entry type, the first field of the codec string.
    pub fn sample_entry(self) -> &'static str {
        match self {
            Video::H264 | Video::Copy | Video::Passthrough => "avc1",
            Video::H265 => "hvc1",
            Video::Vp9 => "vp09",
            Video::Av1 => "av01",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
pub enum Audio {
    Aac,
    Opus,
}

impl Audio {
    /// ffprobe's codec_name.
    pub fn codec_name(self) -> &'static str {
        match self {
            Audio::Aac => "aac",
            Audio::Opus => "opus",
        }
    }

    pub fn codec_string(self) -> &'static str {
        match self {
            Audio::Aac => "mp4a.40.2",
            Audio::Opus => "opus",
        }
    }

    /// The sample rate of the encoded audio: Opus always runs at 48 kHz.
    pub fn sample_rate(self, source: &Source) -> u64 {
        match self {
            Audio::Aac => source.audio().sample_rate,
            Audio::Opus => 48_000,
        }
    }

    /// The duration of one encoded frame (AAC-LC: 1024 samples, Opus: 20 ms), in seconds.
    pub fn frame_duration(self, source: &Source) -> f64 {
        match self {
            Audio::Aac => 1024.0 / self.sample_rate(source) as f64,
            Audio::Opus => 0.020,
        }
    }
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
    pub folder: PathBuf,
    pub playlist: MediaPlaylist,
    /// Ticks per second of the segments' `start`: 90 kHz in TS, the track's timescale in fMP4.
    timescale: f64,
    /// The codec string read from the bitstream: the SPS of TS video, the sample entry in
    /// fMP4; `mp4a.40.2` for TS audio, whose AAC-LC ffprobe checks in every segment.
    codec: String,
    pub segments: Vec<Segment>,
}

pub struct Segment {
    /// The size of the file as served (encrypted, if it is).
    pub file_bytes: u64,
    /// Bytes of the elementary stream (the segment's packets), without container overhead.
    pub payload_bytes: u64,
    pub extinf: f64,
    /// First presentation time (TS) or tfdt (fMP4), in the rendition's timescale.
    pub start: i64,
    /// Duration measured from the timestamps, in seconds.
    pub measured: f64,
    /// ffprobe's description of the segment's only stream.
    pub stream: Value,
}

impl Rendition {
    /// The segment files, in playlist order.
    pub fn segment_files(&self) -> Vec<PathBuf> {
        self.playlist
            .segments
            .iter()
            .map(|s| self.folder.join(&s.uri))
            .collect()
    }

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

    /// `dir/segment00003.ts`, for messages.
    fn name(&self, index: usize) -> String {
        format!("{}/{}", self.dir, self.playlist.segments[index].uri)
    }

    /// When segment `index` starts, in seconds.
    fn start(&self, index: usize) -> f64 {
        self.segments[index].start as f64 / self.timescale
    }
}

/// Checks everything the contract says about an HLS package in `out`; panics on the first
/// violation with a message naming it.
pub fn check_package(out: &Path, expect: &Expect) -> Package {
    check_package_in(out, expect, &video_dirs(expect))
}

/// [`check_package`] with the video renditions in `dirs`, one for each of `expect.rungs` in
/// order: two rungs of one size have their bitrate in their folders' names.
pub fn check_package_in(out: &Path, expect: &Expect, dirs: &[String]) -> Package {
    check_layout(out, dirs, expect.audio, &["master.m3u8"]);
    check_renditions(out, expect, dirs)
}

/// Checks the HLS playlists of a package and the renditions they describe: everything
/// [`check_package`] checks but the list of entries of `out`.
pub fn check_playlists(out: &Path, expect: &Expect) -> Package {
    check_renditions(out, expect, &video_dirs(expect))
}

fn check_renditions(out: &Path, expect: &Expect, dirs: &[String]) -> Package {
    let source = Source::probe(expect.source);
    let segments = expect.segments;
    let video: Vec<Rendition> = dirs
        .iter()
        .map(|dir| read_rendition(out, dir, Some(source.video().frame_duration()), segments))
        .collect();
    let audio = expect.audio.then(|| read_rendition(out, "audio", None, segments));
    let all: Vec<&Rendition> = video.iter().chain(&audio).collect();
    check_media_playlists(&all, segments.format);
    for (rendition, &size) in video.iter().zip(expect.rungs) {
        check_video_rendition(rendition, size, source.video(), expect);
    }
    check_alignment(&video);
    if let Some(audio) = &audio {
        check_audio_rendition(audio, &video, &source, expect);
    }
    let master = m3u8::read_master(&out.join("master.m3u8"));
    check_master(&master, &video, audio.as_ref(), &source);
    check_decoding(out, &video, &source);
    Package { video, audio }
}

fn video_dirs(expect: &Expect) -> Vec<String> {
    expect.rungs.iter().map(|&size| rung_dir(size)).collect()
}

/// A rung's folder is named after its short side: 640x360 and 360x640 are both `360p`.
pub fn rung_dir((width, height): (u32, u32)) -> String {
    format!("{}p", width.min(height))
}

/// `out` holds the manifests, a folder per rung and `audio/` (if `audio`), and nothing else.
pub fn check_layout(out: &Path, video_dirs: &[String], audio: bool, manifests: &[&str]) {
    let mut expected: BTreeSet<String> = video_dirs.iter().cloned().collect();
    assert_eq!(expected.len(), video_dirs.len(), "two rungs share a folder");
    expected.extend(manifests.iter().map(|name| name.to_string()));
    if audio {
        expected.insert("audio".into());
    }
    assert_eq!(file_names(out), expected, "entries of {}", out.display());
}

/// Parses `out/dir/index.m3u8`, checks the folder holds exactly it, its init segment (fMP4)
/// and its segments named `segment00000.ts` (`.m4s`), `segment00001.ts`, … in order, and
/// measures every segment, decrypted first if encrypted. `frame_duration` is given for video
/// (whose last frame ends one frame after its pts).
fn read_rendition(out: &Path, dir: &str, frame_duration: Option<f64>, segments: Segments) -> Rendition {
    let (folder, format) = (out.join(dir), segments.format);
    let playlist = m3u8::read_media(&folder.join("index.m3u8"));
    let uris: Vec<&str> = playlist.segments.iter().map(|s| s.uri.as_str()).collect();
    let extension = format.extension();
    let names: Vec<String> = (0..uris.len()).map(|i| format!("segment{i:05}.{extension}")).collect();
    assert!(!uris.is_empty(), "{dir}/index.m3u8 lists no segment");
    assert_eq!(uris, names, "segment URIs of {dir}/index.m3u8");
    assert_eq!(playlist.map.as_deref(), format.init(), "EXT-X-MAP of {dir}/index.m3u8");
    let mut files = file_names(&folder);
    assert!(files.remove("index.m3u8"));
    let mut expected: BTreeSet<String> = names.iter().cloned().collect();
    expected.extend(format.init().map(str::to_owned));
    assert_eq!(files, expected, "files in {dir}/");
    let paths: Vec<PathBuf> = names.iter().map(|name| folder.join(name)).collect();
    let scratch = tempfile::tempdir().expect("create a temporary folder");
    let clear = clear_segments(&folder, dir, &playlist, segments.encrypted, scratch.path());
    let (timescale, codec, measured) = match format {
        Format::Ts => {
            let codec = match frame_duration {
                Some(_) => avc1_codec(&clear[0]),
                None => "mp4a.40.2".to_string(),
            };
            (TICKS, codec, measure_ts_segments(&clear, frame_duration))
        }
        Format::Fmp4 => measure_fmp4_segments(&folder.join(INIT), &clear),
    };
    let segments = measured
        .into_iter()
        .zip(&playlist.segments)
        .zip(&paths)
        .map(|((measured, listed), path)| Segment {
            file_bytes: std::fs::metadata(path).expect("segment size").len(),
            payload_bytes: measured.payload_bytes,
            extinf: listed.duration,
            start: measured.start,
            measured: measured.duration,
            stream: measured.stream,
        })
        .collect();
    Rendition {
        dir: dir.to_string(),
        folder,
        playlist,
        timescale,
        codec,
        segments,
    }
}

/// The file a key's URI names, relative to the media playlist's folder (the checks read
/// keys from disk; they cannot fetch a URL).
pub fn key_file(folder: &Path, key: &Key) -> PathBuf {
    assert!(
        !key.uri.contains("://"),
        "key URI {} is not a relative path: the checks read keys from disk",
        key.uri
    );
    folder.join(&key.uri)
}

/// The media segments in the clear. Encrypted, each is decrypted by openssl into `scratch/dir`
/// with the key in force for it (the file its URI names) and the IV its EXT-X-KEY gives; the
/// init segment must be clear: its EXT-X-MAP comes before any EXT-X-KEY.
pub fn clear_segments(
    folder: &Path,
    dir: &str,
    playlist: &MediaPlaylist,
    encrypted: bool,
    scratch: &Path,
) -> Vec<PathBuf> {
    assert_eq!(playlist.map_key, None, "{dir}: the init segment is under an EXT-X-KEY");
    let decrypted = scratch.join(dir);
    std::fs::create_dir_all(&decrypted).expect("create a temporary folder");
    playlist
        .segments
        .iter()
        .map(|segment| {
            let (name, path) = (format!("{dir}/{}", segment.uri), folder.join(&segment.uri));
            match (&segment.key, encrypted) {
                (None, false) => path,
                (Some(key), true) => {
                    let iv = key.iv.unwrap_or_else(|| panic!("{name}: its EXT-X-KEY gives no IV"));
                    let clear = decrypted.join(&segment.uri);
                    let secret = aes::read_key(&key_file(folder, key));
                    aes::decrypt(&secret, iv, &path, &clear)
                        .unwrap_or_else(|error| panic!("{name} does not decrypt with {}: {error}", key.uri));
                    clear
                }
                (None, true) => panic!("{name} is under no AES-128 EXT-X-KEY"),
                (Some(key), false) => panic!("{name} is under an EXT-X-KEY ({}) in a clear package", key.uri),
            }
        })
        .collect()
}

/// What ffprobe (and, in fMP4, the box reader) measure of a segment's clear content.
struct Measured {
    payload_bytes: u64,
    start: i64,
    duration: f64,
    stream: Value,
}

fn measure_ts_segments(paths: &[PathBuf], frame: Option<f64>) -> Vec<Measured> {
    let probed: Vec<(Track, i64, f64)> = paths.iter().map(|path| probe_ts_segment(path, frame)).collect();
    let starts: Vec<i64> = probed.iter().map(|(_, start, _)| *start).collect();
    probed
        .into_iter()
        .enumerate()
        .map(|(index, (track, start, end))| {
            let stop = starts.get(index + 1).map_or(end, |&next| next as f64);
            Measured {
                payload_bytes: track.packets.iter().map(|p| p.size).sum(),
                start,
                duration: (stop - start as f64) / TICKS,
                stream: track.stream,
            }
        })
        .collect()
}

/// The timescale, the codec string of the sample entry, and the segments: their start (tfdt)
/// and duration (the sum of their sample durations) from the boxes, read with every CMAF rule
/// of `bmff::read_track` checked; their stream and packets from ffprobe reading the init
/// segment and the segment as one file.
fn measure_fmp4_segments(init: &Path, paths: &[PathBuf]) -> (f64, String, Vec<Measured>) {
    let track = bmff::read_track(init, paths);
    let timescale = f64::from(track.init.timescale);
    let segments = track
        .fragments
        .iter()
        .zip(paths)
        .map(|(fragment, path)| {
            let probed = probe_segment(&ffprobe::concat(&[init.to_path_buf(), path.clone()]));
            Measured {
                payload_bytes: probed.packets.iter().map(|p| p.size).sum(),
                start: fragment.decode_time as i64,
                duration: fragment.duration() as f64 / timescale,
                stream: probed.stream,
            }
        })
        .collect();
    (timescale, codec_string(&track.init.codec), segments)
}

/// The segment's only track, its first presentation timestamp and the end of its last
/// frame (90 kHz ticks). The file must be whole MPEG-TS packets (which a segment decrypted
/// with the wrong IV is not: its first 16 bytes are garbled).
fn probe_ts_segment(path: &Path, frame: Option<f64>) -> (Track, i64, f64) {
    let name = path.display();
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{name}: {error}"));
    let synced = bytes.iter().step_by(TS_PACKET).all(|&byte| byte == 0x47);
    assert!(
        bytes.len().is_multiple_of(TS_PACKET) && synced,
        "{name}: not whole {TS_PACKET}-byte MPEG-TS packets, each starting with 0x47"
    );
    let track = probe_segment(path);
    assert_eq!(track.stream["time_base"], "1/90000", "{name}: time base");
    let start = track.packets.iter().map(|p| p.pts).min().expect("packets");
    let last = track.packets.iter().max_by_key(|p| p.pts).expect("packets");
    let last_duration = match frame {
        Some(seconds) => seconds * TICKS,
        None => last.duration.unwrap_or_else(|| panic!("{name}: no packet duration")) as f64,
    };
    let end = last.pts as f64 + last_duration;
    (track, start, end)
}

/// The segment's only track. Its first packet must be a keyframe that is also the first
/// frame presented.
fn probe_segment(path: &Path) -> Track {
    let name = path.display();
    let mut tracks = ffprobe::tracks(path);
    assert_eq!(tracks.len(), 1, "{name} must hold exactly one stream");
    let track = tracks.remove(0);
    let first = track.packets.first().unwrap_or_else(|| panic!("{name} has no packet"));
    assert!(first.keyframe, "{name} does not start with a keyframe");
    let start = track.packets.iter().map(|p| p.pts).min().expect("packets");
    assert_eq!(
        first.pts, start,
        "{name}: a frame is presented before its first keyframe"
    );
    track
}

fn check_media_playlists(renditions: &[&Rendition], format: Format) {
    for rendition in renditions {
        let (dir, playlist) = (&rendition.dir, &rendition.playlist);
        assert_eq!(playlist.version, Some(format.version()), "{dir}: EXT-X-VERSION");
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

fn check_video_rendition(rendition: &Rendition, (width, height): (u32, u32), source: &SourceVideo, expect: &Expect) {
    let video = expect.segments.video;
    let sample_entry = format!("{}.", video.sample_entry());
    assert!(
        rendition.codec.starts_with(&sample_entry),
        "{}: codec {}, expected {sample_entry}…",
        rendition.dir,
        rendition.codec
    );
    for (index, segment) in rendition.segments.iter().enumerate() {
        let stream = &segment.stream;
        let name = rendition.name(index);
        assert_eq!(stream["codec_name"], video.codec_name(), "{name}: codec");
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
    let requested = expect.segment_duration;
    match video {
        Video::Copy | Video::Passthrough => check_cuts_at_source_keyframes(rendition, source, requested),
        _ => check_requested_durations(rendition, requested, source.frame_duration(), 0.0),
    }
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
            "{}: EXTINF {extinf} but it lasts {measured}",
            rendition.name(index)
        );
    }
}

/// Every segment but the last lasts the requested duration within `tolerance` (EXTINF
/// within 1 ms more), the first may last `first_longer` more; the last lasts no longer.
fn check_requested_durations(rendition: &Rendition, requested: f64, tolerance: f64, first_longer: f64) {
    let (last, others) = rendition.segments.split_last().expect("segments");
    for (index, segment) in others.iter().enumerate() {
        let name = rendition.name(index);
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

/// `--copy` keeps the source's keyframes: every segment starts at one, and ends at the first
/// source keyframe at least `requested` after its start (the source's end if there is none).
fn check_cuts_at_source_keyframes(rendition: &Rendition, source: &SourceVideo, requested: f64) {
    for (index, segment) in rendition.segments.iter().enumerate() {
        let name = rendition.name(index);
        let start = rendition.start(index) - rendition.start(0);
        assert!(
            source.is_keyframe(start),
            "{name} starts at {start} s, not at a source keyframe: {:?}",
            source.keyframes
        );
        let end = source.keyframe_cut(start, requested);
        assert!(
            (start + segment.measured - end).abs() <= EXTINF_SLACK,
            "{name} lasts {} s from {start} s; cut at source keyframes it ends at {end} s",
            segment.measured
        );
    }
}

/// Segment i of every rung starts at the same presentation time.
fn check_alignment(video: &[Rendition]) {
    let starts = |r: &Rendition| (r.timescale, r.segments.iter().map(|s| s.start).collect::<Vec<_>>());
    if let Some((first, others)) = video.split_first() {
        for other in others {
            assert_eq!(
                starts(other),
                starts(first),
                "(timescale, segment start times) of {} and {} differ",
                other.dir,
                first.dir
            );
        }
    }
}

fn check_audio_rendition(audio: &Rendition, video: &[Rendition], source: &Source, expect: &Expect) {
    let codec = expect.segments.audio;
    assert_eq!(audio.codec, codec.codec_string(), "audio: codec string");
    let frame = codec.frame_duration(source);
    for (index, segment) in audio.segments.iter().enumerate() {
        let (name, stream) = (audio.name(index), &segment.stream);
        assert_eq!(stream["codec_name"], codec.codec_name(), "{name}: codec");
        if codec == Audio::Aac {
            assert_eq!(stream["profile"], "LC", "{name}: AAC profile");
        }
        assert_eq!(stream["channels"], 2, "{name}: channels");
        let rate = ffprobe::number(&stream["sample_rate"]) as u64;
        assert_eq!(rate, codec.sample_rate(source), "{name}: sample rate");
    }
    check_extinf_is_measured(audio, frame);
    match video.first() {
        // The first segment may also hold the encoder's priming frame.
        None => check_requested_durations(audio, expect.segment_duration, frame, frame),
        Some(reference) => check_audio_follows_video(audio, reference, frame),
    }
}

/// Audio segment i starts within one audio frame (+ 1 ms) of video segment i: the audio is
/// cut at the video's cuts, and the first audio segment may hold the encoder's priming
/// frame before the video starts. Every audio EXTINF but the first (which holds that frame)
/// and the last is within one audio frame (+ 1 ms) of its video segment's.
fn check_audio_follows_video(audio: &Rendition, video: &Rendition, frame: f64) {
    let (audio_extinfs, video_extinfs) = (audio.extinfs(), video.extinfs());
    assert_eq!(
        audio_extinfs.len(),
        video_extinfs.len(),
        "audio and video segment counts differ: {audio_extinfs:?} vs {video_extinfs:?}"
    );
    for index in 0..video.segments.len() {
        let offset = audio.start(index) - video.start(index);
        assert!(
            offset.abs() <= frame + EXTINF_SLACK,
            "{} starts {offset} s away from {}",
            audio.name(index),
            video.name(index)
        );
    }
    let pairs = audio_extinfs.iter().zip(&video_extinfs).enumerate();
    for (index, (a, v)) in pairs.take(video_extinfs.len() - 1).skip(1) {
        assert!(
            (a - v).abs() <= frame + EXTINF_SLACK + 1e-9,
            "{}: EXTINF {a}, its video segment's {v} (± {frame})",
            audio.name(index)
        );
    }
}

fn check_master(master: &MasterPlaylist, video: &[Rendition], audio: Option<&Rendition>, source: &Source) {
    if video.is_empty() {
        let audio = audio.expect("a package has video or audio");
        assert_eq!(master.variants.len(), 1, "an audio-only master has one variant");
        let variant = &master.variants[0];
        assert_eq!(variant.uri, "audio/index.m3u8");
        assert_eq!(variant.attributes.quoted("CODECS"), Some(audio.codec.as_str()));
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
    check_codecs(variant, rendition, audio);
    let renditions: Vec<&Rendition> = std::iter::once(rendition).chain(audio).collect();
    check_bandwidths(variant, &renditions);
}

/// CODECS lists the rung's codec string as read from its bitstream (and the audio's).
fn check_codecs(variant: &Variant, rendition: &Rendition, audio: Option<&Rendition>) {
    let codecs = variant.attributes.quoted("CODECS").expect("CODECS");
    let listed: BTreeSet<&str> = codecs.split(',').collect();
    let (dir, read) = (&rendition.dir, &rendition.codec);
    let entry = read.split('.').next().unwrap_or_default();
    let written = listed.iter().find(|c| c.starts_with(entry)).copied().unwrap_or("");
    assert!(
        written.eq_ignore_ascii_case(read),
        "CODECS {codecs:?}: the bitstream of {dir} says {read}"
    );
    assert_eq!(written, read, "CODECS {codecs:?}: write the hex digits as {read}");
    let mut expected: BTreeSet<&str> = BTreeSet::from([read.as_str()]);
    expected.extend(audio.map(|audio| audio.codec.as_str()));
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

pub fn assert_close(written: f64, expected: f64, what: &str) {
    assert!(
        (written - expected).abs() <= expected * RATE_SLACK + 1.0,
        "{what}: written {written}, measured {expected:.0}"
    );
}

/// RFC 8216 §4.3.4.2: the largest bit rate of any run of consecutive segments lasting
/// between 0.5 and 1.5 target durations; the whole rendition's rate if no run does.
/// `segments` are (bytes, seconds).
pub fn peak_rate(segments: &[(u64, f64)], target_duration: f64) -> f64 {
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
