//! The packaging job: source → one-pass ladder transcode → segments → playlists → published package.

pub mod codec_string;
pub mod crypto;
pub mod ladder;
pub mod manifest;
pub mod segment;
pub mod transcode;
pub mod window;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};

use ffmpeg::{codec, format::Pixel};
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};
use crate::input::live::{CaptureDevice, LiveSource};
use crate::input::source::{self, AudioInput, Source, VideoInput};
use crate::input::watchdog::InputOptions;
use crate::output::publish::{PublishCounts, Publisher, Publishing};
use crate::output::staging::{self, Staging, Workspace};
use crate::package::crypto::{KeySchedule, KeySource};
use crate::package::ladder::{Bitrate, Ladder, RateControl, Reps, Rung};
use crate::package::manifest::{LiveState, dash, hls};
use crate::package::segment::{Completed, Delivery, EncodedRendition, SegmentClock, SegmentFacts, SegmentFormat};
use crate::package::transcode::copy::{self, StreamCopy};
use crate::package::transcode::encoding::{self, AudioCodec, VideoCodec};
use crate::package::transcode::{
    AudioSettings, AudioTrack, Fanout, RungOutput, Scaling, StreamPipeline, VideoLadder, VideoSettings,
};
use crate::package::window::{Window, WindowOptions};
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
    /// Package the source's own H.264/HEVC (and AAC) without re-encoding, cut at its keyframes;
    /// `reps`, `ladder` and the codecs are then unused.
    pub copy: bool,
    /// The top rung as the source's own H.264/HEVC stream (when it fits: same codec and size,
    /// 8-bit 4:2:0, bit rate within the rung's maxrate), with every rung cut at its keyframes.
    pub passthrough_top: Passthrough,
    /// Replace an existing output folder.
    pub force: bool,
    pub manifests: Manifests,
    /// AES-128 segment encryption (HLS only), with the keys from here.
    pub encryption: Option<KeySource>,
    /// How long the input (live or not) may take to open and may stay silent, and the flag
    /// that cancels the job (Ctrl-C).
    pub input_options: InputOptions,
    /// Package a live source as it arrives; `input` is then unused.
    pub live: Option<LiveJob>,
    /// HTTP and object storage destinations the package is published to as it is made.
    pub publishing: Publishing,
}

/// A live presentation: where it comes from and how much of it the manifests keep.
#[derive(Debug, Clone)]
pub struct LiveJob {
    pub source: LiveSource,
    pub window: WindowOptions,
}

impl LiveJob {
    /// A source that does not arrive at its own pace (a file, a filter graph) is read at its
    /// presentation rate, as a live source would send it.
    fn paced(&self) -> bool {
        matches!(
            self.source,
            LiveSource::File(_)
                | LiveSource::Capture {
                    device: CaptureDevice::Lavfi,
                    ..
                }
        )
    }
}

