//! `convert`: an HLS or DASH presentation repackaged as the other (or as itself), a thin layer
//! over the packager. libav's HLS and DASH demuxers read the manifest; when the codecs fit the
//! target's segments (H.264 anywhere, HEVC in CMAF, AAC audio) the media is stream-copied, cut at
//! its keyframes (`PackageOptions::copy`); otherwise it is transcoded once, to one rendition at
//! the source's size. The manifests follow the packagers' rules either way. Subtitles, which
//! libav's demuxers do not read, are read here (`hls_text`, `dash_text`) and given to the
//! packager as text tracks.

use std::path::{Path, PathBuf};

mod dash_text;
mod hls_text;
mod pieces;
mod text;

use dash_mpd_core::MPD;
use dash_text::Manifest;
use pieces::{Place, Reader};
use text::Found;

use crate::error::{Error, Result};
use crate::input::source::{AudioInput, Source};
use crate::input::watchdog::{self, InputOptions};
use crate::location::Location;
use crate::output::publish::Publishing;
use crate::package::audio::{AudioPick, AudioSelection};
use crate::package::ladder::{Reps, RungRequest};
use crate::package::segment::SegmentFormat;
use crate::package::subtitles::source::SubtitleSelection;
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
    let reader = Reader::new(&input, &options.input_options);
    let place = Place::of_input(&options.input);
    let mpd = match place.as_ref().filter(|p| p.is_mpd()) {
        Some(place) => Manifest::read(&reader, place)?,
        None => None,
    };
    let (opened, input_options) = libav_input(&input, mpd.as_ref(), &options.input_options);
    let named = |error| as_input(error, &opened, &input);
    let source = Source::open(&opened, &input_options).map_err(named)?;
    let transcoded_because = reason_to_transcode(&source, format);
    let audio = audio_to_carry(&source, mpd.as_ref().map(Manifest::mpd));
    let subtitles = subtitles(&source, &reader, place.as_ref(), mpd.as_ref())?;
    let adaptive = matches!(source.input.format().name(), "hls" | "dash");
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
        audio,
        text_tracks: subtitles.tracks,
        // Read above instead: libav's HLS demuxer makes no subtitle streams, its DASH demuxer
        // (over HTTP) one that counts period time, which is not the media's clock.
        subtitle_streams: match adaptive {
            true => SubtitleSelection::None,
            false => SubtitleSelection::All,
        },
        // The source's own size, even if the ladder's rungs stop below it.
        allow_upscale: true,
        segment_duration: options.segment_duration,
        force: options.force,
        publishing: options.publishing.clone(),
        input_options,
        ..base(opened.clone(), options.output.clone())
    };
    let mut package = package::package(&package_options, monitor).map_err(named)?;
    package.notes.extend(subtitles.notes);
    Ok(ConvertReport {
        package,
        copied: transcoded_because.is_none(),
        transcoded_because,
    })
}

/// What libav opens, and how: the input, or the copy of its MPD without text sets (which, for
/// an MPD on the web, names HTTP segments from a file).
fn libav_input(input: &Path, mpd: Option<&Manifest>, options: &InputOptions) -> (PathBuf, InputOptions) {
    match mpd.and_then(|m| m.without_text.as_ref().map(|(_, copy)| (m, copy))) {
        Some((mpd, copy)) => {
            let options = InputOptions {
                web_from_file: mpd.on_web(),
                ..options.clone()
            };
            (copy.clone(), options)
        }
        None => (input.to_owned(), options.clone()),
    }
}

/// `error` naming `input` where it names libav's copy of it: the user gave the one.
fn as_input(error: Error, copy: &Path, input: &Path) -> Error {
    let named = |path: PathBuf| if path == copy { input.to_owned() } else { path };
    match error {
        Error::InputUnreadable { path, reason } => Error::InputUnreadable {
            path: named(path),
            reason,
        },
        Error::NoMediaStreams { path } => Error::NoMediaStreams { path: named(path) },
        Error::InputTruncated { path, end, declared } => Error::InputTruncated {
            path: named(path),
            end,
            declared,
        },
        Error::InputCorrupt { path, reason } => Error::InputCorrupt {
            path: named(path),
            reason,
        },
        Error::InputIncomplete { path, piece, reason } => Error::InputIncomplete {
            path: named(path),
            piece,
            reason,
        },
        other => other,
    }
}

