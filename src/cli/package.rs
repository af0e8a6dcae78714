//! `hls` and `dash`: their arguments, the library's `PackageOptions` made from them, and the run.

use std::path::{Path, PathBuf};

use stream_pack::input::live::LiveSource;
use stream_pack::location::Location;
use stream_pack::output::publish::Destination;
use stream_pack::package::audio::{AudioSelection, Surround};
use stream_pack::package::crypto::{
    CommonOptions, DrmSystem, Key, KeyDestination, KeyId, KeyPair, KeySource, Scheme, TrackKeys,
};
use stream_pack::package::ladder::{Bitrate, Reps};
use stream_pack::package::per_title::LadderMode;
use stream_pack::package::subtitles::SubtitleSidecar;
use stream_pack::package::subtitles::source::SubtitleSelection;
use stream_pack::package::transcode::Scaling;
use stream_pack::package::transcode::encoding::{AudioCodec, VideoCodec};
use stream_pack::package::window::WindowOptions;
use stream_pack::{LiveJob, PackageOptions, Passthrough};

use crate::args::{
    DestinationArgs, FormatArg, InputArgs, JobArgs, parse_audio_codec, parse_bitrate, parse_reps, parse_video_codec,
};
use crate::{cancel_on_ctrl_c, report};

#[derive(clap::Args)]
pub struct HlsArgs {
    #[command(flatten)]
    common: PackageArgs,
    /// Segment container.
    #[arg(long, value_enum, default_value_t = FormatArg::Ts)]
    format: FormatArg,
}

#[derive(clap::Args)]
pub struct DashArgs {
    #[command(flatten)]
    common: PackageArgs,
    /// Also write HLS playlists (master.m3u8) over the same CMAF segments.
    #[arg(long)]
    hls: bool,
}

