//! `remux`: anything libav reads (fragmented MP4, MPEG-TS, FLV, an HLS or DASH manifest, local or
//! by URL) to a progressive MP4 with its index (moov) at the front, by stream copy: packets go
//! from the demuxer to libav's mp4 muxer unchanged, with no decoding or encoding.

use std::path::{Path, PathBuf};

use ffmpeg::{Dictionary, Rational, Rescale, format, media};
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};
use crate::input::source;
use crate::input::watchdog::{self, Failure, InputOptions, WatchedInput};
use crate::location::Location;
use crate::output::staging::StagedFile;
use crate::package::{codec_string, segment};

/// Opens the input under `options`' timeouts. libav's DASH demuxer resolves segment names only
/// against an absolute manifest path, so local manifests are opened by their absolute path.
fn open(input: &Location, options: &InputOptions) -> Result<WatchedInput> {
    match input {
        Location::File(path) if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mpd")) => {
            let absolute = std::path::absolute(path).map_err(Error::io(path))?;
            source::open_input(&absolute, options)
        }
        input => source::open_input(&input.to_path(), options),
    }
}

/// What a remux wrote.
#[derive(Debug, Clone)]
pub struct RemuxReport {
    pub output: PathBuf,
    /// One line per stream copied: `video h264 640x360`, `audio aac 48000 Hz`.
    pub streams: Vec<String>,
    /// Seconds from the first presentation time to the end of the last packet.
    pub duration: f64,
    pub packets: u64,
    /// Streams left out, and why.
    pub notes: Vec<String>,
}

/// Remuxes `input`, opened and read under `options`' timeouts, to a progressive MP4 at `output`
/// (refused if it exists, unless `replace`). Nothing is written beside `output` until the input
/// is open; an input that ends before the duration it declares is refused, as by the packagers.
pub fn remux(input: &Location, output: &Path, replace: bool, options: &InputOptions) -> Result<RemuxReport> {
    if let Location::File(path) = input {
        crate::output::staging::refuse_overlap(output, [("the input", path.as_path())])?;
    }
    watchdog::init()?;
    let demuxer = open(input, options)?;
    let declared = source::declared_duration(&demuxer);
    let staged = StagedFile::new(output, replace)?;
    let report = copy_into(input, demuxer, staged.path(), "mp4")?;
    source::check_complete(&input.to_path(), declared, report.duration)?;
    let output = staged.put_in_place()?;
    Ok(RemuxReport { output, ..report })
}

/// A stream of the input and the output stream it goes to.
struct Mapping {
    output: usize,
    input_time_base: Rational,
    output_time_base: Rational,
    /// The input's start time in the input stream's time base, taken off every timestamp so
    /// the MP4 starts at 0, as `ffmpeg -c copy` does.
    start: i64,
}

/// Remuxes `input` into the file at `path` (a staged temporary file).
pub(crate) fn remux_into(input: &Location, path: &Path) -> Result<RemuxReport> {
    remux_as(input, path, "mp4")
}

/// Remuxes `input` into the file at `path` in libav's `container` (`mp4`, `matroska`, `flv`…);
/// an MP4 or MOV gets its index at the front.
pub(crate) fn remux_as(input: &Location, path: &Path, container: &str) -> Result<RemuxReport> {
    watchdog::init()?;
    copy_into(input, open(input, &InputOptions::default())?, path, container)
}

/// Copies the open `demuxer` of `input` into the file at `path`, as [`remux_as`].
fn copy_into(input: &Location, mut demuxer: WatchedInput, path: &Path, container: &str) -> Result<RemuxReport> {
    let (chosen, notes) = choose_streams(&demuxer);
    if chosen.is_empty() {
        return Err(Error::NoMediaStreams { path: input.to_path() });
    }
    let context = || format!("{}: writing the {container} file", path.display());
    let mut muxer = format::output_as(path, container).map_err(Error::ffmpeg(context()))?;
    let mut streams = Vec::new();
    for &index in &chosen {
        let stream = demuxer.stream(index).expect("chosen stream exists");
        let params = stream.parameters();
        check_fits(&muxer, input, index, params.id())?;
        streams.push(describe(&stream));
        let mut out = muxer.add_stream(None).map_err(Error::ffmpeg(context()))?;
        out.set_parameters(params);
        out.set_time_base(stream.time_base());
        out.set_metadata(stream.metadata().to_owned());
        // A container's tag (FLV's, TS's) means nothing to another muxer, which picks its own.
        codec_string::set_codec_tag(&mut out.parameters(), None);
    }
    muxer.set_metadata(demuxer.metadata().to_owned());
    let mut options = Dictionary::new();
    if matches!(container, "mp4" | "mov") {
        options.set("movflags", "+faststart");
    }
    segment::write_header(&mut muxer, options, path, container)?;
    discard_others(&mut demuxer, &chosen);
    let start_micros = source_start(&demuxer);
    let mut mappings: Vec<Option<Mapping>> = (0..demuxer.streams().count()).map(|_| None).collect();
    for (out_index, &index) in chosen.iter().enumerate() {
        let time_base = demuxer.stream(index).expect("chosen stream exists").time_base();
        mappings[index] = Some(Mapping {
            output: out_index,
            input_time_base: time_base,
            output_time_base: muxer.stream(out_index).expect("added stream").time_base(),
            start: start_micros.rescale(Rational::new(1, 1_000_000), time_base),
        });
    }
    let (packets, duration) = copy_packets(&mut demuxer, &mut muxer, &mappings, input, path)?;
    if packets == 0 {
        return Err(Error::NoMediaStreams { path: input.to_path() });
    }
    muxer.write_trailer().map_err(Error::ffmpeg(context()))?;
    Ok(RemuxReport {
        output: path.to_owned(),
        streams,
        duration,
        packets,
        notes,
    })
}

