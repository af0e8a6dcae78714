//! The source's own subtitle streams, read in the one pass: a text one (SubRip, mov_text, WebVTT,
//! ASS/SSA) is decoded by libav, whose text decoders all give ASS events, into cues; a picture one
//! (PGS, DVD, DVB) cannot become text and is left out with a note naming it.

use std::path::PathBuf;

use ffmpeg::codec::{self, subtitle::Rect};
use ffmpeg::format::stream::{Disposition, Stream};
use ffmpeg::{Packet, Rational, media};
use ffmpeg_next as ffmpeg;
use stream_pack_formats::subtitles::{self as cues, Cue, Markup};

use super::TextTrack;
use crate::error::{Error, Result};
use crate::input::source::{self, Source};
use crate::package::language;
use crate::package::segment::SegmentClock;

/// The codecs whose events are text libav decodes.
const TEXT_CODECS: [codec::Id; 6] = [
    codec::Id::SUBRIP,
    codec::Id::SRT,
    codec::Id::MOV_TEXT,
    codec::Id::WEBVTT,
    codec::Id::ASS,
    codec::Id::SSA,
];

/// The codecs of pictures of text.
const PICTURE_CODECS: [codec::Id; 3] = [
    codec::Id::HDMV_PGS_SUBTITLE,
    codec::Id::DVD_SUBTITLE,
    codec::Id::DVB_SUBTITLE,
];

/// A text stream being read: its decoder and the cues so far.
struct TextStream {
    index: usize,
    time_base: Rational,
    decoder: codec::decoder::Subtitle,
    track: TextTrack,
}

/// Every text subtitle stream of the source, fed its packets as the demuxer reads them.
pub struct SourceSubtitles {
    /// The source, for messages.
    path: PathBuf,
    streams: Vec<TextStream>,
}

impl SourceSubtitles {
    /// A reader of each text stream; each other subtitle stream is left out with a note.
    pub fn new(source: &Source, notes: &mut Vec<String>) -> Result<SourceSubtitles> {
        let mut streams = Vec::new();
        for stream in source
            .input
            .streams()
            .filter(|s| s.parameters().medium() == media::Type::Subtitle)
        {
            let id = stream.parameters().id();
            if TEXT_CODECS.contains(&id) {
                streams.push(text_stream(&stream)?);
            } else {
                let why = match PICTURE_CODECS.contains(&id) {
                    true => "holds pictures of text, which WebVTT cannot carry",
                    false => "is in a subtitle format stream-pack does not read",
                };
                let language = source::language(&stream).unwrap_or_else(|| language::UNDETERMINED.into());
                notes.push(format!(
                    "subtitle stream #{} ({}, {language}) {why}: left out",
                    stream.index(),
                    id.name()
                ));
            }
        }
        Ok(SourceSubtitles {
            path: source.path.clone(),
            streams,
        })
    }

    /// Takes `packet` if it belongs to a text stream (its cues start and end on `clock`, from the
    /// source's start); `false` for a packet of another stream.
    pub fn take(&mut self, packet: &Packet, clock: &SegmentClock) -> Result<bool> {
        let Some(stream) = self.streams.iter_mut().find(|s| s.index == packet.stream()) else {
            return Ok(false);
        };
        let Some(pts) = packet.pts().or(packet.dts()) else {
            return Ok(true);
        };
        let mut subtitle = ffmpeg::Subtitle::new();
        let decoded = stream
            .decoder
            .decode(packet, &mut subtitle)
            .map_err(|e| Error::InputCorrupt {
                path: self.path.clone(),
                reason: format!("subtitle stream #{}: {e}", stream.index),
            });
        let texts: Vec<String> = subtitle.rects().filter_map(|rect| rect_text(&rect)).collect();
        let end_display = subtitle.end();
        // SAFETY: frees what the decoder allocated in `subtitle`, which is not used after this.
        unsafe { ffmpeg::ffi::avsubtitle_free(subtitle.as_mut_ptr()) };
        if !decoded? {
            return Ok(true);
        }
        let millis = |ts: i64| (clock.seconds(ts, stream.time_base) * 1000.0).round().max(0.0) as u64;
        let start_ms = millis(pts);
        let end_ms = match packet.duration() {
            d if d > 0 => millis(pts + d),
            _ => start_ms + u64::from(end_display),
        };
        for (settings, text) in texts.iter().map(|t| cues::to_webvtt(t, Markup::Ass)) {
            if end_ms > start_ms && !text.is_empty() {
                stream.track.cues.push(Cue {
                    start_ms,
                    end_ms,
                    settings,
                    text,
                });
            }
        }
        Ok(true)
    }

    /// The tracks as read so far, each's cues in order of their start: a live presentation
    /// writes them as it goes.
    pub fn tracks(&mut self) -> impl Iterator<Item = &TextTrack> {
        self.streams.iter_mut().map(|stream| {
            stream.track.cues.sort_by_key(|cue| cue.start_ms);
            &stream.track
        })
    }

    /// The tracks read, each's cues in order of their start.
    pub fn finish(mut self) -> Vec<TextTrack> {
        self.tracks().cloned().collect()
    }
}

/// An event's text: an ASS event's Text field (after ReadOrder, Layer, Style, Name, three margins
/// and Effect), or plain text.
fn rect_text(rect: &Rect) -> Option<String> {
    match rect {
        Rect::Ass(ass) => ass.get().splitn(9, ',').nth(8).map(str::to_owned),
        Rect::Text(text) => Some(text.get().replace('\n', "\\N")),
        _ => None,
    }
}

fn text_stream(stream: &Stream) -> Result<TextStream> {
    let context = codec::context::Context::from_parameters(stream.parameters())
        .map_err(Error::ffmpeg("reading subtitle stream parameters"))?;
    let decoder = context.decoder().subtitle().map_err(Error::ffmpeg(format!(
        "opening the decoder of subtitle stream #{}",
        stream.index()
    )))?;
    let language = language::bcp47(source::language(stream).as_deref());
    let title = stream
        .metadata()
        .get("title")
        .filter(|t| !t.trim().is_empty())
        .map(str::to_owned);
    let name = title
        .or_else(|| language::english_name(&language).map(str::to_owned))
        .unwrap_or_else(|| format!("Subtitles {}", stream.index()));
    let disposition = stream.disposition();
    Ok(TextStream {
        index: stream.index(),
        time_base: stream.time_base(),
        decoder,
        track: TextTrack {
            language,
            name,
            forced: disposition.contains(Disposition::FORCED),
            hearing_impaired: disposition.contains(Disposition::HEARING_IMPAIRED),
            cues: Vec::new(),
        },
    })
}