#[derive(clap::Args)]
struct PackageArgs {
    /// A media file, an http(s):// URL, or s3://, gs:// or az://bucket/key (downloaded first);
    /// with --live also rtmp://, srt:// or a live HLS/DASH URL.
    #[arg(required_unless_present = "capture")]
    input: Option<PathBuf>,
    #[command(flatten)]
    destination: DestinationArgs,
    #[command(flatten)]
    live: LiveArgs,
    #[command(flatten)]
    timeouts: InputArgs,
    /// Rungs: heights (720,480), explicit rungs (1280x720@3000k), or auto.
    #[arg(long, default_value = "auto", value_parser = parse_reps)]
    reps: Reps,
    /// Ladder file (TOML) giving bitrates per height; default: presets/default.toml.
    #[arg(long)]
    ladder: Option<PathBuf>,
    /// fixed: the ladder's bitrates; per-title: each rung the fewest bits that reach its
    /// quality_target, measured by a probe of the title before encoding (--reps auto, VOD, h264).
    #[arg(long, default_value = "fixed")]
    ladder_mode: LadderMode,
    /// Seconds per segment.
    #[arg(long, default_value_t = 6.0, allow_negative_numbers = true)]
    segment_duration: f64,
    /// x264 preset.
    #[arg(long, default_value = "medium")]
    encoder_preset: String,
    /// Scale every rung from the source (direct), or each from the rung above (cascade: the
    /// scalers cost half as much, rungs made from another rung lose up to 0.5 dB PSNR).
    #[arg(long, default_value = "direct")]
    scaling: Scaling,
    /// Allow rungs taller than the source.
    #[arg(long)]
    allow_upscale: bool,
    /// Package the source's own H.264/HEVC and AAC without re-encoding, cut at its keyframes.
    #[arg(long, conflicts_with_all = ["reps", "ladder", "codec", "audio_codec", "encoder_preset", "scaling", "allow_upscale"])]
    copy: bool,
    /// The top rung is the source's own H.264/HEVC stream when it fits (codec, size, bit rate within
    /// the rung's maxrate); every rung is then cut at the source's keyframes. Default with --reps auto.
    #[arg(long, conflicts_with = "copy", overrides_with = "no_passthrough_top")]
    passthrough_top: bool,
    /// Encode every rung, the top one included, even with --reps auto.
    #[arg(long, overrides_with = "passthrough_top")]
    no_passthrough_top: bool,
    /// Encrypt every media segment: aes-128 (HLS; the default), sample-aes (H.264 and AAC in HLS
    /// TS), or common encryption of CMAF segments, cenc or cbcs (DASH, HLS fMP4). Keys generated
    /// unless given.
    #[arg(long, value_name = "SCHEME", num_args = 0..=1, default_missing_value = "aes-128", value_parser = Scheme::parse)]
    encrypt: Option<Scheme>,
    /// The key ID of common encryption (cenc, cbcs), 32 hex digits, with the one --key of every track.
    #[arg(long, requires = "key")]
    key_id: Option<String>,
    /// The key of common encryption (cenc, cbcs): 32 hex digits with --key-id, or per track type
    /// video:KID:KEY and audio:KID:KEY (both given).
    #[arg(long, requires = "encrypt", conflicts_with_all = ["key_file", "key_info", "key_dir"])]
    key: Vec<String>,
    /// The DRM systems a cenc or cbcs package signals besides the common scheme: clearkey,
    /// widevine, playready, fairplay (cbcs or sample-aes, HLS only) (comma-separated; default clearkey).
    #[arg(long, requires = "encrypt", value_delimiter = ',', value_parser = DrmSystem::parse)]
    drm: Vec<DrmSystem>,
    /// Seconds of cenc or cbcs segments left clear at the start (segments starting before it).
    #[arg(long, requires = "encrypt", value_name = "SECS")]
    clear_lead: Option<f64>,
    /// The licence server URL the PlayReady header (--drm playready) names.
    #[arg(long, requires = "encrypt", value_name = "URL")]
    playready_la_url: Option<String>,
    /// The licence server URL of ClearKey's ContentProtection in the MPD (dashif:Laurl).
    #[arg(long, requires = "encrypt", value_name = "URL")]
    clearkey_la_url: Option<String>,
    /// The skd:// URI FairPlay's HLS key tags give your key server (KSM) (--drm fairplay).
    #[arg(long, requires = "encrypt", value_name = "URI")]
    fairplay_uri: Option<String>,
    /// Put the pssh boxes in the manifests only (MPD cenc:pssh, HLS key tags), not in the init segments.
    #[arg(long, requires = "encrypt")]
    pssh_in_manifest_only: bool,
    /// A new generated key every N segments, at the same segment in every rendition (0: one key).
    #[arg(long, requires = "encrypt", conflicts_with_all = ["key_file", "key_info", "key"])]
    key_rotation: Option<u32>,
    /// Prefix of the key URIs in the playlists (key file names are appended); default: relative paths.
    #[arg(long, requires = "encrypt", conflicts_with = "key_info")]
    key_url: Option<String>,
    /// Folder for generated keys (created 0700, keys 0600); default: OUTPUT.keys beside the package.
    #[arg(long, requires = "encrypt", conflicts_with_all = ["key_file", "key_info"])]
    key_dir: Option<PathBuf>,
    /// Where generated keys and their key info go: a folder (as --key-dir) or a remote destination
    /// of the kinds -o takes (http(s)://, s3://, gs://, az://), never equal to or inside -o.
    #[arg(long, value_name = "DEST", requires = "encrypt", conflicts_with_all = ["key_dir", "key_file", "key_info", "key"])]
    key_destination: Option<Destination>,
    /// One key of your own: 16 raw bytes or 32 hex digits.
    #[arg(long, requires = "encrypt", conflicts_with = "key_info")]
    key_file: Option<PathBuf>,
    /// FFmpeg's key-info file: key URI, key file path, optional IV.
    #[arg(long, requires = "encrypt")]
    key_info: Option<PathBuf>,
    /// Video codec: h264, h265 (hvc1), vp9 or av1; all but h264 need CMAF (fMP4) segments.
    #[arg(long, default_value = "h264", value_parser = parse_video_codec)]
    codec: VideoCodec,
    /// Audio codec: aac, or opus (CMAF only).
    #[arg(long, default_value = "aac", value_parser = parse_audio_codec)]
    audio_codec: AudioCodec,
    /// AAC bitrate of the shared audio rendition.
    #[arg(long, default_value = "128k", value_parser = parse_bitrate)]
    audio_bitrate: Bitrate,
    /// The source's audio streams to keep, each its own rendition: all, none, or a list of
    /// languages (en,ja) or stream indexes as probe numbers them (1,3).
    #[arg(long, default_value = "all", value_parser = AudioSelection::parse)]
    audio: AudioSelection,
    /// The language of the audio rendition players start with; default: the source's default
    /// audio stream, else the first kept.
    #[arg(long)]
    default_audio: Option<String>,
    /// What a source audio stream of 6 channels or more gives besides its stereo downmix: aac
    /// (a 5.1 AAC rendition too, in its own HLS audio group) or none (the downmix alone).
    #[arg(long, default_value = "aac", value_parser = Surround::parse)]
    surround: Surround,
    /// A subtitle file (.srt, .vtt, .ass; UTF-8, UTF-16 or Windows-1252) as a subtitle rendition: PATH[:LANG[:NAME]],
    /// LANG a BCP 47 tag (default und). Repeatable.
    #[arg(long = "subtitles", value_name = "PATH[:LANG[:NAME]]")]
    subtitles: Vec<String>,
    /// The source's text subtitle streams to keep, each a subtitle rendition: all, none, or a
    /// list of languages (en,ja) or stream indexes as probe numbers them (2,4).
    #[arg(long, default_value = "all", value_parser = SubtitleSelection::parse, conflicts_with = "live")]
    subtitle_streams: SubtitleSelection,
    #[command(flatten)]
    job: JobArgs,
}

