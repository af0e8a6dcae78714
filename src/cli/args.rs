//! Arguments shared by several commands (replacing, progress, timeouts, destinations) and the
//! value parsers of the library's own types.

use std::path::PathBuf;

use clap::ValueEnum;
use stream_pack::input::watchdog::InputOptions;
use stream_pack::output::publish::{self, Destination, PublishOptions, Publishing};
use stream_pack::package::ladder::{Bitrate, Reps};
use stream_pack::package::segment::SegmentFormat;
use stream_pack::package::transcode::encoding::{AudioCodec, VideoCodec};
use stream_pack::progress::Cancel;
use stream_pack::tools::record::time::parse_duration;

use crate::monitor::CliMonitor;

/// What every command that writes a package shares: replacing, progress, quiet.
#[derive(clap::Args)]
pub struct JobArgs {
    /// Replace an existing output folder.
    #[arg(long)]
    pub force: bool,
    /// How to show progress: a bar on a terminal, JSON lines on stderr, or nothing.
    #[arg(long, value_enum, default_value_t = ProgressArg::Bar)]
    pub progress: ProgressArg,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

impl JobArgs {
    /// The progress monitor these arguments ask for.
    pub fn monitor(&self) -> CliMonitor {
        CliMonitor::new(if self.quiet { ProgressArg::None } else { self.progress })
    }
}

/// How long an input may take to open and may stay silent, for every command that reads one.
#[derive(clap::Args)]
pub struct InputArgs {
    /// How long an input may take to open: to connect and to tell its streams (90s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    open_timeout: std::time::Duration,
    /// How long an input may send nothing before it counts as lost (a live one as dropped).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    stall_timeout: std::time::Duration,
}

impl InputArgs {
    pub fn options(&self, cancel: Cancel) -> InputOptions {
        InputOptions {
            open_timeout: self.open_timeout,
            stall_timeout: self.stall_timeout,
            cancel,
            web_from_file: false,
        }
    }
}

/// Where a package goes, and how remote destinations are reached.
#[derive(clap::Args)]
pub struct DestinationArgs {
    /// Where the package goes: a folder (built beside itself and renamed into place when
    /// complete; with --live, written in place as the presentation runs), http(s)://host/path/
    /// (HTTP PUT), s3://, gs:// or az://bucket/prefix/ (credentials from each cloud's standard
    /// environment variables). Repeat it to publish to several at once (one folder at most).
    /// Default for hls and dash: a folder beside a file input, INPUT without its extension
    /// (hls: clip.mp4 → clip/; dash: clip-dash/).
    #[arg(short, long)]
    pub output: Vec<Destination>,
    /// The S3-compatible server for s3:// destinations and inputs (default: AWS, or AWS_ENDPOINT).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// Uploads in flight at once, per remote destination.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    upload_concurrency: u32,
}

impl DestinationArgs {
    pub fn publish_options(&self) -> PublishOptions {
        PublishOptions {
            concurrency: self.upload_concurrency as usize,
            s3_endpoint: self.s3_endpoint.clone(),
            ..PublishOptions::default()
        }
    }

    /// The local folder (empty when there is none) and the remote destinations.
    pub fn publishing(&self) -> stream_pack::Result<(PathBuf, Publishing)> {
        self.publishing_to(self.output.clone())
    }

    /// [`Self::publishing`] to these destinations.
    pub fn publishing_to(&self, outputs: Vec<Destination>) -> stream_pack::Result<(PathBuf, Publishing)> {
        let (local, remotes) = publish::split(outputs)?;
        let publishing = Publishing {
            remote_only: local.is_none(),
            remotes,
            options: self.publish_options(),
        };
        Ok((local.unwrap_or_default(), publishing))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// MPEG-TS segments.
    Ts,
    /// CMAF fragmented MP4 segments with an init segment per rendition.
    Fmp4,
}

impl FormatArg {
    pub fn segment_format(self) -> SegmentFormat {
        match self {
            FormatArg::Ts => SegmentFormat::Ts,
            FormatArg::Fmp4 => SegmentFormat::Fmp4,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    Bar,
    Json,
    None,
}

pub fn parse_reps(text: &str) -> Result<Reps, String> {
    text.parse()
}

pub fn parse_bitrate(text: &str) -> Result<Bitrate, String> {
    text.parse()
}

pub fn parse_video_codec(text: &str) -> Result<VideoCodec, String> {
    text.parse()
}

pub fn parse_audio_codec(text: &str) -> Result<AudioCodec, String> {
    text.parse()
}

/// `Name: value`.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}`: expected `Name: value`"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}
