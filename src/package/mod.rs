//! The packaging job: source → one-pass ladder transcode → segments → playlists → published package.
//!
//! [`package`] runs one of two drivers, each its mode's plan from top to bottom: `vod` (a file
//! or URL, packaged in a staging folder and put in place at the end, its stream copied or passed
//! through when asked) and `live` (a live source, packaged in place as it arrives, under a
//! window). Here are the stages they share: opening the job, the packet loop's steps, handing
//! completed files on, describing and writing the manifests, and delivering the package.

pub mod audio;
pub mod chunk;
pub mod codec_string;
pub mod crypto;
mod keyframes;
pub mod ladder;
pub mod language;
mod live;
pub mod manifest;
pub mod per_title;
mod pipelines;
pub mod rate;
pub mod segment;
pub mod subtitles;
pub mod transcode;
mod vod;
pub mod window;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::input::live::LiveSource;
use crate::input::source::Source;
use crate::input::watchdog::InputOptions;
use crate::output::publish::{PublishCounts, PublishOptions, Publisher, Publishing, Remote};
use crate::output::staging::{self, Workspace};
use crate::package::audio::{AudioRendition, AudioSelection, Surround};
use crate::package::crypto::{
    CommonOptions, CommonScheme, DrmSystem, KeyDestination, KeySchedule, KeySource, Scheme, SharedKeys,
};
use crate::package::ladder::{Bitrate, Ladder, Reps, Rung};
use crate::package::manifest::{LiveState, dash, hls};
use crate::package::per_title::{LadderMode, PerTitleReport};
use crate::package::segment::{Completed, Delivery, EncodedRendition, SegmentClock, SegmentFormat};
use crate::package::subtitles::source::SubtitleSelection;
use crate::package::subtitles::{SubtitleSidecar, TextTrack};
use crate::package::transcode::Scaling;
use crate::package::transcode::encoding::{self, AudioCodec, VideoCodec};
use crate::package::window::WindowOptions;
use crate::progress::{Monitor, Stage, Tracker};

/// Which manifests describe the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifests {
    /// `master.m3u8` and a media playlist per rendition.
    pub hls: bool,
    /// `manifest.mpd`; needs CMAF (fMP4) segments.
    pub dash: bool,
}

/// Whether the top rung may be the source's own video stream instead of an encode of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Passthrough {
    /// With `Reps::Auto`, when the source fits the top rung; never with an explicit ladder.
    #[default]
    Auto,
    /// Always: a source that does not fit the top rung is refused.
    Always,
    /// Never: every rung is encoded.
    Never,
}

/// Everything `stream-pack hls` and `stream-pack dash` can be asked. `PackageOptions::hls` and
/// `PackageOptions::dash` give the CLI's defaults.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    pub input: PathBuf,
    pub output: PathBuf,
    pub reps: Reps,
    /// The ladder file; `None` uses presets/default.toml, built into the binary.
    pub ladder: Option<PathBuf>,
    /// Whether the ladder's bitrates are used as they are or chosen for the title by a probe
    /// (with `Reps::Auto`, VOD and H.264 only).
    pub ladder_mode: LadderMode,
    /// Seconds per segment.
    pub segment_duration: f64,
    /// x264 preset, `medium` by default.
    pub encoder_preset: String,
    /// Where each rung is scaled from: the source (default) or the rung above.
    pub scaling: Scaling,
    pub allow_upscale: bool,
    pub format: SegmentFormat,
    pub video_codec: VideoCodec,
    pub audio_codec: AudioCodec,
    pub audio_bitrate: Bitrate,
    /// The source's audio streams to keep, each its own rendition: every one by default.
    pub audio: AudioSelection,
    /// The language of the rendition players start with; by default the source's
    /// default-disposition stream, else the first kept.
    pub default_audio: Option<String>,
    /// A 5.1 rendition of each multichannel stream beside its stereo downmix (`Aac`, the
    /// default), or the downmix alone (`None`).
    pub surround: Surround,
    /// Package the source's own H.264/HEVC (and AAC) without re-encoding, cut at its keyframes;
    /// `reps`, `ladder` and the codecs are then unused.
    pub copy: bool,
    /// The top rung as the source's own H.264/HEVC stream (when it fits: same codec and size,
    /// 8-bit 4:2:0, bit rate within the rung's maxrate), with every rung cut at its keyframes.
    pub passthrough_top: Passthrough,
    /// Replace an existing output folder.
    pub force: bool,
    pub manifests: Manifests,
    /// Segment encryption, with the keys from here.
    pub encryption: Option<KeySource>,
    /// How `encryption` encrypts: AES-128 (HLS of TS or fMP4 segments) or common encryption
    /// (CMAF segments).
    pub scheme: Scheme,
    /// How a common-encrypted package is signalled, and its clear lead.
    pub common: CommonOptions,
    /// How long the input (live or not) may take to open and may stay silent, and the flag
    /// that cancels the job (Ctrl-C).
    pub input_options: InputOptions,
    /// Package a live source as it arrives; `input` is then unused.
    pub live: Option<LiveJob>,
    /// HTTP and object storage destinations the package is published to as it is made.
    pub publishing: Publishing,
    /// Subtitle files beside the input, each a subtitle rendition (live: cue times count from
    /// the live source's start).
    pub subtitles: Vec<SubtitleSidecar>,
    /// The source's own subtitle streams kept, each a subtitle rendition.
    pub subtitle_streams: SubtitleSelection,
    /// Subtitle renditions whose cues were built in code, after the source's and before the
    /// files'.
    pub text_tracks: Vec<TextTrack>,
}