/// Live packaging: manifests rewritten after every segment while the source runs.
#[derive(clap::Args)]
struct LiveArgs {
    /// Package the input as a live presentation as it arrives (a file or lavfi source is read at its
    /// own pace); Ctrl-C or the source's end closes it.
    #[arg(long)]
    live: bool,
    /// Keep only the newest N segments in the manifests; default: keep all (an EVENT playlist).
    #[arg(long, requires = "live")]
    window: Option<usize>,
    /// Delete segments once they have left the window for one target duration.
    #[arg(long, requires = "window")]
    delete_segments: bool,
    /// A capture device instead of INPUT: lavfi:GRAPH, v4l2:/dev/video0, x11grab::0.0.
    #[arg(long, requires = "live", conflicts_with = "input")]
    capture: Option<String>,
}

impl LiveArgs {
    fn job(&self, input: Option<&Path>) -> anyhow::Result<Option<LiveJob>> {
        if !self.live {
            return Ok(None);
        }
        let source = match (&self.capture, input) {
            (Some(spec), _) => LiveSource::capture(spec)?,
            (None, Some(input)) => LiveSource::parse(&input.to_string_lossy()),
            (None, None) => unreachable!("clap requires INPUT or --capture"),
        };
        Ok(Some(LiveJob {
            source,
            window: WindowOptions {
                size: self.window,
                delete_segments: self.delete_segments,
            },
        }))
    }
}

impl PackageArgs {
    /// The key source; a bad key is named by its option only, never echoed. Generated keys of a
    /// package with no local folder need a key dir given: there is no package to put them beside.
    fn encryption(&self, output: &Path, remote_only: bool) -> anyhow::Result<Option<KeySource>> {
        if self.encrypt.is_none() {
            return Ok(None);
        }
        Ok(Some(if !self.key.is_empty() {
            KeySource::Given(given_keys(self.key_id.as_deref(), &self.key)?)
        } else if let Some(path) = &self.key_info {
            KeySource::Info { path: path.clone() }
        } else if let Some(path) = &self.key_file {
            KeySource::File {
                path: path.clone(),
                key_url: self.key_url.clone(),
            }
        } else if remote_only && self.key_dir.is_none() && self.key_destination.is_none() {
            return Err(stream_pack::Error::Usage(
                "--encrypt with only remote destinations: give --key-dir or --key-destination, where the generated \
                 keys go (they are never published with the content)"
                    .into(),
            )
            .into());
        } else {
            KeySource::Generate {
                rotation: self.key_rotation.unwrap_or(0),
                keys: self.key_destination(output)?,
                key_url: self.key_url.clone(),
            }
        }))
    }