/// The input's subtitle renditions, which libav does not read: an HLS master's, a DASH MPD's.
/// Cue times count from libav's start time of the input, which is the packager's zero.
fn subtitles(source: &Source, reader: &Reader, place: Option<&Place>, mpd: Option<&Manifest>) -> Result<Found> {
    let start_ms = source.start_micros().div_euclid(1000);
    match (source.input.format().name(), place, mpd) {
        ("hls", Some(place), _) => hls_text::read(reader, place, start_ms),
        ("dash", _, Some(mpd)) => mpd.subtitles(reader, start_ms),
        _ => Ok(Found::default()),
    }
}

/// The audio streams to carry: each content once. libav's HLS demuxer makes streams of every
/// variant's playlists, so a rendition in the audio groups of several variants (a language beside
/// both a stereo and a 5.1 group) is several streams, and so is the audio each rung of a
/// presentation with muxed audio carries; they are told apart by what the master playlist says
/// of them (its NAME is the stream's `comment`), language, channels, rate and codec. Its DASH
/// demuxer makes a stream of each Representation: of an AdaptationSet's, one content at several
/// bit rates, the best is kept.
fn audio_to_carry(source: &Source, mpd: Option<&MPD>) -> AudioSelection {
    let mut carried: Vec<&AudioInput> = source.audio_streams.iter().collect();
    if source.input.format().name() == "hls" {
        let mut seen = Vec::new();
        carried.retain(|audio| {
            let comment = source
                .input
                .stream(audio.index)
                .and_then(|s| s.metadata().get("comment").map(str::to_owned));
            let identity = (
                audio.language.clone(),
                comment,
                audio.channels,
                audio.sample_rate,
                audio.codec,
            );
            let first = !seen.contains(&identity);
            seen.push(identity);
            first
        });
    }
    if let (Some(mpd), "dash") = (mpd, source.input.format().name()) {
        let sets = audio_adaptation_sets(mpd);
        carried.retain(|audio| !outranked(source, audio.index, &sets));
    }
    AudioSelection::Streams(carried.iter().map(|audio| AudioPick::Index(audio.index)).collect())
}

/// Each audio AdaptationSet of the MPD, as its Representations' ids and bandwidths.
fn audio_adaptation_sets(mpd: &MPD) -> Vec<Vec<(String, u64)>> {
    let is_audio = |set: &&dash_mpd_core::AdaptationSet| {
        set.contentType.as_deref() == Some("audio")
            || set.mimeType.as_deref().is_some_and(|mime| mime.starts_with("audio/"))
            || set
                .representations
                .iter()
                .any(|r| r.mimeType.as_deref().is_some_and(|mime| mime.starts_with("audio/")))
    };
    mpd.periods
        .iter()
        .flat_map(|period| period.adaptations.iter().filter(is_audio))
        .map(|set| {
            let representation = |r: &dash_mpd_core::Representation| Some((r.id.clone()?, r.bandwidth.unwrap_or(0)));
            set.representations.iter().filter_map(representation).collect()
        })
        .collect()
}

/// Whether the stream is a Representation of an AdaptationSet whose best is another: the one of
/// highest bandwidth, the first listed of equals.
fn outranked(source: &Source, index: usize, sets: &[Vec<(String, u64)>]) -> bool {
    let Some(id) = source
        .input
        .stream(index)
        .and_then(|s| s.metadata().get("id").map(str::to_owned))
    else {
        return false;
    };
    sets.iter().any(|set| {
        let best = set.iter().rev().max_by_key(|(_, bandwidth)| *bandwidth);
        set.iter().any(|(rep, _)| *rep == id) && best.is_some_and(|(rep, _)| *rep != id)
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
