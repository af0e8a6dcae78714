//! The `stream-pack` command: argument parsing and presentation over the library.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use stream_pack::error::exit;
use stream_pack::input::live::LiveSource;
use stream_pack::input::watchdog::InputOptions;
use stream_pack::output::publish::{self, Destination, PublishCounts, PublishOptions, Publishing};
use stream_pack::package::crypto::KeySource;
use stream_pack::package::ladder::{Bitrate, Reps};
use stream_pack::package::segment::SegmentFormat;
use stream_pack::package::transcode::Scaling;
use stream_pack::package::transcode::encoding::{AudioCodec, VideoCodec};
use stream_pack::package::window::WindowOptions;
use stream_pack::progress::{Cancel, Monitor, Progress};
use stream_pack::tools::concat_flv::{self, DownloadOptions};
use stream_pack::tools::convert::{ConvertOptions, Target};
use stream_pack::tools::record::time::parse_duration;
use stream_pack::tools::remux::{self, Location, RemuxReport};
use stream_pack::tools::unframe::{self, UnframeOptions, WebSocketSource};
use stream_pack::{LiveJob, PackageOptions, PackageReport, Passthrough};

mod record;

#[derive(Parser)]
#[command(
    name = "stream-pack",
    version,
    about = "Package media into HLS and DASH ladders in one pass, and reassemble captured streams, with FFmpeg's libraries in-process"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Transcode a file into an HLS ladder: master.m3u8, one folder per rung, audio/.
    Hls(HlsArgs),
    /// Transcode a file into a DASH ladder of CMAF segments: manifest.mpd, one folder per rung, audio/.
    Dash(DashArgs),
    /// Show the container and stream facts of a file.
    Probe {
        input: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        timeouts: InputArgs,
    },
    /// Join FLV chunks of one stream into one .flv, or an .mp4 without re-encoding.
    ConcatFlv(ConcatArgs),
    /// Turn a tagged websocket capture of fragmented MP4 (a file, or live with --ws) into an MP4.
    Unframe(UnframeArgs),
    /// Copy anything libav reads (fMP4, TS, FLV, an HLS or DASH manifest or URL) into a progressive MP4.
    Remux {
        /// A file, a manifest, or a URL.
        input: String,
        /// The MP4 to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace an existing output.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        timeouts: InputArgs,
    },
    /// Repackage an HLS or DASH presentation as HLS or DASH, copying the media when the codecs allow.
    Convert(ConvertArgs),
    /// Show the box tree of an MP4/fMP4 or the tags of an FLV, and the problems found in it.
    Inspect {
        input: PathBuf,
        /// Print JSON instead of a listing (one object, an entry per line, written as read).
        #[arg(long)]
        json: bool,
        /// Print only the problems.
        #[arg(long, conflicts_with = "json")]
        problems: bool,
        /// The init segment of a media segment (.m4s): its timescales and track defaults.
        #[arg(long)]
        init: Option<PathBuf>,
    },
    /// Record a live source (RTMP, SRT, live HLS/DASH, a capture device) without re-encoding,
    /// at a given time, for a given duration, reconnecting when it drops; or a schedule of them.
    Record(record::RecordArgs),
    /// Print a completion script for a shell, e.g. `stream-pack completions bash > /etc/bash_completion.d/stream-pack`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `stream-pack man | man -l -`.
    Man,
}

