//! `probe`: the facts about a file's container and streams, as a table or as JSON.

use std::fmt;
use std::path::Path;

use ffmpeg::{Rational, format, media};
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use crate::error::Result;
use crate::input::source;
use crate::input::watchdog::{self, InputOptions};

#[derive(Debug, Clone, Serialize)]
pub struct MediaInfo {
    pub format: FormatInfo,
    pub streams: Vec<StreamInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FormatInfo {
    pub path: String,
    pub name: String,
    /// Seconds, as the container declares.
    pub duration: Option<f64>,
    /// Bits per second over the whole file.
    pub bit_rate: Option<i64>,
    pub size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    pub index: usize,
    /// `video`, `audio`, `subtitle`, `data` or `attachment`.
    pub kind: &'static str,
    pub codec: String,
    pub profile: Option<String>,
    pub level: Option<i32>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Sample aspect ratio, `1:1` for square pixels.
    pub sar: Option<String>,
    /// Display aspect ratio, reduced: `16:9`.
    pub dar: Option<String>,
    /// The display matrix's rotation, degrees counterclockwise, as ffprobe reports it.
    pub rotation: Option<f64>,
    pub frame_rate: Option<f64>,
    pub bit_rate: Option<i64>,
    /// Seconds.
    pub duration: Option<f64>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
    pub language: Option<String>,
    /// The stream's `title` tag.
    pub title: Option<String>,
    /// What the container says the stream is for, in ffprobe's words: `default`, `comment`,
    /// `forced`, `hearing_impaired`, `visual_impaired`, `captions`…
    pub disposition: Vec<&'static str>,
}

/// The dispositions `probe` names, as ffprobe names them.
const DISPOSITIONS: [(format::stream::Disposition, &str); 10] = [
    (format::stream::Disposition::DEFAULT, "default"),
    (format::stream::Disposition::DUB, "dub"),
    (format::stream::Disposition::ORIGINAL, "original"),
    (format::stream::Disposition::COMMENT, "comment"),
    (format::stream::Disposition::FORCED, "forced"),
    (format::stream::Disposition::HEARING_IMPAIRED, "hearing_impaired"),
    (format::stream::Disposition::VISUAL_IMPAIRED, "visual_impaired"),
    (format::stream::Disposition::CAPTIONS, "captions"),
    (format::stream::Disposition::DESCRIPTIONS, "descriptions"),
    (format::stream::Disposition::ATTACHED_PIC, "attached_pic"),
];

/// Reads the container and stream facts of `path` (a file or a URL), opened under `options`'
/// timeouts.
pub fn probe(path: &Path, options: &InputOptions) -> Result<MediaInfo> {
    watchdog::init()?;
    let input = source::open_input(path, options)?;
    let streams = input
        .streams()
        .map(|s| stream_info(path, &s))
        .collect::<Result<Vec<_>>>()?;
    // What ffprobe calls the size: the input's byte count as libav's I/O knows it (a URL's too).
    // SAFETY: the open input's I/O context, read while the input is open.
    let size = unsafe {
        let pb = (*input.as_ptr()).pb;
        if pb.is_null() { -1 } else { ffmpeg::ffi::avio_size(pb) }
    };
    let size = u64::try_from(size).unwrap_or(0);
    Ok(MediaInfo {
        format: FormatInfo {
            path: path.display().to_string(),
            name: input.format().name().to_owned(),
            duration: source::declared_duration(&input),
            bit_rate: positive(input.bit_rate()),
            size,
        },
        streams,
    })
}

fn positive(value: i64) -> Option<i64> {
    (value > 0).then_some(value)
}

fn stream_info(path: &Path, stream: &format::stream::Stream) -> Result<StreamInfo> {
    let params = stream.parameters();
    // SAFETY: the parameters belong to a stream of the open input and outlive this borrow.
    let raw = unsafe { &*params.as_ptr() };
    let kind = match params.medium() {
        media::Type::Video => "video",
        media::Type::Audio => "audio",
        media::Type::Subtitle => "subtitle",
        media::Type::Attachment => "attachment",
        _ => "data",
    };
    let mut info = StreamInfo {
        index: stream.index(),
        kind,
        codec: params.id().name().to_owned(),
        profile: profile_name(params.id(), raw.profile),
        level: (raw.level > 0).then_some(raw.level),
        width: None,
        height: None,
        sar: None,
        dar: None,
        rotation: None,
        frame_rate: None,
        bit_rate: positive(raw.bit_rate),
        duration: seconds(stream.duration(), stream.time_base()),
        sample_rate: None,
        channels: None,
        language: source::language(stream),
        title: source::title(stream),
        disposition: DISPOSITIONS
            .iter()
            .filter(|(flag, _)| stream.disposition().contains(*flag))
            .map(|(_, name)| *name)
            .collect(),
    };
    match kind {
        "video" if raw.width > 0 && raw.height > 0 => {
            let (w, h) = (raw.width as u32, raw.height as u32);
            let sar = Rational::new(raw.sample_aspect_ratio.num, raw.sample_aspect_ratio.den);
            let sar = if sar.numerator() > 0 && sar.denominator() > 0 {
                sar
            } else {
                Rational::new(1, 1)
            };
            let dar = (sar * Rational::new(w as i32, h as i32)).reduce();
            info.width = Some(w);
            info.height = Some(h);
            info.sar = Some(format!("{}:{}", sar.numerator(), sar.denominator()));
            info.dar = Some(format!("{}:{}", dar.numerator(), dar.denominator()));
            info.rotation = source::display_matrix_rotation(stream).map(f64::round);
            info.frame_rate = [stream.avg_frame_rate(), stream.rate()]
                .into_iter()
                .find(|r| r.numerator() > 0 && r.denominator() > 0)
                .map(f64::from);
        }
        "audio" => {
            let decoder = source::decoder_context(path, stream)?
                .audio()
                .map_err(source::reading_parameters(path, stream))?;
            info.sample_rate = Some(decoder.rate()).filter(|r| *r > 0);
            info.channels = Some(decoder.channels()).filter(|c| *c > 0);
        }
        _ => {}
    }
    Ok(info)
}

fn seconds(ticks: i64, time_base: Rational) -> Option<f64> {
    (ticks > 0 && ticks != ffmpeg::ffi::AV_NOPTS_VALUE).then(|| ticks as f64 * f64::from(time_base))
}

fn profile_name(codec: ffmpeg::codec::Id, profile: i32) -> Option<String> {
    // SAFETY: avcodec_profile_name returns a static string or null for any codec/profile pair.
    let name = unsafe { ffmpeg::ffi::avcodec_profile_name(codec.into(), profile) };
    if name.is_null() {
        return None;
    }
    // SAFETY: non-null results point at static NUL-terminated strings.
    let name = unsafe { std::ffi::CStr::from_ptr(name) };
    Some(name.to_string_lossy().into_owned())
}

impl fmt::Display for MediaInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fmt = &self.format;
        writeln!(f, "{}", fmt.path)?;
        writeln!(
            f,
            "  container {}  duration {}  bitrate {}  size {} bytes",
            fmt.name,
            fmt.duration.map_or("-".into(), |d| format!("{d:.3} s")),
            fmt.bit_rate.map_or("-".into(), kbps),
            fmt.size
        )?;
        for s in &self.streams {
            write!(f, "  #{} {:<8} {}", s.index, s.kind, s.codec)?;
            if let Some(p) = &s.profile {
                write!(f, " ({p})")?;
            }
            if let Some(l) = s.level {
                write!(f, " level {l}")?;
            }
            if let (Some(w), Some(h)) = (s.width, s.height) {
                write!(f, "  {w}x{h}")?;
            }
            if let (Some(sar), Some(dar)) = (&s.sar, &s.dar) {
                write!(f, "  SAR {sar} DAR {dar}")?;
            }
            if let Some(r) = s.rotation.filter(|r| *r != 0.0) {
                write!(f, "  rotation {r}°")?;
            }
            if let Some(fps) = s.frame_rate {
                write!(f, "  {fps:.3} fps")?;
            }
            if let Some(rate) = s.sample_rate {
                write!(f, "  {rate} Hz")?;
            }
            if let Some(ch) = s.channels {
                write!(f, "  {ch} ch")?;
            }
            if let Some(b) = s.bit_rate {
                write!(f, "  {}", kbps(b))?;
            }
            if let Some(d) = s.duration {
                write!(f, "  {d:.3} s")?;
            }
            if let Some(l) = &s.language {
                write!(f, "  [{l}]")?;
            }
            if let Some(title) = &s.title {
                write!(f, "  {title:?}")?;
            }
            if !s.disposition.is_empty() {
                write!(f, "  ({})", s.disposition.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

fn kbps(bits: i64) -> String {
    format!("{} kb/s", (bits + 500) / 1000)
}