/// A live presentation: where it comes from and how much of it the manifests keep.
#[derive(Debug, Clone)]
pub struct LiveJob {
    pub source: LiveSource,
    pub window: WindowOptions,
}

impl PackageOptions {
    /// An HLS package of TS segments.
    pub fn hls(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> PackageOptions {
        PackageOptions {
            input: input.into(),
            output: output.into(),
            reps: Reps::Auto,
            ladder: None,
            ladder_mode: LadderMode::Fixed,
            segment_duration: 6.0,
            encoder_preset: "medium".into(),
            scaling: Scaling::Direct,
            allow_upscale: false,
            format: SegmentFormat::Ts,
            video_codec: VideoCodec::H264,
            audio_codec: AudioCodec::Aac,
            audio_bitrate: Bitrate(128_000),
            audio: AudioSelection::All,
            default_audio: None,
            surround: Surround::Aac,
            copy: false,
            passthrough_top: Passthrough::Auto,
            force: false,
            manifests: Manifests { hls: true, dash: false },
            encryption: None,
            scheme: Scheme::Aes128,
            common: CommonOptions::default(),
            input_options: InputOptions::default(),
            live: None,
            publishing: Publishing::default(),
            subtitles: Vec::new(),
            subtitle_streams: SubtitleSelection::All,
            text_tracks: Vec::new(),
        }
    }

    /// A DASH package of CMAF segments.
    pub fn dash(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> PackageOptions {
        PackageOptions {
            format: SegmentFormat::Fmp4,
            manifests: Manifests { hls: false, dash: true },
            ..PackageOptions::hls(input, output)
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.manifests.dash && self.format != SegmentFormat::Fmp4 {
            return Err(invalid(
                "format",
                "with a DASH manifest: DASH needs CMAF segments: use the fmp4 format",
            ));
        }
        if !(self.manifests.hls || self.manifests.dash) {
            return Err(Error::Usage("no manifest asked for: choose HLS, DASH or both".into()));
        }
        let d = self.segment_duration;
        if !(d.is_finite() && (0.1..=3600.0).contains(&d)) {
            return Err(invalid(
                "segment_duration",
                format!("{d}: must be between 0.1 and 3600 seconds"),
            ));
        }
        encoding::preset_index(&self.encoder_preset)?;
        subtitles::check_tracks(&self.text_tracks)?;
        if let Some(live) = &self.live {
            validate_live(self, live)?;
        }
        if let Some(keys) = &self.encryption {
            validate_remote_keys(self, keys)?;
        }
        if self.copy && self.passthrough_top == Passthrough::Always {
            return Err(invalid(
                "passthrough_top",
                "with copy: it is for ladders; copy already packages the source's own stream",
            ));
        }
        if let Some(keys) = &self.encryption {
            validate_encryption(self, keys)?;
        }
        if self.ladder_mode == LadderMode::PerTitle {
            validate_per_title(self)?;
        }
        let segments = match self.format {
            SegmentFormat::Ts => "MPEG-TS",
            SegmentFormat::Fmp4 => "fMP4",
        };
        let unfit = |codec: &dyn std::fmt::Display| {
            format!("{codec}: {segments} segments cannot carry it (use CMAF segments: fMP4 or DASH)")
        };
        if !self.video_codec.fits(self.format) {
            return Err(invalid("video_codec", unfit(&self.video_codec)));
        }
        if !self.audio_codec.fits(self.format) {
            return Err(invalid("audio_codec", unfit(&self.audio_codec)));
        }
        Ok(())
    }
}

/// The per-title probe chooses the bitrates of the auto ladder's H.264 rungs, all encoded, from
/// a whole title.
fn validate_per_title(options: &PackageOptions) -> Result<()> {
    let refusal = match options {
        PackageOptions { live: Some(_), .. } => Some("with live: the probe samples a whole title before encoding"),
        PackageOptions { copy: true, .. } => Some("with copy: nothing is encoded"),
        PackageOptions {
            passthrough_top: Passthrough::Always,
            ..
        } => Some("with passthrough_top: the top rung would not be encoded"),
        PackageOptions {
            reps: Reps::List(_), ..
        } => Some("with a list of reps: it chooses the bitrates of --reps auto"),
        _ if options.video_codec != VideoCodec::H264 => {
            Some("with a codec other than h264: the probe encodes with libx264")
        }
        _ => None,
    };
    match refusal {
        Some(reason) => Err(invalid("ladder_mode", format!("per-title {reason}"))),
        None => Ok(()),
    }
}

/// Keys are never published with the content: with a remote destination, or keys going to a
/// remote key destination, AES-128 playlists must say where the keys are served (a key-info file
/// names its URI itself).
fn validate_remote_keys(options: &PackageOptions, keys: &KeySource) -> Result<()> {
    let fixed_uri = match keys {
        KeySource::Generate { key_url, .. } | KeySource::File { key_url, .. } => key_url.is_some(),
        KeySource::Info { .. } | KeySource::Given(_) => true,
    };
    let remote_keys = match keys {
        KeySource::Generate {
            keys: KeyDestination::Remote(remote),
            ..
        } => Some(remote),
        _ => None,
    };
    if let Some(inside) = remote_keys.and_then(|keys| options.publishing.remotes.iter().find(|o| holds(o, keys))) {
        return Err(invalid(
            "key_destination",
            format!("is inside the destination {inside}: keys never go next to the content"),
        ));
    }
    let needs_uri = (!options.publishing.remotes.is_empty() && options.scheme == Scheme::Aes128)
        || (remote_keys.is_some() && !matches!(options.scheme, Scheme::Common(_)));
    match !needs_uri || fixed_uri {
        true => Ok(()),
        false => Err(invalid(
            "key_url",
            "is needed with a remote destination or key destination: the keys are never published with the \
             content, so the playlists must say where players fetch them",
        )),
    }
}

/// Whether remote destination `outer` is `inner` or holds it.
fn holds(outer: &Remote, inner: &Remote) -> bool {
    match (outer, inner) {
        (Remote::Http(outer), Remote::Http(inner)) => inner.starts_with(outer.as_str()),
        (
            Remote::Bucket { cloud, bucket, prefix },
            Remote::Bucket {
                cloud: inner_cloud,
                bucket: inner_bucket,
                prefix: inner_prefix,
            },
        ) => cloud == inner_cloud && bucket == inner_bucket && inner_prefix.starts_with(prefix.as_str()),
        _ => false,
    }
}

/// The clear lead and licence URL of common encryption.
fn validate_common_options(options: &PackageOptions) -> Result<()> {
    let lead = options.common.clear_lead;
    if !(lead.is_finite() && lead >= 0.0) {
        return Err(invalid("clear_lead", format!("{lead}: must be 0 or more seconds")));
    }
    if lead > 0.0 && matches!(options.scheme, Scheme::Aes128 | Scheme::SampleAes) {
        return Err(invalid(
            "clear_lead",
            "with AES-128 or SAMPLE-AES: a clear lead is for cenc and cbcs",
        ));
    }
    if let Some(url) = &options.common.playready_la_url {
        check_licence_url("playready_la_url", url)?;
    }
    if let Some(url) = &options.common.clearkey_la_url {
        check_licence_url("clearkey_la_url", url)?;
        if !options.common.signals(DrmSystem::ClearKey) {
            return Err(invalid(
                "clearkey_la_url",
                "without clearkey among the DRM systems (drm)",
            ));
        }
        if !options.manifests.dash {
            return Err(invalid(
                "clearkey_la_url",
                "without a DASH manifest: the MPD is what carries it",
            ));
        }
    }
    let common = matches!(options.scheme, Scheme::Common(_));
    if options.common.pssh_in_manifest_only && !common {
        return Err(invalid(
            "pssh_in_manifest_only",
            "is for cenc and cbcs, whose init segments carry pssh boxes",
        ));
    }
    Ok(())
}

/// A licence server URL a manifest names: http or https, with nothing a manifest attribute or
/// element could not hold as it is.
fn check_licence_url(option: &'static str, url: &str) -> Result<()> {
    let http = url.starts_with("http://") || url.starts_with("https://");
    if !http || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(option, "must be an http or https URL"));
    }
    Ok(())
}

/// FairPlay: an `skd://` URI, HLS playlists, a scheme FairPlay decrypts (cbcs, SAMPLE-AES) and
/// one key, which the one URI names.
fn validate_fairplay(options: &PackageOptions, keys: &KeySource) -> Result<()> {
    let asked = options.common.signals(DrmSystem::FairPlay);
    let Some(uri) = &options.common.fairplay_uri else {
        return match asked {
            true => Err(invalid(
                "fairplay_uri",
                "is needed with the fairplay DRM system: the skd:// URI your key server knows the key by",
            )),
            false => Ok(()),
        };
    };
    let skd = uri.len() > "skd://".len() && uri.starts_with("skd://");
    if !skd || uri.chars().any(|c| c == '"' || c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "fairplay_uri",
            "must be an skd:// URI without quotes, whitespace or control characters",
        ));
    }
    if !asked {
        return Err(invalid("fairplay_uri", "without fairplay among the DRM systems (drm)"));
    }
    if !matches!(options.scheme, Scheme::SampleAes | Scheme::Common(CommonScheme::Cbcs)) {
        return Err(invalid("drm", "fairplay: FairPlay decrypts cbcs and sample-aes only"));
    }
    if !options.manifests.hls {
        return Err(invalid(
            "drm",
            "fairplay without HLS playlists: FairPlay is signalled in HLS only",
        ));
    }
    if matches!(keys, KeySource::Generate { rotation: 1.., .. }) {
        return Err(invalid(
            "key_rotation",
            "with fairplay: the one skd:// URI names one key",
        ));
    }
    Ok(())
}