#[derive(clap::Args)]
struct ConcatArgs {
    /// Chunk files in order, or a quoted pattern (`'chunk*.flv'`, taken in natural order).
    #[arg(required_unless_present = "list", conflicts_with = "list")]
    chunks: Vec<String>,
    /// A file of chunk URLs, one per line, downloaded and joined in that order.
    #[arg(long)]
    list: Option<PathBuf>,
    /// The joined file: .flv, or .mp4 (remuxed, no re-encoding).
    #[arg(short, long)]
    output: PathBuf,
    /// Downloads at once (with --list).
    #[arg(long, default_value_t = 4, requires = "list", value_parser = clap::value_parser!(u32).range(1..=64))]
    jobs: u32,
    /// Further attempts after a failed download (with --list).
    #[arg(long, default_value_t = 3, requires = "list")]
    retries: u32,
    /// Replace an existing output.
    #[arg(long)]
    force: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct UnframeArgs {
    /// A capture file: each websocket message as a 4-byte big-endian length and the message.
    #[arg(required_unless_present = "ws", conflicts_with = "ws")]
    capture: Option<PathBuf>,
    /// Capture live from this ws:// or wss:// URL instead.
    #[arg(long)]
    ws: Option<String>,
    /// How long to capture (90s, 10m, 1h); default: until the server closes or Ctrl-C.
    #[arg(long = "for", requires = "ws", value_parser = parse_duration)]
    duration: Option<std::time::Duration>,
    /// An extra request header for --ws, as `Name: value` (repeatable).
    #[arg(long, requires = "ws", value_parser = parse_header)]
    header: Vec<(String, String)>,
    /// A text message to send once connected (repeatable).
    #[arg(long, requires = "ws")]
    send: Vec<String>,
    /// The MP4 to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Keep the fragmented MP4 as assembled instead of defragmenting it.
    #[arg(long)]
    keep_fragmented: bool,
    /// Replace an existing output.
    #[arg(long)]
    force: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

/// What every command that writes a package shares: replacing, progress, quiet.
#[derive(clap::Args)]
struct JobArgs {
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// How to show progress: a bar on a terminal, JSON lines on stderr, or nothing.
    #[arg(long, value_enum, default_value_t = ProgressArg::Bar)]
    progress: ProgressArg,
    /// Print nothing but errors.
    #[arg(short, long)]
    quiet: bool,
}

impl JobArgs {
    /// The progress monitor these arguments ask for.
    fn monitor(&self) -> CliMonitor {
        CliMonitor::new(if self.quiet { ProgressArg::None } else { self.progress })
    }
}

/// The job's cancel, cancelled by Ctrl-C (SIGINT, SIGTERM): every job and every blocked open and
/// read of an input watches it.
fn cancel_on_ctrl_c() -> anyhow::Result<Cancel> {
    let cancel = Cancel::new();
    let handle = cancel.clone();
    ctrlc::set_handler(move || handle.cancel()).context("installing the Ctrl-C handler")?;
    Ok(cancel)
}

/// How long an input may take to open and may stay silent, for every command that reads one.
#[derive(clap::Args)]
struct InputArgs {
    /// How long an input may take to open: to connect and to tell its streams (90s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    open_timeout: std::time::Duration,
    /// How long an input may send nothing before it counts as lost (a live one as dropped).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stall_timeout: std::time::Duration,
}

impl InputArgs {
    fn options(&self, cancel: Cancel) -> InputOptions {
        InputOptions {
            open_timeout: self.open_timeout,
            stall_timeout: self.stall_timeout,
            cancel,
        }
    }
}

#[derive(clap::Args)]
struct ConvertArgs {
    /// An HLS playlist (.m3u8) or DASH manifest (.mpd): a file or a URL.
    input: String,
    #[command(flatten)]
    timeouts: InputArgs,
    /// What to make.
    #[arg(long, value_enum)]
    to: TargetArg,
    #[command(flatten)]
    destination: DestinationArgs,
    /// Segment container for --to hls (dash is always CMAF).
    #[arg(long, value_enum, default_value_t = FormatArg::Fmp4)]
    format: FormatArg,
    /// Seconds per segment (a stream copy cuts at the nearest keyframes).
    #[arg(long, default_value_t = 6.0, allow_negative_numbers = true)]
    segment_duration: f64,
    #[command(flatten)]
    job: JobArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum TargetArg {
    Hls,
    Dash,
}

#[derive(clap::Args)]
struct HlsArgs {
    #[command(flatten)]
    common: PackageArgs,
    /// Segment container.
    #[arg(long, value_enum, default_value_t = FormatArg::Ts)]
    format: FormatArg,
}

#[derive(clap::Args)]
struct DashArgs {
    #[command(flatten)]
    common: PackageArgs,
    /// Also write HLS playlists (master.m3u8) over the same CMAF segments.
    #[arg(long)]
    hls: bool,
}

/// Where a package goes, and how remote destinations are reached.
#[derive(clap::Args)]
struct DestinationArgs {
    /// Where the package goes: a folder (built beside itself and renamed into place when
    /// complete; with --live, written in place as the presentation runs), http(s)://host/path/
    /// (HTTP PUT), s3://, gs:// or az://bucket/prefix/ (credentials from each cloud's standard
    /// environment variables). Repeat it to publish to several at once (one folder at most).
    /// Default for hls and dash: a folder beside a file input, INPUT without its extension
    /// (hls: clip.mp4 → clip/; dash: clip-dash/).
    #[arg(short, long)]
    output: Vec<Destination>,
    /// The S3-compatible server for s3:// destinations and inputs (default: AWS, or AWS_ENDPOINT).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// Uploads in flight at once, per remote destination.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    upload_concurrency: u32,
}

impl DestinationArgs {
    fn publish_options(&self) -> PublishOptions {
        PublishOptions {
            concurrency: self.upload_concurrency as usize,
            s3_endpoint: self.s3_endpoint.clone(),
            ..PublishOptions::default()
        }
    }

    /// The local folder (empty when there is none) and the remote destinations.
    fn publishing(&self) -> stream_pack::Result<(PathBuf, Publishing)> {
        self.publishing_to(self.output.clone())
    }

    /// [`Self::publishing`] to these destinations.
    fn publishing_to(&self, outputs: Vec<Destination>) -> stream_pack::Result<(PathBuf, Publishing)> {
        let (local, remotes) = publish::split(outputs)?;
        let publishing = Publishing {
            remote_only: local.is_none(),
            remotes,
            options: self.publish_options(),
        };
        Ok((local.unwrap_or_default(), publishing))
    }
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
    /// Encrypt every media segment with AES-128 (HLS only; keys generated unless --key-file/--key-info).
    #[arg(long)]
    encrypt: bool,
    /// A new key every N segments, at the same segment in every rendition (0: one key).
    #[arg(long, requires = "encrypt", conflicts_with_all = ["key_file", "key_info"])]
    key_rotation: Option<u32>,
    /// Prefix of the key URIs in the playlists (key file names are appended); default: relative paths.
    #[arg(long, requires = "encrypt", conflicts_with = "key_info")]
    key_url: Option<String>,
    /// Folder for generated keys (created 0700, keys 0600); default: OUTPUT.keys beside the package.
    #[arg(long, requires = "encrypt", conflicts_with_all = ["key_file", "key_info"])]
    key_dir: Option<PathBuf>,
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

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// MPEG-TS segments.
    Ts,
    /// CMAF fragmented MP4 segments with an init segment per rendition.
    Fmp4,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProgressArg {
    Bar,
    Json,
    None,
}

fn parse_reps(text: &str) -> Result<Reps, String> {
    text.parse()
}

fn parse_bitrate(text: &str) -> Result<Bitrate, String> {
    text.parse()
}

fn parse_video_codec(text: &str) -> Result<VideoCodec, String> {
    text.parse()
}

fn parse_audio_codec(text: &str) -> Result<AudioCodec, String> {
    text.parse()
}

/// `Name: value`.
fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: expected `Name: value`"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

/// stream-pack's own log (retries of uploads and downloads, at `info`) goes to stderr when
/// `STREAM_PACK_LOG` asks for it (`info`, `debug`, or any tracing filter such as
/// `stream_pack=info,object_store=info`); otherwise stderr keeps to errors and progress.
fn log_if_asked() {
    if let Ok(filter) = std::env::var("STREAM_PACK_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
}

/// x264 asks for transparent huge pages for every buffer of 2 MB or more and rounds each up to
/// whole huge pages, which the kernel zeroes and keeps resident even where x264 never writes.
/// Without them a six-rung 1080p ladder took 1.0 s less system time, 0.4 s more user time and
/// 27 MB less memory (bench/RESULTS.md). Best effort: a kernel without the switch changes nothing.
fn without_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
}

fn main() -> ExitCode {
    if std::env::var_os("SVT_LOG").is_none() {
        // SVT-AV1 logs its configuration to stderr unless told otherwise; errors only.
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var("SVT_LOG", "1") };
    }
    log_if_asked();
    without_huge_pages();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            eprintln!("{}", one_line(&e.to_string()));
            return ExitCode::from(exit::USAGE as u8);
        }
        Err(e) => e.exit(),
    };
    let result = match cli.command {
        Command::Hls(args) => {
            let format = match args.format {
                FormatArg::Ts => SegmentFormat::Ts,
                FormatArg::Fmp4 => SegmentFormat::Fmp4,
            };
            package(&args.common, PackageOptions::hls, "", |options| options.format = format)
        }
        Command::Dash(args) => package(&args.common, PackageOptions::dash, "-dash", |options| {
            options.manifests.hls = args.hls;
        }),
        Command::Probe { input, json, timeouts } => probe(&input, json, &timeouts),
        Command::ConcatFlv(args) => concat_flv(&args),
        Command::Unframe(args) => unframe(&args),
        Command::Remux {
            input,
            output,
            force,
            timeouts,
        } => remux(&input, &output, force, &timeouts),
        Command::Convert(args) => convert(&args),
        Command::Inspect {
            input,
            json,
            problems,
            init,
        } => inspect(&input, init.as_deref(), json, problems),
        Command::Record(args) => record::run(&args),
        Command::Completions { shell } => completions(shell),
        Command::Man => man(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", each_cause_once(&error));
            let code = error
                .downcast_ref::<stream_pack::Error>()
                .map_or(exit::FAILURE, stream_pack::Error::exit_code);
            ExitCode::from(code as u8)
        }
    }
}

/// The error and its causes on one line, each said once: the library's errors already end with
/// their source's text (an `Io` error's OS message, an `Ffmpeg` error's libav message), which
/// anyhow's `{:#}` would print a second time.
fn each_cause_once(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if line.is_empty() {
            line = cause;
        } else if !line.ends_with(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}

/// Clap's message up to its usage hint, on one line: the bad option and why.
fn one_line(message: &str) -> String {
    message
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

fn probe(input: &Path, json: bool, timeouts: &InputArgs) -> anyhow::Result<()> {
    let info = stream_pack::probe(input, &timeouts.options(cancel_on_ctrl_c()?))?;
    let text = if json {
        serde_json::to_string_pretty(&info).context("serialising the probe")? + "\n"
    } else {
        info.to_string()
    };
    write_stdout(text.as_bytes())
}

fn concat_flv(args: &ConcatArgs) -> anyhow::Result<()> {
    let report = match &args.list {
        Some(list) => {
            let options = DownloadOptions {
                jobs: args.jobs as usize,
                retries: args.retries,
                ..DownloadOptions::default()
            };
            concat_flv::concat_list(list, &args.output, args.force, options)?
        }
        None => concat_flv::concat_flv(&concat_flv::chunk_paths(&args.chunks)?, &args.output, args.force)?,
    };
    if args.quiet {
        return Ok(());
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    println!(
        "joined {} chunks ({} restarted their timestamps): {} video frames, {} audio frames, {:.3} s",
        report.chunks, report.restarts, report.video_frames, report.audio_frames, report.duration
    );
    println!(
        "dropped {} repeated onMetaData and {} repeated sequence headers; kept {} changed sequence headers",
        report.dropped_metadata, report.dropped_sequence_headers, report.changed_sequence_headers
    );
    if let Some(remux) = &report.remux {
        print_remux(remux);
    }
    println!("output: {}", report.output.display());
    Ok(())
}

fn unframe(args: &UnframeArgs) -> anyhow::Result<()> {
    let options = UnframeOptions {
        output: args.output.clone(),
        keep_fragmented: args.keep_fragmented,
        replace: args.force,
    };
    let report = match (&args.capture, &args.ws) {
        (Some(capture), _) => unframe::unframe_file(capture, &options)?,
        (None, Some(url)) => {
            let stop = cancel_on_ctrl_c()?;
            let source = WebSocketSource {
                url: url.clone(),
                duration: args.duration,
                headers: args.header.clone(),
                send: args.send.clone(),
            };
            unframe::unframe_websocket(&source, &options, &stop)?
        }
        (None, None) => unreachable!("clap requires a capture file or --ws"),
    };
    if args.quiet {
        return Ok(());
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let assembled = &report.assembled;
    println!(
        "{} messages, {} fragments, {} bytes of fragmented MP4",
        assembled.messages, assembled.fragments, assembled.bytes
    );
    if let Some(remux) = &report.remux {
        print_remux(remux);
    }
    println!("output: {}", report.output.display());
    Ok(())
}

fn remux(input: &str, output: &Path, force: bool, timeouts: &InputArgs) -> anyhow::Result<()> {
    let options = timeouts.options(cancel_on_ctrl_c()?);
    let report = remux::remux(&Location::parse(input), output, force, &options)?;
    print_remux(&report);
    println!("output: {}", report.output.display());
    Ok(())
}

fn print_remux(report: &RemuxReport) {
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    println!(
        "copied {} ({} packets, {:.3} s) into a progressive MP4, index at the front",
        report.streams.join(", "),
        report.packets,
        report.duration
    );
}

fn convert(args: &ConvertArgs) -> anyhow::Result<()> {
    let target = match args.to {
        TargetArg::Dash => Target::Dash,
        TargetArg::Hls => Target::Hls(match args.format {
            FormatArg::Ts => SegmentFormat::Ts,
            FormatArg::Fmp4 => SegmentFormat::Fmp4,
        }),
    };
    let (output, publishing) = args.destination.publishing()?;
    let mut monitor = args.job.monitor();
    let options = ConvertOptions {
        input: Location::parse(&args.input),
        output,
        target,
        segment_duration: args.segment_duration,
        force: args.job.force,
        publishing,
        input_options: args.timeouts.options(cancel_on_ctrl_c()?),
    };
    let report = stream_pack::tools::convert::convert(&options, &mut monitor);
    monitor.close();
    let report = report?;
    if !args.job.quiet {
        match &report.transcoded_because {
            Some(reason) => eprintln!("note: transcoded: {reason}"),
            None => eprintln!("note: repackaged without re-encoding"),
        }
        print_report(&report.package);
    }
    Ok(())
}

fn inspect(input: &Path, init: Option<&Path>, json: bool, problems_only: bool) -> anyhow::Result<()> {
    use stream_pack::tools::inspect::{Inspector, Style};
    let mut inspector = Inspector::open(input)?;
    if let Some(init) = init {
        inspector = inspector.with_init(init)?;
    }
    let style = match (json, problems_only) {
        (true, _) => Style::Json,
        (false, true) => Style::Problems,
        (false, false) => Style::Listing,
    };
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let (inspection, written) = inspector.print(style, stdout)?;
    unless_broken_pipe(written)?;
    match inspection.problems.as_slice() {
        [] => Ok(()),
        [only] if inspection.problem_count() == 1 => Err(problems_error(input, format!("a problem found: {only}"))),
        [first, ..] => Err(problems_error(
            input,
            format!("{} problems found; the first: {first}", inspection.problem_count()),
        )),
    }
}

/// Writes `bytes` to stdout.
fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    unless_broken_pipe(std::io::stdout().lock().write_all(bytes))
}

/// The result of writing to stdout, where a reader that stops early (`| head`) is no failure.
fn unless_broken_pipe(written: std::io::Result<()>) -> anyhow::Result<()> {
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(()),
    }
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "stream-pack", &mut script);
    if shell == clap_complete::Shell::Bash {
        // clap_complete 4.6 spells a subcommand's state of a hyphenated program two ways: the
        // loop that enters `hls` says `stream__pack__subcmd__hls`, the case that completes it
        // `stream__subcmd__pack__subcmd__hls`, so no option past a subcommand would complete
        // (clap-rs/clap#6421).
        script = String::from_utf8_lossy(&script)
            .replace("stream__subcmd__pack", "stream__pack")
            .into_bytes();
    }
    write_stdout(&script)
}

/// The manual page of `stream-pack`, then one of each command, in one roff stream.
fn man() -> anyhow::Result<()> {
    let mut command = Cli::command();
    command.build();
    let mut page = Vec::new();
    let pages = std::iter::once(&command).chain(command.get_subcommands());
    for command in pages.filter(|c| c.get_name() != "help") {
        clap_mangen::Man::new(command.clone())
            .render(&mut page)
            .context("rendering the manual page")?;
    }
    // groff reads a page on stdin as Latin-1 (`man -l -` says no encoding), so every other
    // character goes as its escape: `→` as `\[u2192]`.
    let ascii: String = String::from_utf8_lossy(&page)
        .chars()
        .map(|c| match c.is_ascii() {
            true => c.to_string(),
            false => format!("\\[u{:04X}]", u32::from(c)),
        })
        .collect();
    write_stdout(ascii.as_bytes())
}

fn problems_error(input: &Path, reason: String) -> anyhow::Error {
    stream_pack::Error::InputCorrupt {
        path: input.to_owned(),
        reason,
    }
    .into()
}

impl PackageArgs {
    fn encryption(&self, output: &Path) -> Option<KeySource> {
        if !self.encrypt {
            return None;
        }
        Some(if let Some(path) = &self.key_info {
            KeySource::Info { path: path.clone() }
        } else if let Some(path) = &self.key_file {
            KeySource::File {
                path: path.clone(),
                key_url: self.key_url.clone(),
            }
        } else {
            KeySource::Generate {
                rotation: self.key_rotation.unwrap_or(0),
                key_dir: self.key_dir.clone().unwrap_or_else(|| default_key_dir(output)),
                key_url: self.key_url.clone(),
            }
        })
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
            encryption: self.encryption(&output),
            audio_bitrate: self.audio_bitrate,
            force: self.job.force,
            publishing,
            live: self.live.job(self.input.as_deref())?,
            ..base(self.input.clone().unwrap_or_default(), output)
        })
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

/// Runs `hls` or `dash`: the options from `args` over the defaults `base` gives, adjusted by
/// `command` for what only that command has; without -o the package goes beside the input, in a
/// folder named by the input and `suffix`.
fn package(
    args: &PackageArgs,
    base: fn(PathBuf, PathBuf) -> PackageOptions,
    suffix: &str,
    command: impl FnOnce(&mut PackageOptions),
) -> anyhow::Result<()> {
    let mut options = args.options(base, default_output(args, suffix)?)?;
    command(&mut options);
    let mut monitor = args.job.monitor();
    // Ctrl-C also stops an open or a read that waits on the input.
    options.input_options = args.timeouts.options(cancel_on_ctrl_c()?);
    let fetched = match &args.input {
        Some(input) => fetch_input(input, &args.destination, &monitor)?,
        None => None,
    };
    if let Some(file) = &fetched {
        options.input = file.path().to_owned();
    }
    let report = stream_pack::package(&options, &mut monitor);
    monitor.close();
    let report = report?;
    if !args.job.quiet {
        print_report(&report);
    }
    Ok(())
}

fn print_report(report: &PackageReport) {
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    for dropped in &report.dropped_above_source {
        eprintln!("note: left out the {dropped}p rung: it is above the source (use --allow-upscale to keep it)");
    }
    for r in &report.renditions {
        let size = r.resolution.map_or("audio".to_owned(), |(w, h)| format!("{w}x{h}"));
        println!(
            "{:<12} {:<10} {:<24} {:>4} segments  {:>8.0} kb/s",
            r.name,
            size,
            r.codecs,
            r.segments,
            r.average_bitrate / 1000.0
        );
    }
    for manifest in &report.manifests {
        println!("package: {}", manifest.display());
    }
    for manifest in &report.remote_manifests {
        println!("package: {manifest}");
    }
    if let Some(published) = &report.published {
        println!("published: {}", uploads(published));
    }
}

/// `12 files, 3.4 MB uploaded, 1 retry, 2 removed`
fn uploads(counts: &PublishCounts) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut text = format!(
        "{}, {:.1} MB uploaded",
        plural(counts.uploads, "file", "files"),
        counts.bytes as f64 / 1e6
    );
    if counts.retries > 0 {
        text += &format!(", {}", plural(counts.retries, "retry", "retries"));
    }
    if counts.deletes > 0 {
        text += &format!(", {} removed", counts.deletes);
    }
    text
}

/// Downloads an s3://, gs:// or az:// input to a temporary file (libav cannot read object
/// storage), showing the progress on the bar; the file is deleted when the returned handle is
/// dropped. Other inputs stay as they are.
fn fetch_input(
    input: &Path,
    destination: &DestinationArgs,
    monitor: &CliMonitor,
) -> anyhow::Result<Option<tempfile::NamedTempFile>> {
    let Some(url) = input.to_str().filter(|text| publish::Cloud::of_url(text).is_some()) else {
        return Ok(None);
    };
    // The key's extension is kept: libav guesses some formats from it.
    let suffix = Path::new(url)
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let file = tempfile::Builder::new()
        .prefix(".stream-pack-input-")
        .suffix(&suffix)
        .tempfile()
        .context("making a temporary file for the input")?;
    if let Some(bar) = &monitor.bar {
        bar.set_message("fetch");
    }
    publish::fetch(url, file.path(), &destination.publish_options(), |done, total| {
        if let Some(bar) = &monitor.bar {
            bar.set_position(done * 1000 / total.max(1));
            bar.set_prefix(format!("{:.1} of {:.1} MB", done as f64 / 1e6, total as f64 / 1e6));
        }
    })?;
    Ok(Some(file))
}

/// Shows progress as the user asked.
struct CliMonitor {
    bar: Option<ProgressBar>,
    json: bool,
}

impl CliMonitor {
    fn new(style: ProgressArg) -> CliMonitor {
        let bar = (style == ProgressArg::Bar && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(1000);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg:10} [{bar:40}] {percent:>3}%  {prefix}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        CliMonitor {
            bar,
            json: style == ProgressArg::Json,
        }
    }

    fn close(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Monitor for CliMonitor {
    fn report(&mut self, progress: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{:?}", progress.stage).to_lowercase());
            bar.set_position(progress.percent.map_or(0, |p| (p * 10.0) as u64));
            let eta = progress.eta.map_or(String::new(), |e| format!("  ETA {e:.0} s"));
            let published = progress
                .published
                .map_or(String::new(), |counts| format!("  {}", uploads(&counts)));
            bar.set_prefix(format!(
                "{:.1}x  {} segments{eta}{published}",
                progress.speed, progress.segments
            ));
        }
        if self.json {
            let mut err = std::io::stderr().lock();
            // Progress lines are best-effort: a closed stderr must not fail the job.
            let _ = serde_json::to_writer(&mut err, progress).map(|_| writeln!(err));
        }
    }
}
