//! `convert`: an HLS or DASH presentation repackaged as the other (or as itself), a thin layer
//! over the packager. libav's HLS and DASH demuxers read the manifest; when the codecs fit the
//! target's segments (H.264 anywhere, HEVC in CMAF, AAC audio) the media is stream-copied, cut at
//! its keyframes (`PackageOptions::copy`); otherwise it is transcoded once, to one rendition at
//! the source's size. The manifests follow the packagers' rules either way.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::input::source::Source;
use crate::input::watchdog::{self, InputOptions};
use crate::location::Location;
use crate::output::publish::Publishing;
use crate::package::ladder::{Reps, RungRequest};
use crate::package::segment::SegmentFormat;
use crate::package::transcode::copy;
use crate::package::{self, PackageOptions, PackageReport};
use crate::progress::Monitor;

/// The presentation to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Hls(SegmentFormat),
    Dash,
}

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// A manifest (`.m3u8`, `.mpd`) or any file libav reads, on disk or at a URL.
    pub input: Location,
    pub output: PathBuf,
    pub target: Target,
    pub segment_duration: f64,
    pub force: bool,
    /// HTTP and object storage destinations, as for the packagers.
    pub publishing: Publishing,
    /// The input's timeouts and the flag that cancels the conversion, as for the packagers.
    pub input_options: InputOptions,
}

/// What a conversion did.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub package: PackageReport,
    /// Whether the media was stream-copied (`false`: transcoded).
    pub copied: bool,
    /// Why the media was transcoded, when it was.
    pub transcoded_because: Option<String>,
}

/// Converts `options.input` into a package at `options.output`.
pub fn convert(options: &ConvertOptions, monitor: &mut dyn Monitor) -> Result<ConvertReport> {
    watchdog::init()?;
    let input = match &options.input {
        // libav's DASH demuxer resolves segments only against an absolute manifest path.
        Location::File(path) => std::path::absolute(path).map_err(Error::io(path))?,
        // The packager opens a path that reads as a URL with libav's network protocols.
        url => url.to_path(),
    };
    let (format, base): (SegmentFormat, fn(PathBuf, PathBuf) -> PackageOptions) = match options.target {
        Target::Hls(format) => (format, |i, o| PackageOptions::hls(i, o)),
        Target::Dash => (SegmentFormat::Fmp4, |i, o| PackageOptions::dash(i, o)),
    };
    let source = Source::open(&input, &options.input_options)?;
    let transcoded_because = reason_to_transcode(&source, format);
    let reps = match (&transcoded_because, &source.video) {
        (Some(_), Some(video)) => Reps::List(vec![RungRequest::Height(
            video.display_geometry().short_side().round() as u32
        )]),
        _ => Reps::Auto,
    };
    drop(source);
    let package_options = PackageOptions {
        format,
        copy: transcoded_because.is_none(),
        reps,
        // The source's own size, even if the ladder's rungs stop below it.
        allow_upscale: true,
        segment_duration: options.segment_duration,
        force: options.force,
        publishing: options.publishing.clone(),
        input_options: options.input_options.clone(),
        ..base(input, options.output.clone())
    };
    let package = package::package(&package_options, monitor)?;
    Ok(ConvertReport {
        package,
        copied: transcoded_because.is_none(),
        transcoded_because,
    })
}

/// Why the source's video cannot be copied into `format` segments, if it cannot.
fn reason_to_transcode(source: &Source, format: SegmentFormat) -> Option<String> {
    let video = source.video.as_ref()?;
    (!copy::copyable(video.codec, format)).then(|| {
        let segments = match format {
            SegmentFormat::Ts => "MPEG-TS",
            SegmentFormat::Fmp4 => "CMAF",
        };
        format!("{:?} video cannot be copied into {segments} segments", video.codec)
    })
}