/// The scheme against the manifests, the segment format, the codec and where the keys come from.
fn validate_encryption(options: &PackageOptions, keys: &KeySource) -> Result<()> {
    validate_common_options(options)?;
    validate_fairplay(options, keys)?;
    if options.common.pssh_in_manifest_only && matches!(keys, KeySource::Generate { rotation: 1.., .. }) {
        return Err(invalid(
            "pssh_in_manifest_only",
            "with key rotation: each new key's pssh boxes travel in its fragments",
        ));
    }
    match options.scheme {
        Scheme::Aes128 if options.manifests.dash => Err(invalid(
            "encryption",
            if options.manifests.hls {
                "with DASH and HLS manifests: only the HLS playlists (master.m3u8) would describe the segments \
                 as AES-128 encrypted; DASH needs common encryption: use the cenc or cbcs scheme"
            } else {
                "with a DASH manifest: AES-128 is for HLS; DASH needs common encryption: use the cenc or cbcs scheme"
            },
        )),
        Scheme::Aes128 if matches!(keys, KeySource::Given(_)) => Err(invalid(
            "key",
            "with AES-128: a key ID is for common encryption; give AES-128 keys with a key file",
        )),
        Scheme::Aes128 => Ok(()),
        Scheme::SampleAes => validate_sample_aes(options, keys),
        Scheme::Common(_) if options.format != SegmentFormat::Fmp4 => Err(invalid(
            "encryption",
            "cenc and cbcs encrypt CMAF samples: use the fmp4 format (or DASH)",
        )),
        // Subsample encryption reads H.264 and HEVC slice headers only (stream_pack_formats::cenc).
        Scheme::Common(_) if !options.copy && matches!(options.video_codec, VideoCodec::Vp9 | VideoCodec::Av1) => {
            Err(invalid(
                "encryption",
                format!(
                    "of {}: cenc and cbcs here protect H.264 and HEVC video",
                    options.video_codec
                ),
            ))
        }
        Scheme::Common(_) => match keys {
            KeySource::Given(_) | KeySource::Generate { .. } => Ok(()),
            KeySource::File { .. } | KeySource::Info { .. } => Err(invalid(
                "encryption",
                "with cenc or cbcs: give the key and its ID as key_id and key, or let them be generated",
            )),
        },
    }
}