/// Copies every packet of a mapped stream; returns the packet count and the media's duration.
fn copy_packets(
    demuxer: &mut WatchedInput,
    muxer: &mut format::context::Output,
    mappings: &[Option<Mapping>],
    input: &Location,
    path: &Path,
) -> Result<(u64, f64)> {
    let (mut packets, mut end) = (0u64, 0.0f64);
    while let Some(mut packet) = demuxer
        .read()
        .map_err(|f| source::read_error(&input.to_path(), f, end))?
    {
        let Some(mapping) = mappings.get(packet.stream()).and_then(Option::as_ref) else {
            continue;
        };
        if packet.pts().is_none() && packet.dts().is_none() {
            return Err(source::read_error(
                &input.to_path(),
                Failure::Libav(ffmpeg::Error::InvalidData),
                end,
            ));
        }
        packet.set_pts(packet.pts().map(|t| t - mapping.start));
        packet.set_dts(packet.dts().map(|t| t - mapping.start));
        if let Some(pts) = packet.pts().or(packet.dts()) {
            let seconds = (pts + packet.duration().max(0)) as f64 * f64::from(mapping.input_time_base);
            end = end.max(seconds);
        }
        packet.rescale_ts(mapping.input_time_base, mapping.output_time_base);
        packet.set_stream(mapping.output);
        packet.set_position(-1);
        packet.write_interleaved(muxer).map_err(|e| Error::InputCorrupt {
            path: input.to_path(),
            reason: format!(
                "the {} muxer refused a packet at {end:.2} s ({e}); are its timestamps out of order? ({})",
                muxer.format().name(),
                path.display()
            ),
        })?;
        packets += 1;
    }
    Ok((packets, end))
}

/// The streams to copy and notes on the ones left out. An HLS or DASH manifest offers the same
/// media in several variants: the best video and audio are taken. Any other input keeps every
/// audio and video stream.
fn choose_streams(demuxer: &format::context::Input) -> (Vec<usize>, Vec<String>) {
    let adaptive = matches!(demuxer.format().name(), "hls" | "dash");
    let best: Vec<usize> = [media::Type::Video, media::Type::Audio]
        .into_iter()
        .filter_map(|kind| demuxer.streams().best(kind).map(|s| s.index()))
        .collect();
    let mut chosen = Vec::new();
    let mut notes = Vec::new();
    for stream in demuxer.streams() {
        let kind = stream.parameters().medium();
        let cover = stream.disposition().contains(format::stream::Disposition::ATTACHED_PIC);
        let wanted = matches!(kind, media::Type::Video | media::Type::Audio)
            && !cover
            && (!adaptive || best.contains(&stream.index()));
        if wanted {
            chosen.push(stream.index());
        } else if !adaptive {
            notes.push(format!(
                "left out stream #{} ({}): only audio and video go into the MP4",
                stream.index(),
                describe(&stream)
            ));
        }
    }
    if adaptive {
        let variants = demuxer.streams().count();
        if variants > chosen.len() {
            notes.push(format!(
                "the manifest offers {variants} streams; copied the best video and audio"
            ));
        }
    }
    (chosen, notes)
}

/// Tells the demuxer to skip the streams left out (an HLS demuxer then fetches no segments of
/// the other variants).
fn discard_others(demuxer: &mut format::context::Input, chosen: &[usize]) {
    let count = demuxer.streams().count();
    for index in (0..count).filter(|i| !chosen.contains(i)) {
        if let Some(mut stream) = demuxer.stream_mut(index) {
            // SAFETY: a plain field of a stream of the open input, read by the demuxer.
            unsafe { (*stream.as_mut_ptr()).discard = ffmpeg::ffi::AVDiscard::AVDISCARD_ALL };
        }
    }
}

/// The input's start time in microseconds, 0 when unknown.
fn source_start(demuxer: &format::context::Input) -> i64 {
    // SAFETY: reads a plain field of the open input context.
    let start = unsafe { (*demuxer.as_ptr()).start_time };
    if start == ffmpeg::ffi::AV_NOPTS_VALUE { 0 } else { start }
}

/// Refuses a codec the muxer has no sample entry or tag for.
fn check_fits(muxer: &format::context::Output, input: &Location, index: usize, id: ffmpeg::codec::Id) -> Result<()> {
    // SAFETY: the output format pointer is valid while the muxer lives.
    let fits = unsafe {
        ffmpeg::ffi::avformat_query_codec(muxer.format().as_ptr(), id.into(), ffmpeg::ffi::FF_COMPLIANCE_NORMAL)
    };
    if fits == 0 {
        return Err(Error::Usage(format!(
            "{input}: stream #{index} holds {id:?}, which {} cannot carry without re-encoding",
            muxer.format().name()
        )));
    }
    Ok(())
}

fn describe(stream: &format::stream::Stream) -> String {
    let params = stream.parameters();
    let codec =
        ffmpeg::codec::decoder::find(params.id()).map_or_else(|| format!("{:?}", params.id()), |c| c.name().to_owned());
    // SAFETY: plain fields of the stream's codec parameters.
    let (width, height, rate) = unsafe {
        let p = params.as_ptr();
        ((*p).width, (*p).height, (*p).sample_rate)
    };
    match params.medium() {
        media::Type::Video => format!("video {codec} {width}x{height}"),
        media::Type::Audio => format!("audio {codec} {rate} Hz"),
        other => format!("{other:?} {codec}").to_lowercase(),
    }
}