    /// Where generated keys go: --key-destination, --key-dir, or beside the package. A local
    /// --key-destination is refused inside the package (--key-dir there is only warned about).
    fn key_destination(&self, output: &Path) -> anyhow::Result<KeyDestination> {
        let folder = match &self.key_destination {
            Some(Destination::Remote(remote)) => return Ok(KeyDestination::Remote(remote.clone())),
            Some(Destination::Local(folder)) => folder,
            None => {
                return Ok(KeyDestination::Folder(
                    self.key_dir.clone().unwrap_or_else(|| default_key_dir(output)),
                ));
            }
        };
        let absolute = |path: &Path| {
            std::path::absolute(path).map_err(|source| stream_pack::Error::Io {
                path: path.to_owned(),
                source,
            })
        };
        if !output.as_os_str().is_empty() && absolute(folder)?.starts_with(absolute(output)?) {
            return Err(stream_pack::Error::InvalidOption {
                option: "key_destination",
                reason: format!(
                    "{}: inside the package {}: keys never go next to the content",
                    folder.display(),
                    output.display()
                ),
            }
            .into());
        }
        Ok(KeyDestination::Folder(folder.clone()))
    }

    /// The library's options from these arguments, over the defaults `base` gives; the package
    /// goes to `default` when there is no -o.
    fn options(
        &self,
        base: fn(PathBuf, PathBuf) -> PackageOptions,
        default: Option<PathBuf>,
    ) -> anyhow::Result<PackageOptions> {
        let outputs = match default {
            Some(folder) => vec![Destination::Local(folder)],
            None => self.destination.output.clone(),
        };
        let (output, publishing) = self.destination.publishing_to(outputs)?;
        Ok(PackageOptions {
            reps: self.reps.clone(),
            ladder: self.ladder.clone(),
            ladder_mode: self.ladder_mode,
            segment_duration: self.segment_duration,
            encoder_preset: self.encoder_preset.clone(),
            scaling: self.scaling,
            allow_upscale: self.allow_upscale,
            video_codec: self.codec,
            audio_codec: self.audio_codec,
            copy: self.copy,
            passthrough_top: match (self.passthrough_top, self.no_passthrough_top) {
                (true, _) => Passthrough::Always,
                (_, true) => Passthrough::Never,
                _ => Passthrough::Auto,
            },
            encryption: self.encryption(&output, publishing.remote_only)?,
            scheme: self.encrypt.unwrap_or_default(),
            common: CommonOptions {
                systems: match self.drm.as_slice() {
                    [] => CommonOptions::default().systems,
                    systems => systems.to_vec(),
                },
                clear_lead: self.clear_lead.unwrap_or(0.0),
                playready_la_url: self.playready_la_url.clone(),
                clearkey_la_url: self.clearkey_la_url.clone(),
                fairplay_uri: self.fairplay_uri.clone(),
                pssh_in_manifest_only: self.pssh_in_manifest_only,
            },
            audio_bitrate: self.audio_bitrate,
            audio: self.audio.clone(),
            default_audio: self.default_audio.clone(),
            surround: self.surround,
            force: self.job.force,
            publishing,
            live: self.live.job(self.input.as_deref())?,
            subtitles: self.subtitles.iter().map(|spec| SubtitleSidecar::parse(spec)).collect(),
            subtitle_streams: self.subtitle_streams.clone(),
            ..base(self.input.clone().unwrap_or_default(), output)
        })
    }
}

/// The keys of `--key-id` and `--key`: one pair for every track, or one per track type. An error
/// names the option and the form wanted, never the value, which may hold a key.
fn given_keys(key_id: Option<&str>, keys: &[String]) -> Result<TrackKeys, stream_pack::Error> {
    let invalid = |reason: &str| stream_pack::Error::InvalidOption {
        option: "key",
        reason: reason.into(),
    };
    let pair = |kid: &str, key: &str| match (KeyId::from_hex(kid), Key::from_hex(key)) {
        (Some(kid), Some(key)) => Ok(KeyPair::new(kid, key)),
        _ => Err(invalid("and its key ID must be 32 hex digits each")),
    };
    if let Some(kid) = key_id {
        let [key] = keys else {
            return Err(invalid("with --key-id: give one key, for every track"));
        };
        let both = pair(kid, key)?;
        return Ok(TrackKeys {
            video: both.clone(),
            audio: both,
        });
    }
    let (mut video, mut audio) = (None, None);
    for spec in keys {
        let (slot, rest) = match spec.split_once(':') {
            Some(("video", rest)) => (&mut video, rest),
            Some(("audio", rest)) => (&mut audio, rest),
            _ => return Err(invalid("without --key-id: give video:KID:KEY and audio:KID:KEY")),
        };
        let (kid, key) = rest.split_once(':').ok_or_else(|| invalid("must be TYPE:KID:KEY"))?;
        if slot.replace(pair(kid, key)?).is_some() {
            return Err(invalid("given twice for one track type"));
        }
    }
    match (video, audio) {
        (Some(video), Some(audio)) => Ok(TrackKeys { video, audio }),
        _ => Err(invalid("without --key-id: give video:KID:KEY and audio:KID:KEY")),
    }
}