/// SAMPLE-AES is HLS over MPEG-TS, of H.264 (and AAC), with AES-128's key sources.
fn validate_sample_aes(options: &PackageOptions, keys: &KeySource) -> Result<()> {
    if options.manifests.dash || options.format != SegmentFormat::Ts {
        return Err(invalid(
            "encryption",
            "sample-aes encrypts HLS MPEG-TS segments: use the ts format without DASH (cbcs for CMAF)",
        ));
    }
    if !options.copy && options.video_codec != VideoCodec::H264 {
        return Err(invalid(
            "encryption",
            format!("of {}: sample-aes protects H.264 video", options.video_codec),
        ));
    }
    if !options.copy && options.audio_codec != AudioCodec::Aac {
        return Err(invalid(
            "encryption",
            format!("of {}: sample-aes protects AAC audio", options.audio_codec),
        ));
    }
    if matches!(keys, KeySource::Given(_)) {
        return Err(invalid(
            "key",
            "with sample-aes: a key ID is for common encryption; give the key with a key file",
        ));
    }
    Ok(())
}

/// An option the job cannot use: `option` is its field's name, `reason` starts with its value
/// or the other option it conflicts with.
fn invalid(option: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidOption {
        option,
        reason: reason.into(),
    }
}

fn validate_live(options: &PackageOptions, live: &LiveJob) -> Result<()> {
    let keyframes_only = "with live: it cuts at the source's keyframes, which a live source does not show in advance; \
                          leave it out to encode every rung";
    if options.copy {
        return Err(invalid("copy", keyframes_only));
    }
    if options.passthrough_top == Passthrough::Always {
        return Err(invalid("passthrough_top", keyframes_only));
    }
    match live.window {
        WindowOptions { size: Some(0), .. } => Err(invalid("window", "0: must keep at least 1 segment")),
        WindowOptions {
            size: None,
            delete_segments: true,
        } => Err(invalid(
            "delete_segments",
            "without a window size: an event playlist keeps every segment",
        )),
        _ => Ok(()),
    }
}