impl PackageOptions {
    /// An HLS package of TS segments.
    pub fn hls(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> PackageOptions {
        PackageOptions {
            input: input.into(),
            output: output.into(),
            reps: Reps::Auto,
            ladder: None,
            segment_duration: 6.0,
            encoder_preset: "medium".into(),
            scaling: Scaling::Direct,
            allow_upscale: false,
            format: SegmentFormat::Ts,
            video_codec: VideoCodec::H264,
            audio_codec: AudioCodec::Aac,
            audio_bitrate: Bitrate(128_000),
            copy: false,
            passthrough_top: Passthrough::Auto,
            force: false,
            manifests: Manifests { hls: true, dash: false },
            encryption: None,
            input_options: InputOptions::default(),
            live: None,
            publishing: Publishing::default(),
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

    fn validate(&self) -> Result<()> {
        if self.manifests.dash && self.format != SegmentFormat::Fmp4 {
            return Err(Error::Usage("DASH needs CMAF segments: use the fmp4 format".into()));
        }
        if !(self.manifests.hls || self.manifests.dash) {
            return Err(Error::Usage("no manifest asked for: choose HLS, DASH or both".into()));
        }
        let d = self.segment_duration;
        if !(d.is_finite() && (0.1..=3600.0).contains(&d)) {
            return Err(Error::Usage(format!(
                "--segment-duration {d}: must be between 0.1 and 3600 seconds"
            )));
        }
        encoding::preset_index(&self.encoder_preset)?;
        if let Some(live) = &self.live {
            validate_live(self, live)?;
        }
        if self.encryption.is_some() && !self.publishing.remotes.is_empty() {
            return Err(Error::Usage(
                "--encrypt with a remote destination: publishing encrypted packages is not supported yet".into(),
            ));
        }
        if self.copy && self.passthrough_top == Passthrough::Always {
            return Err(Error::Usage(
                "--passthrough-top is for ladders; --copy already packages the source's own stream".into(),
            ));
        }
        if self.encryption.is_some() && self.manifests.dash {
            return Err(Error::Usage(if self.manifests.hls {
                "--encrypt with dash --hls: only the HLS playlists (master.m3u8) would describe the segments as \
                 AES-128 encrypted, and DASH needs CENC, which stream-pack does not support yet"
                    .into()
            } else {
                "--encrypt: DASH encryption needs CENC, which stream-pack does not support yet".into()
            }));
        }
        let segments = match self.format {
            SegmentFormat::Ts => "MPEG-TS",
            SegmentFormat::Fmp4 => "fMP4",
        };
        if !self.video_codec.fits(self.format) {
            return Err(Error::Usage(format!(
                "--codec {}: {segments} segments cannot carry it (use CMAF: --format fmp4, or dash)",
                self.video_codec
            )));
        }
        if !self.audio_codec.fits(self.format) {
            return Err(Error::Usage(format!(
                "--audio-codec {}: {segments} segments cannot carry it (use CMAF: --format fmp4, or dash)",
                self.audio_codec
            )));
        }
        Ok(())
    }
}

fn validate_live(options: &PackageOptions, live: &LiveJob) -> Result<()> {
    let refuse = |what: &str| Err(Error::Usage(format!("--live: {what}")));
    if options.copy || options.passthrough_top == Passthrough::Always {
        return refuse(
            "--copy and --passthrough-top cut at the source's keyframes, which a live source does not show in \
             advance; leave them out to encode every rung",
        );
    }
    if options.encryption.is_some() {
        return refuse("--encrypt is not supported for live presentations yet");
    }
    match live.window {
        WindowOptions { size: Some(0), .. } => refuse("--window must keep at least 1 segment"),
        WindowOptions {
            size: None,
            delete_segments: true,
        } => refuse("--delete-segments needs --window: an event playlist keeps every segment"),
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
}

/// Packages `options.input` as a ladder at `options.output`.
pub fn package(options: &PackageOptions, monitor: &mut dyn Monitor) -> Result<PackageReport> {
    crate::input::source::init()?;
    options.validate()?;
    let ladder = match &options.ladder {
        Some(path) => Ladder::from_file(path)?,
        None => Ladder::default_ladder(),
    };
    // Nothing is written until the input is open: opening may wait for the open timeout or a
    // Ctrl-C, or fail.
    let mut source = match &options.live {
        Some(live) => Source::open_live(&live.source, &options.input_options)?,
        None => Source::fetch_and_open(
            &options.input,
            &options.input_options,
            &options.publishing.options,
            monitor,
        )?,
    };
    // A live presentation is visible while it runs: it is written in place. A package published
    // only to remote destinations is built in a scratch folder.
    let staging = match (&options.live, options.publishing.remote_only) {
        (_, true) => Some(Workspace::scratch()?),
        (None, false) => Some(Workspace::Staged(Staging::new(&options.output, options.force)?)),
        (Some(_), false) => None,
    };
    let publisher = options.publishing.start()?;
    // Where the package will be, for key paths relative to it (keys never go to remote
    // destinations, so a remote-only package has only its scratch folder).
    let output = match &staging {
        Some(scratch) if options.publishing.remote_only => scratch.path().to_owned(),
        _ => std::path::absolute(&options.output).map_err(Error::io(&options.output))?,
    };
    let keys = match &options.encryption {
        Some(source) => Some(KeySchedule::new(source.clone(), &output)?),
        None => None,
    };
    let mut kept = vec![("the input", options.input.as_path())];
    kept.extend(options.ladder.iter().map(|path| ("the ladder file", path.as_path())));
    kept.extend(keys.iter().flat_map(|keys| keys.paths()));
    staging::refuse_overlap(&options.output, kept)?;
    let workspace = match staging {
        Some(workspace) => workspace,
        None => Workspace::InPlace(staging::live_folder(&output, options.force)?),
    };
    let root = workspace.path().to_owned();
    let mut tracker = Tracker::new(source.declared_duration());
    tracker.stage(Stage::Probe, monitor);
    options.input_options.cancel.check()?;
    let plan = match &source.video {
        Some(video) if options.copy => copy_plan(&source, video, options.format)?,
        Some(video) => ladder::plan(
            &options.reps,
            &ladder,
            video.display_geometry(),
            options.allow_upscale,
            options.video_codec,
        )?,
        None => ladder::Plan {
            rungs: Vec::new(),
            dropped_above_source: Vec::new(),
        },
    };
    let mut notes = Vec::new();
    let (clock, passthrough) = segment_clock(&source, &plan, options, &mut notes)?;
    let keys = match keys {
        Some(mut keys) => {
            keys.stage(&output, &root)?;
            Some(Arc::new(Mutex::new(keys)))
        }
        None => None,
    };
    let (events, completed) = mpsc::channel();
    let job = Job {
        options,
        root: &root,
        output: &output,
        clock,
        delivery: Delivery {
            keys: keys.clone(),
            events: Some(events),
        },
        passthrough,
        publisher: publisher.as_ref(),
    };
    let mut window = options
        .live
        .as_ref()
        .map(|live| live_window(&source, &plan.rungs, options, live));
    let mut lost = None;
    let (video, audio) = transcode(
        &mut source,
        &plan.rungs,
        &job,
        (&completed, window.as_mut(), &mut lost),
        &mut tracker,
        monitor,
    )?;
    // The files the segmenters completed while flushing; the last manifests list them all.
    let flushed: Vec<Completed> = completed.try_iter().collect();
    tracker.segments_done(flushed.iter().filter(|file| file.segment.is_some()).count() as u64);
    tracker.stage(Stage::Publish, monitor);
    // Ctrl-C is how a live presentation is ended: it goes on to close its manifests.
    if window.is_none() {
        options.input_options.cancel.check()?;
    }
    for file in flushed {
        take_completed(file, &job, window.as_mut())?;
    }
    if let Some(window) = &mut window {
        publish_live(&source, &plan.rungs, &job, window, true)?;
        delete_due(window, &job, true)?;
    }
    notes.extend(
        video
            .first()
            .filter(|_| options.copy || passthrough)
            .and_then(|v| keyframe_note(&v.media.segments, options.segment_duration, source.video.as_ref())),
    );
    let mut warnings: Vec<String> = lost.into_iter().collect();
    let mut keys_in_force = keys.as_ref().map(|k| k.lock().expect("key schedule lock"));
    let package = package_of(
        &source,
        &plan.rungs,
        &video,
        audio.as_ref(),
        &job,
        keys_in_force.as_deref(),
        None,
    );
    if window.is_none() {
        write_manifests(&job, &package)?;
    }
    let renditions = reports(&package);
    let remote_manifests = match &publisher {
        Some(publisher) => entry_manifests(options).flat_map(|name| publisher.urls(name)).collect(),
        None => Vec::new(),
    };
    if let Some(keys) = keys_in_force.as_deref_mut() {
        let segments = video
            .iter()
            .chain(audio.as_ref())
            .map(|r| r.media.segments.len())
            .max()
            .unwrap_or(0);
        if let Some(info) = keys.write_key_info(segments, |period| hls::key_uri(period, &output))? {
            notes.push(format!("key info for operators: {}", info.display()));
        }
        if let Some(dir) = keys.key_dir().filter(|d| d.starts_with(&output)) {
            warnings.push(format!(
                "the key dir {} lies inside the package: the keys will be served with the content",
                dir.display()
            ));
        }
    }
    drop(keys_in_force);
    let published = publisher.map(Publisher::finish).transpose()?;
    tracker.set_published(published);
    let output = workspace.finish()?.unwrap_or_else(|| options.output.clone());
    if let Some(keys) = &keys {
        keys.lock().expect("key schedule lock").keep();
    }
    tracker.stage(Stage::Done, monitor);
    Ok(PackageReport {
        manifests: entry_manifests(options)
            .filter(|_| !options.publishing.remote_only)
            .map(|name| output.join(name))
            .collect(),
        output,
        renditions,
        dropped_above_source: plan.dropped_above_source,
        notes,
        warnings,
        remote_manifests,
        published,
    })
}

/// Gives a completed file to the publisher (before any manifest that lists it) and to the live
/// window; true when it completes a segment number in every rendition of the window.
fn take_completed(file: Completed, job: &Job, window: Option<&mut Window>) -> Result<bool> {
    if let Some(publisher) = job.publisher {
        publisher.file(&file.relative(), &file.path)?;
    }
    Ok(window.is_some_and(|window| window.add(file)))
}

/// Deletes the live segments whose time has come, here and at every remote destination.
fn delete_due(window: &mut Window, job: &Job, wait: bool) -> Result<()> {
    for path in window.delete_due(wait)? {
        if let (Some(publisher), Ok(relative)) = (job.publisher, path.strip_prefix(job.root)) {
            publisher.delete(&relative.to_string_lossy())?;
        }
    }
    Ok(())
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

/// With `copy`, the one rendition is the source's stream, named by its short side.
fn copy_plan(source: &Source, video: &VideoInput, format: SegmentFormat) -> Result<ladder::Plan> {
    if !copy::copyable(video.codec, format) {
        return Err(Error::Usage(format!(
            "--copy: {} holds {:?} video, which {} segments cannot carry without re-encoding (H.264 goes anywhere, HEVC in fMP4)",
            source.path.display(),
            video.codec,
            if format == SegmentFormat::Ts { "MPEG-TS" } else { "fMP4" },
        )));
    }
    if video.rotation != 0 && format == SegmentFormat::Ts {
        return Err(Error::Usage(format!(
            "--copy: {} is shown rotated by {}° clockwise, which MPEG-TS segments cannot say (no display matrix): use --format fmp4, which carries it, or leave out --copy to rotate the pictures",
            source.path.display(),
            video.rotation
        )));
    }
    let stream = source.input.stream(video.index).expect("chosen stream exists");
    let bitrate = Bitrate(stream.parameters().bit_rate().max(1) as u64);
    let short = video.display_geometry().short_side().round() as u32;
    // The manifests give the picture as shown: the track's display matrix turns it upright.
    let (width, height) = match video.rotation {
        90 | 270 => (video.height, video.width),
        _ => (video.width, video.height),
    };
    Ok(ladder::Plan {
        rungs: vec![Rung {
            name: format!("{short}p"),
            width,
            height,
            rate: RateControl {
                bitrate,
                maxrate: bitrate,
                bufsize: bitrate,
            },
        }],
        dropped_above_source: Vec::new(),
    })
}

/// The clock every rendition is cut by, and whether the top rung is the source's own stream. A
/// stream copy and a passed-through top rung are cut at the source's keyframes, so then the clock
/// follows them and the encoded rungs place their IDRs there too.
fn segment_clock(
    source: &Source,
    plan: &ladder::Plan,
    options: &PackageOptions,
    notes: &mut Vec<String>,
) -> Result<(SegmentClock, bool)> {
    let mut clock = SegmentClock::new(source.start_micros(), options.segment_duration);
    if let Some(declared) = source.declared_duration() {
        clock = clock.ending_at(declared);
    }
    let (Some(video), Some(top)) = (&source.video, plan.rungs.first()) else {
        return Ok((clock, false));
    };
    let passthrough = match options.passthrough_top {
        _ if options.copy || options.live.is_some() => false,
        Passthrough::Always => true,
        Passthrough::Auto => matches!(options.reps, Reps::Auto),
        Passthrough::Never => false,
    };
    if !(options.copy || passthrough) {
        return Ok((clock, false));
    }
    let refuse = |reason: String, notes: &mut Vec<String>| match options.passthrough_top {
        Passthrough::Always => Err(Error::Usage(format!("--passthrough-top: {reason}"))),
        _ => {
            notes.push(format!(
                "the top rung {} is encoded, not passed through: {reason}",
                top.name
            ));
            Ok((clock.clone(), false))
        }
    };
    if let Some(reason) = passthrough_unfit(video, top, options).filter(|_| passthrough) {
        return refuse(reason, notes);
    }
    let scan = copy::keyframe_scan(&source.path, video.index, &clock, &options.input_options)?;
    let scheduled = clock.clone().scheduled(scan.boundaries);
    if !passthrough {
        return Ok((scheduled, false));
    }
    let maxrate = top.rate.maxrate.0 as f64;
    if scan.bitrate > maxrate {
        return refuse(
            format!(
                "the source's video averages {:.0} kb/s, above the top rung's maxrate of {:.0} kb/s",
                scan.bitrate / 1e3,
                maxrate / 1e3
            ),
            notes,
        );
    }
    let spread = scheduled.longest();
    if options.passthrough_top == Passthrough::Auto && spread > 1.5 * options.segment_duration {
        return refuse(
            format!(
                "the source's keyframes make segments of up to {spread:.2} s, against --segment-duration {}",
                options.segment_duration
            ),
            notes,
        );
    }
    notes.push(format!(
        "the top rung {} is the source's own {:?} stream; every rung is cut at its keyframes",
        top.name, video.codec
    ));
    Ok((scheduled, true))
}

/// Why the source's stream cannot stand as the top rung as it is, if it cannot.
fn passthrough_unfit(video: &VideoInput, top: &Rung, options: &PackageOptions) -> Option<String> {
    let same_codec = matches!(
        (video.codec, options.video_codec),
        (codec::Id::H264, VideoCodec::H264) | (codec::Id::HEVC, VideoCodec::H265)
    );
    let sar = video.sample_aspect;
    if !same_codec {
        Some(format!(
            "the source's {:?} video is not the ladder's codec ({})",
            video.codec, options.video_codec
        ))
    } else if !matches!(video.pixel_format, Pixel::YUV420P | Pixel::YUVJ420P) {
        Some(format!(
            "the source's pictures are {:?}, not 8-bit 4:2:0",
            video.pixel_format
        ))
    } else if video.rotation != 0 {
        Some(format!("the source is shown rotated by {}°", video.rotation))
    } else if sar.numerator() > 0 && sar.numerator() != sar.denominator() {
        Some("the source's pixels are not square".into())
    } else if (video.width, video.height) != (top.width, top.height) {
        Some(format!(
            "the source is {}x{} and the top rung {}x{}",
            video.width, video.height, top.width, top.height
        ))
    } else {
        None
    }
}

/// In a stream copy the source's keyframes decide where segments can start; say so when they
/// keep a segment more than a frame longer than the requested duration (the last one too: a
/// source with one keyframe makes one long segment), or one but the last more than a frame
/// shorter.
fn keyframe_note(segments: &[SegmentFacts], requested: f64, video: Option<&VideoInput>) -> Option<String> {
    let frame = video.map_or(0.0, VideoInput::frame_duration);
    let body = &segments[..segments.len().saturating_sub(1)];
    let longest = segments.iter().map(|s| s.duration).fold(0.0, f64::max);
    let shortest = body.iter().map(|s| s.duration).fold(longest, f64::min);
    let uneven = longest - requested > frame + 1e-6 || requested - shortest > frame + 1e-6;
    (!segments.is_empty() && uneven).then(|| {
        let lasting = if longest - shortest < 1e-3 {
            format!("{longest:.3} s")
        } else {
            format!("{shortest:.3}–{longest:.3} s")
        };
        format!(
            "the source's keyframes cannot honour --segment-duration {requested}: segments start at the nearest \
             keyframes and last {lasting} (the playlists give the real durations)"
        )
    })
}

const AUDIO_DIR: &str = "audio";

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
    /// The top rung is the source's own stream, copied.
    passthrough: bool,
    /// Where the files go as they are completed, besides `root`.
    publisher: Option<&'a Publisher>,
}

/// Reads the source once, feeding its video to the ladder and its audio to the shared track.
fn transcode(
    source: &mut Source,
    rungs: &[Rung],
    job: &Job,
    (completed, mut window, lost): (&Receiver<Completed>, Option<&mut Window>, &mut Option<String>),
    tracker: &mut Tracker,
    monitor: &mut dyn Monitor,
) -> Result<(Vec<EncodedRendition>, Option<EncodedRendition>)> {
    let clock = &job.clock;
    let mut video = match &source.video {
        Some(input) => Some(video_pipeline(source, input, rungs, job)?),
        None => None,
    };
    let mut audio = match &source.audio {
        Some(input) => Some(audio_pipeline(source, input, job)?),
        None => None,
    };
    let video_index = source.video.as_ref().map(|v| v.index);
    let audio_index = source.audio.as_ref().map(|a| a.index);
    let mut media_end = 0.0_f64;
    let live = job.options.live.as_ref();
    let pace = live.filter(|l| l.paced()).map(|_| std::time::Instant::now());
    while let Some(packet) = next_packet(source, media_end, live.is_some(), lost)? {
        let index = Some(packet.stream());
        let pipeline = match (&mut video, &mut audio) {
            (Some(v), _) if index == video_index => v,
            (_, Some(a)) if index == audio_index => a,
            _ => continue,
        };
        let time_base = source
            .input
            .stream(packet.stream())
            .expect("packet's stream exists")
            .time_base();
        if let Some(pts) = packet.pts().or(packet.dts()) {
            let start = clock.seconds(pts, time_base);
            if let Some(started) = pace {
                wait_for(started, start);
            }
            if let Some(window) = window.as_deref_mut() {
                window.start_clock(start);
            }
            let end = clock.seconds(pts + packet.duration().max(0), time_base);
            media_end = media_end.max(end);
            tracker.advance(end);
        }
        pipeline.send(&packet)?;
        for file in completed.try_iter() {
            tracker.segments_done(u64::from(file.segment.is_some()));
            let row_complete = take_completed(file, job, window.as_deref_mut())?;
            if let (true, Some(window)) = (row_complete, window.as_deref_mut()) {
                publish_live(source, rungs, job, window, false)?;
            }
        }
        if let Some(window) = window.as_deref_mut() {
            delete_due(window, job, false)?;
        }
        tracker.set_published(job.publisher.map(Publisher::counts));
        tracker.tick(monitor);
        if job.options.input_options.cancel.is_cancelled() {
            // Stopping a live presentation is how it ends: what was sent is finished and kept.
            if live.is_none() {
                return Err(Error::Cancelled);
            }
            break;
        }
    }
    if live.is_none() {
        source::check_complete(&source.path, source.declared_duration(), media_end)?;
    }
    let video = video.map(|v| v.finish()).transpose()?.unwrap_or_default();
    let audio = audio.map(|a| a.finish()).transpose()?.and_then(|mut a| a.pop());
    Ok((video, audio))
}

/// The next packet; `None` at the end of the source, which for a live one is also where it was
/// told to stop or where it was lost (said in `lost`).
fn next_packet(
    source: &mut Source,
    read_so_far: f64,
    live: bool,
    lost: &mut Option<String>,
) -> Result<Option<ffmpeg::Packet>> {
    match source.read(read_so_far) {
        Err(Error::Cancelled) if live => Ok(None),
        Err(error @ Error::LiveDropped { .. }) if live => {
            *lost = Some(format!("{error}; the presentation was closed after {read_so_far:.1} s"));
            Ok(None)
        }
        other => other,
    }
}

/// Sleeps until `media_seconds` after `started`, to read a file at its presentation rate.
fn wait_for(started: std::time::Instant, media_seconds: f64) {
    let due = started + std::time::Duration::from_secs_f64(media_seconds.max(0.0));
    if let Some(ahead) = due.checked_duration_since(std::time::Instant::now()) {
        std::thread::sleep(ahead);
    }
}

/// The window of a live presentation over its renditions, in manifest order. Its target duration
/// is the segment duration rounded up: RFC 8216 does not let it change while the playlist lives,
/// and clock-cut segments overrun the duration by less than an audio frame.
fn live_window(source: &Source, rungs: &[Rung], options: &PackageOptions, live: &LiveJob) -> Window {
    let mut names: Vec<String> = match source.video {
        Some(_) => rungs.iter().map(|r| r.name.clone()).collect(),
        None => Vec::new(),
    };
    names.extend(source.audio.as_ref().map(|_| AUDIO_DIR.to_owned()));
    let target = (options.segment_duration.ceil() as u64).max(1);
    Window::new(names, live.window, target)
}

/// Writes the manifests of a live presentation as its window stands, then lets go of the
/// segments that left it.
fn publish_live(source: &Source, rungs: &[Rung], job: &Job, window: &mut Window, ended: bool) -> Result<()> {
    let (listed, state) = window.listing(ended);
    let video_count = if source.video.is_some() { rungs.len() } else { 0 };
    let (video, audio) = listed.split_at(video_count.min(listed.len()));
    let package = package_of(source, rungs, video, audio.first(), job, None, Some(&state));
    write_manifests(job, &package)?;
    window.published(&state);
    Ok(())
}

/// The ladder (or, with `copy`, the source's own stream) for the video.
fn video_pipeline(source: &Source, input: &VideoInput, rungs: &[Rung], job: &Job) -> Result<Box<dyn StreamPipeline>> {
    let (options, root, clock) = (job.options, job.root, job.clock.clone());
    let stream = source.input.stream(input.index).expect("chosen stream exists");
    let mut outputs = rungs
        .iter()
        .map(|rung| {
            let dir = root.join(&rung.name);
            std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
            Ok(RungOutput {
                rung: rung.clone(),
                dir,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let copy = if options.copy || job.passthrough {
        let encoded = outputs.split_off(1);
        let out = &outputs[0];
        let copy = StreamCopy::new(
            &out.rung.name,
            &out.dir,
            options.format,
            &stream,
            clock.clone(),
            job.delivery.clone(),
        )?;
        outputs = encoded;
        Some(Box::new(copy) as Box<dyn StreamPipeline>)
    } else {
        None
    };
    if outputs.is_empty() {
        return Ok(copy.expect("a rendition per rung"));
    }
    let settings = VideoSettings {
        codec: options.video_codec,
        preset: encoding::preset_index(&options.encoder_preset)?,
        scaling: options.scaling,
        format: options.format,
        delivery: job.delivery.clone(),
    };
    let ladder: Box<dyn StreamPipeline> = Box::new(VideoLadder::new(
        &source.path,
        &stream,
        input.clone(),
        outputs,
        settings,
        clock,
    )?);
    Ok(match copy {
        Some(copy) => Box::new(Fanout(vec![copy, ladder])),
        None => ladder,
    })
}

/// The shared audio rendition: encoded once, or copied when `copy` and the source's is AAC.
fn audio_pipeline(source: &Source, input: &AudioInput, job: &Job) -> Result<Box<dyn StreamPipeline>> {
    let (options, clock) = (job.options, job.clock.clone());
    let dir = job.root.join(AUDIO_DIR);
    std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
    let stream = source.input.stream(input.index).expect("chosen stream exists");
    if copies_audio(options, input) {
        return Ok(Box::new(StreamCopy::new(
            AUDIO_DIR,
            &dir,
            options.format,
            &stream,
            clock,
            job.delivery.clone(),
        )?));
    }
    let settings = AudioSettings {
        codec: options.audio_codec,
        bitrate: options.audio_bitrate,
        format: options.format,
        delivery: job.delivery.clone(),
    };
    Ok(Box::new(AudioTrack::new(
        &source.path,
        &stream,
        input.clone(),
        &dir,
        &settings,
        clock,
    )?))
}

/// Whether the source's audio is packaged as it is: with `copy`, when it is AAC.
fn copies_audio(options: &PackageOptions, input: &AudioInput) -> bool {
    options.copy && input.codec == codec::Id::AAC
}

/// What the manifests describe: the renditions as given, with their tracks' facts.
fn package_of<'a>(
    source: &'a Source,
    rungs: &'a [Rung],
    video: &'a [EncodedRendition],
    audio: Option<&'a EncodedRendition>,
    job: &'a Job,
    keys: Option<&'a KeySchedule>,
    live: Option<&'a LiveState>,
) -> manifest::Package<'a> {
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
    let audio_track = source.audio.as_ref().zip(audio).map(|(input, rendition)| {
        let (sample_rate, channels) = if copies_audio(job.options, input) {
            (input.sample_rate, input.channels)
        } else {
            encoding::audio_output(job.options.audio_codec, input)
        };
        manifest::AudioTrack {
            name: AUDIO_DIR,
            channels,
            sample_rate,
            language: input.language.as_deref(),
            rendition,
        }
    });
    manifest::Package {
        video: video_tracks,
        audio: audio_track,
        display_aspect: source.video.as_ref().map_or((16, 9), |v| v.display_aspect()),
        keys: keys.map(KeySchedule::periods),
        output: job.output,
        live,
    }
}

fn write_manifests(job: &Job, package: &manifest::Package) -> Result<()> {
    let mut written = Vec::new();
    if job.options.manifests.hls {
        written.extend(hls::write_package(job.root, package)?);
    }
    if job.options.manifests.dash {
        written.push(dash::write_manifest(job.root, package)?);
    }
    // What was just written goes to the remote destinations, once the files before it are there.
    if let Some(publisher) = job.publisher {
        for (name, bytes) in written {
            publisher.manifest(&name, bytes)?;
        }
    }
    Ok(())
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
    reports.extend(package.audio.as_ref().map(|a| report(a.name, None, a.rendition)));
    reports
}