/// Without -o, the package goes beside a file input, as in the Python library stream-pack
/// replaces: `clip/` for `clip.mp4` with the command's `suffix` added (`clip-dash/`), and
/// `clip-hls/` for an input `clip` without extension, whose own name that is. A URL or capture
/// has no folder beside it, so -o is then required.
fn default_output(args: &PackageArgs, suffix: &str) -> anyhow::Result<Option<PathBuf>> {
    if !args.destination.output.is_empty() {
        return Ok(None);
    }
    let no_output = |why: String| stream_pack::Error::Usage(format!("no --output given and {why}: give -o"));
    let input = match &args.input {
        Some(input) if matches!(Location::parse(&input.to_string_lossy()), Location::File(_)) => input,
        Some(url) => return Err(no_output(format!("{} is a URL, with no folder beside it", url.display())).into()),
        None => return Err(no_output("a capture device has no folder beside it".into()).into()),
    };
    let (Some(stem), Some(name)) = (input.file_stem(), input.file_name()) else {
        return Err(no_output(format!("{} names no file", input.display())).into());
    };
    let mut folder = stem.to_owned();
    folder.push(suffix);
    if folder == name {
        folder.push("-hls");
    }
    Ok(Some(input.with_file_name(folder)))
}

/// `OUTPUT.keys` beside the package: outside it, so keys are not served with the content.
fn default_key_dir(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map_or_else(|| "package".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!("{name}.keys"))
}

impl HlsArgs {
    /// The library's options from these arguments.
    pub fn options(&self) -> anyhow::Result<PackageOptions> {
        let format = self.format.segment_format();
        options(&self.common, PackageOptions::hls, "", |options| options.format = format)
    }

    /// How the run shows its progress.
    pub fn job(&self) -> &JobArgs {
        &self.common.job
    }
}

impl DashArgs {
    /// The library's options from these arguments.
    pub fn options(&self) -> anyhow::Result<PackageOptions> {
        options(&self.common, PackageOptions::dash, "-dash", |options| {
            options.manifests.hls = self.hls;
        })
    }

    /// How the run shows its progress.
    pub fn job(&self) -> &JobArgs {
        &self.common.job
    }
}

pub fn hls(args: &HlsArgs) -> anyhow::Result<()> {
    package(&args.common, args.options()?)
}

pub fn dash(args: &DashArgs) -> anyhow::Result<()> {
    package(&args.common, args.options()?)
}

/// The options of `hls` or `dash`: from `args` over the defaults `base` gives, adjusted by
/// `command` for what only that command has; without -o the package goes beside the input, in a
/// folder named by the input and `suffix`.
fn options(
    args: &PackageArgs,
    base: fn(PathBuf, PathBuf) -> PackageOptions,
    suffix: &str,
    command: impl FnOnce(&mut PackageOptions),
) -> anyhow::Result<PackageOptions> {
    let mut options = args.options(base, default_output(args, suffix)?)?;
    command(&mut options);
    // Ctrl-C also stops an open or a read that waits on the input.
    options.input_options = args.timeouts.options(cancel_on_ctrl_c()?);
    Ok(options)
}

/// Runs `hls` or `dash` with the options made from `args`.
fn package(args: &PackageArgs, options: PackageOptions) -> anyhow::Result<()> {
    let mut monitor = args.job.monitor();
    let report = stream_pack::package(&options, &mut monitor);
    monitor.close();
    let report = report?;
    if !args.job.quiet {
        report::print_report(&report);
    }
    Ok(())
}