/// A rendition of the finished package.
#[derive(Debug, Clone)]
pub struct RenditionReport {
    /// Folder name inside the package: `720p`, `audio`.
    pub name: String,
    /// Frame size; `None` for audio.
    pub resolution: Option<(u32, u32)>,
    pub codecs: String,
    pub segments: usize,
    /// Bits per second over the whole rendition.
    pub average_bitrate: f64,
}

/// What a finished job made.
#[derive(Debug, Clone)]
pub struct PackageReport {
    /// The local package folder (as given when the package went only to remote destinations).
    pub output: PathBuf,
    /// The manifests written: `master.m3u8` and/or `manifest.mpd` inside `output`.
    pub manifests: Vec<PathBuf>,
    pub renditions: Vec<RenditionReport>,
    /// Requested rungs left out because they were above the source.
    pub dropped_above_source: Vec<u32>,
    /// Things the user should know about the result, one sentence each.
    pub notes: Vec<String>,
    /// Things about the result that may be a mistake.
    pub warnings: Vec<String>,
    /// The manifests' URLs at every remote destination.
    pub remote_manifests: Vec<String>,
    /// What went to the remote destinations, if there were any.
    pub published: Option<PublishCounts>,
    /// The ladder `--ladder-mode per-title` chose and the curves it chose it from.
    pub per_title: Option<PerTitleReport>,
}

/// Packages `options.input` as a ladder at `options.output`, or with `options.live` a live source.
pub fn package(options: &PackageOptions, monitor: &mut dyn Monitor) -> Result<PackageReport> {
    crate::input::watchdog::init()?;
    options.validate()?;
    match &options.live {
        Some(live) => live::package(options, live, monitor),
        None => vod::package(options, monitor),
    }
}

fn load_ladder(options: &PackageOptions) -> Result<Ladder> {
    match &options.ladder {
        Some(path) => Ladder::from_file(path),
        None => Ok(Ladder::default_ladder()),
    }
}

/// Where the package will be: `options.output`, made absolute.
fn absolute_output(options: &PackageOptions) -> Result<PathBuf> {
    std::path::absolute(&options.output).map_err(Error::io(&options.output))
}

/// Refuses an output folder that would hold or replace a file the job reads or keeps: the
/// input, the ladder file and the `keys`.
fn refuse_overlap<'a>(
    options: &'a PackageOptions,
    keys: impl IntoIterator<Item = (&'static str, &'a Path)>,
) -> Result<()> {
    let mut kept = vec![("the input", options.input.as_path())];
    kept.extend(options.ladder.iter().map(|path| ("the ladder file", path.as_path())));
    kept.extend(options.subtitles.iter().map(|s| ("a subtitles file", s.path.as_path())));
    kept.extend(keys);
    staging::refuse_overlap(&options.output, kept)
}

/// The keys of a package to be published at `output`, refused (as is an output that would
/// replace what they read or write) before anything is written.
fn schedule_keys(options: &PackageOptions, output: &Path) -> Result<Option<KeySchedule>> {
    let keys = match &options.encryption {
        Some(source) => Some(KeySchedule::new(source.clone(), options.scheme, output)?),
        None => None,
    };
    refuse_overlap(options, keys.iter().flat_map(KeySchedule::paths))?;
    Ok(keys)
}

/// Has the keys written where the package is built, and shares them with the segmenters.
fn stage_keys(mut keys: KeySchedule, output: &Path, root: &Path, publish: &PublishOptions) -> Result<SharedKeys> {
    keys.stage(output, root, publish)?;
    Ok(Arc::new(Mutex::new(keys)))
}

/// Writes the key info file operators need, and warns of keys served with the content.
fn key_notes(
    keys: &mut KeySchedule,
    video: &[EncodedRendition],
    audio: &[EncodedRendition],
    output: &Path,
    notes: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let segments = video
        .iter()
        .chain(audio)
        .map(|r| r.media.segments.len())
        .max()
        .unwrap_or(0);
    if let Some(info) = keys.write_key_info(segments, |period| hls::key_uri(period, output))? {
        notes.push(format!("key info for operators: {info}"));
    }
    if let Some(dir) = keys.key_dir().filter(|d| d.starts_with(output)) {
        warnings.push(format!(
            "the key dir {} lies inside the package: the keys will be served with the content",
            dir.display()
        ));
    }
    Ok(())
}

/// The job's progress from the probe on; a job cancelled while its input opened stops here.
fn start_tracking(source: &Source, options: &PackageOptions, monitor: &mut dyn Monitor) -> Result<Tracker> {
    let mut tracker = Tracker::new(source.declared_duration());
    tracker.stage(Stage::Probe, monitor);
    options.input_options.cancel.check()?;
    Ok(tracker)
}

/// The rungs of the ladder for the source's video (none for audio alone).
fn ladder_plan(source: &Source, ladder: &Ladder, options: &PackageOptions) -> Result<ladder::Plan> {
    match &source.video {
        Some(video) => ladder::plan(
            &options.reps,
            ladder,
            video.display_geometry(),
            options.allow_upscale,
            options.video_codec,
        ),
        None => Ok(ladder::Plan {
            rungs: Vec::new(),
            dropped_above_source: Vec::new(),
        }),
    }
}

/// A boundary every segment duration from the source's start, none past its declared end.
fn regular_clock(source: &Source, options: &PackageOptions) -> SegmentClock {
    let clock = SegmentClock::new(source.start_micros(), options.segment_duration);
    match source.declared_duration() {
        Some(declared) => clock.ending_at(declared),
        None => clock,
    }
}

/// What every stage of one job shares.
struct Job<'a> {
    options: &'a PackageOptions,
    /// The folder the package is built in: a staging folder, or for a live one the output.
    root: &'a Path,
    /// Where the package will be published (absolute).
    output: &'a Path,
    clock: SegmentClock,
    /// The keys, and where the segmenters tell of the files they complete.
    delivery: Delivery,
    /// Where `delivery` tells of completed files.
    completed: Receiver<Completed>,
    /// The top rung is the source's own stream, copied.
    passthrough: bool,
    /// The source's audio streams packaged, each its own rendition.
    audio: Vec<AudioRendition>,
    /// Where the files go as they are completed, besides `root`.
    publisher: Option<&'a Publisher>,
    /// The video frames encoded, when the job is one chunk of a title.
    range: Option<chunk::FrameRange>,
}

impl<'a> Job<'a> {
    fn new(
        options: &'a PackageOptions,
        root: &'a Path,
        output: &'a Path,
        clock: SegmentClock,
        keys: Option<SharedKeys>,
        passthrough: bool,
        publisher: Option<&'a Publisher>,
    ) -> Job<'a> {
        let (events, completed) = mpsc::channel();
        let common = keys
            .as_ref()
            .and_then(|k| k.lock().expect("key schedule lock").common(&options.common));
        // Common encryption has its key in every init segment, not a schedule per segment,
        // unless keys rotate: then each segment takes its crypto period's key.
        let keys = keys.filter(|k| common.is_none() || k.lock().expect("key schedule lock").rotates());
        Job {
            options,
            root,
            output,
            clock,
            delivery: Delivery {
                common: common.map(Arc::new),
                keys,
                events: Some(events),
            },
            completed,
            passthrough,
            audio: Vec::new(),
            publisher,
            range: None,
        }
    }

    /// The job with these audio renditions.
    fn with_audio(self, audio: Vec<AudioRendition>) -> Job<'a> {
        Job { audio, ..self }
    }

    /// The job encoding only these video frames, one chunk of a title.
    fn with_range(self, range: chunk::FrameRange) -> Job<'a> {
        Job {
            range: Some(range),
            ..self
        }
    }

    /// Gives a completed file to the publisher, before any manifest that lists it.
    fn hand_over(&self, file: &Completed) -> Result<()> {
        self.hand_over_file(&file.relative(), &file.path)
    }

    /// Gives the file at `path`, `relative` inside the package, to the publisher.
    fn hand_over_file(&self, relative: &str, path: &Path) -> Result<()> {
        match self.publisher {
            Some(publisher) => publisher.file(relative, path),
            None => Ok(()),
        }
    }

    /// The files completed since the last call, counted and handed over.
    fn take_completed(&self, tracker: &mut Tracker) -> Result<Vec<Completed>> {
        let files: Vec<Completed> = self.completed.try_iter().collect();
        tracker.segments_done(media_segments(&files));
        files.iter().try_for_each(|file| self.hand_over(file))?;
        Ok(files)
    }

    /// The files the segmenters completed while flushing, counted but not yet handed over.
    fn take_flushed(&self, tracker: &mut Tracker) -> Vec<Completed> {
        let files: Vec<Completed> = self.completed.try_iter().collect();
        tracker.segments_done(media_segments(&files));
        files
    }

    /// Reports the media read so far and what the remote destinations have, now and then.
    fn tick(&self, tracker: &mut Tracker, media_end: f64, monitor: &mut dyn Monitor) {
        tracker.advance(media_end);
        tracker.set_published(self.publisher.map(Publisher::counts));
        tracker.tick(monitor);
    }

    /// What the manifests describe: the renditions as given, with their tracks' facts.
    fn manifest_package<'p>(
        &'p self,
        source: &'p Source,
        rungs: &'p [Rung],
        video: &'p [EncodedRendition],
        audio: &'p [EncodedRendition],
        keys: Option<&'p KeySchedule>,
        live: Option<&'p LiveState>,
    ) -> manifest::Package<'p> {
        let video_tracks: Vec<manifest::VideoTrack> = match &source.video {
            Some(input) => rungs
                .iter()
                .zip(video)
                .map(|(rung, rendition)| manifest::VideoTrack {
                    name: &rung.name,
                    width: rung.width,
                    height: rung.height,
                    frame_rate: input.frame_rate,
                    rendition,
                })
                .collect(),
            None => Vec::new(),
        };
        manifest::Package {
            video: video_tracks,
            audio: self
                .audio
                .iter()
                .zip(audio)
                .map(|(a, r)| self.audio_track(a, r))
                .collect(),
            subtitles: &[],
            display_aspect: source.video.as_ref().map_or((16, 9), |v| v.display_aspect()),
            keys: keys.map(KeySchedule::periods),
            sample_aes: keys.is_some_and(KeySchedule::sample_aes),
            fairplay_uri: keys.and(self.options.common.fairplay_uri.as_deref()),
            protection: self.delivery.common.as_deref(),
            output: self.output,
            live,
        }
    }

    /// What the manifests say of an audio rendition.
    fn audio_track<'p>(&self, audio: &'p AudioRendition, rendition: &'p EncodedRendition) -> manifest::AudioTrack<'p> {
        let input = &audio.input;
        let (sample_rate, channels) = if pipelines::copies_audio(self.options, input) {
            (input.sample_rate, input.channels)
        } else {
            encoding::audio_output(self.options.audio_codec, input, audio.surround)
        };
        manifest::AudioTrack {
            stream: input.index,
            name: &audio.dir,
            label: &audio.label,
            channels,
            sample_rate,
            language: input.language.as_deref(),
            default: audio.default,
            commentary: input.disposition.comment,
            describes_video: input.disposition.visual_impaired,
            rendition,
        }
    }

    fn write_manifests(&self, package: &manifest::Package) -> Result<()> {
        let mut written = Vec::new();
        if self.options.manifests.hls {
            written.extend(hls::write_package(self.root, package)?);
        }
        if self.options.manifests.dash {
            written.push(dash::write_manifest(self.root, package)?);
        }
        // What was just written goes to the remote destinations, once the files before it are there.
        if let Some(publisher) = self.publisher {
            for (name, bytes) in written {
                publisher.manifest(&name, bytes)?;
            }
        }
        Ok(())
    }
}

fn media_segments(files: &[Completed]) -> u64 {
    files.iter().filter(|file| file.segment.is_some()).count() as u64
}

/// What a driver made, for its report.
struct Made {
    renditions: Vec<RenditionReport>,
    dropped_above_source: Vec<u32>,
    notes: Vec<String>,
    warnings: Vec<String>,
}

/// The last stage: waits for the remote destinations to have everything, then puts the package
/// in place and says what was made.
fn deliver(
    options: &PackageOptions,
    workspace: Workspace,
    publisher: Option<Publisher>,
    made: Made,
    tracker: &mut Tracker,
) -> Result<PackageReport> {
    let remote_manifests = match &publisher {
        Some(publisher) => entry_manifests(options).flat_map(|name| publisher.urls(name)).collect(),
        None => Vec::new(),
    };
    let published = publisher.map(Publisher::finish).transpose()?;
    tracker.set_published(published);
    let output = workspace.finish()?.unwrap_or_else(|| options.output.clone());
    Ok(PackageReport {
        manifests: entry_manifests(options)
            .filter(|_| !options.publishing.remote_only)
            .map(|name| output.join(name))
            .collect(),
        output,
        renditions: made.renditions,
        dropped_above_source: made.dropped_above_source,
        notes: made.notes,
        warnings: made.warnings,
        remote_manifests,
        published,
        per_title: None,
    })
}

/// The manifests a player is given, inside the package: `master.m3u8` and/or `manifest.mpd`.
fn entry_manifests(options: &PackageOptions) -> impl Iterator<Item = &'static str> {
    [
        (options.manifests.hls, hls::MASTER_PLAYLIST),
        (options.manifests.dash, dash::MANIFEST),
    ]
    .into_iter()
    .filter_map(|(wanted, name)| wanted.then_some(name))
}

fn reports(package: &manifest::Package) -> Vec<RenditionReport> {
    let report = |name: &str, resolution, rendition: &EncodedRendition| RenditionReport {
        name: name.to_owned(),
        resolution,
        codecs: rendition.codecs.clone(),
        segments: rendition.media.segments.len(),
        average_bitrate: manifest::average_bitrate(&rendition.media.segments),
    };
    let mut reports: Vec<RenditionReport> = package
        .video
        .iter()
        .map(|v| report(v.name, Some((v.width, v.height)), v.rendition))
        .collect();
    reports.extend(package.audio.iter().map(|a| report(a.name, None, a.rendition)));
    reports
}
