//! The source's own subtitle streams, read in the one pass: a text one (SubRip, mov_text, WebVTT,
//! ASS/SSA) is decoded by libav, whose text decoders all give ASS events, into cues; a picture one
//! (PGS, DVD, DVB) cannot become text and is left out with a note naming it. A selection, like
//! audio's, keeps some of them.

use std::path::PathBuf;

use ffmpeg::codec::{self, subtitle::Rect};
use ffmpeg::format::stream::{Disposition, Stream};
use ffmpeg::{Packet, Rational, media};
use ffmpeg_next as ffmpeg;
use stream_pack_formats::subtitles::{self as cues, AssScript, Cue};

use super::TextTrack;
use crate::error::{Error, Result};
use crate::input::source::{self, Source};
use crate::package::audio::{AudioPick, AudioSelection};
use crate::package::language;
use crate::package::segment::SegmentClock;

/// The source's subtitle streams a package keeps, said as audio's are: `All` (the default), `None`,
/// or `Streams` of stream indexes (as `probe` numbers them) and languages.
pub type SubtitleSelection = AudioSelection;

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
    /// The resolution its ASS events' positions are in and their styles, from the script header
    /// libav holds.
    script: AssScript,
    track: TextTrack,
}

/// Every text subtitle stream of the source, fed its packets as the demuxer reads them.
pub struct SourceSubtitles {
    /// The source, for messages.
    path: PathBuf,
    streams: Vec<TextStream>,
}

impl SourceSubtitles {
    /// A reader of each text stream `selection` keeps; with `All`, each other subtitle stream is
    /// left out with a note. A selection naming a stream that is not there, or one that holds
    /// pictures, is refused.
    pub fn new(source: &Source, selection: &SubtitleSelection, notes: &mut Vec<String>) -> Result<SourceSubtitles> {
        let all: Vec<Stream> = source
            .input
            .streams()
            .filter(|s| s.parameters().medium() == media::Type::Subtitle)
            .collect();
        let mut streams = Vec::new();
        for stream in selected(&all, selection)? {
            match unreadable(stream) {
                None => streams.push(text_stream(source, stream)?),
                Some(why) => notes.push(format!("subtitle stream {} {why}: left out", describe(stream))),
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
        let texts: Vec<(String, String)> = subtitle.rects().filter_map(|rect| rect_text(&rect)).collect();
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
        for (settings, text) in texts
            .iter()
            .map(|(style, text)| cues::to_webvtt(text, stream.script.markup(style)))
        {
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

/// An event's style and text: an ASS event's Style and Text fields (of ReadOrder, Layer, Style,
/// Name, three margins, Effect and Text), or plain text in the default style.
fn rect_text(rect: &Rect) -> Option<(String, String)> {
    match rect {
        Rect::Ass(ass) => {
            let fields: Vec<&str> = ass.get().splitn(9, ',').collect();
            Some((fields.get(2)?.to_string(), fields.get(8)?.to_string()))
        }
        Rect::Text(text) => Some((String::new(), text.get().replace('\n', "\\N"))),
        _ => None,
    }
}

/// Why a subtitle stream cannot become a text track, if it cannot.
fn unreadable(stream: &Stream) -> Option<&'static str> {
    let id = stream.parameters().id();
    match (TEXT_CODECS.contains(&id), PICTURE_CODECS.contains(&id)) {
        (true, _) => None,
        (false, true) => Some("holds pictures of text, which WebVTT cannot carry"),
        (false, false) => Some("is in a subtitle format stream-pack does not read"),
    }
}

/// `#3 (hdmv_pgs_subtitle, jpn)`, as messages name a stream (the container's language tag).
fn describe(stream: &Stream) -> String {
    let language = source::language(stream).unwrap_or_else(|| language::UNDETERMINED.into());
    format!("#{} ({}, {language})", stream.index(), stream.parameters().id().name())
}

/// The streams `selection` keeps, in its order, each once: with `All` every subtitle stream (the
/// ones that cannot be read then get a note), else the text streams it names.
fn selected<'s, 'a>(all: &'s [Stream<'a>], selection: &SubtitleSelection) -> Result<Vec<&'s Stream<'a>>> {
    let picks = match selection {
        AudioSelection::All => return Ok(all.iter().collect()),
        AudioSelection::None => return Ok(Vec::new()),
        AudioSelection::Streams(picks) => picks,
    };
    let mut chosen: Vec<&Stream> = Vec::new();
    for pick in picks {
        let matching: Vec<&Stream> = all
            .iter()
            .filter(|stream| match pick {
                AudioPick::Index(index) => stream.index() == *index,
                AudioPick::Language(wanted) => {
                    unreadable(stream).is_none()
                        && language::bcp47(source::language(stream).as_deref()) == language::bcp47(Some(wanted))
                }
            })
            .collect();
        let refused = |reason: String| Error::InvalidOption {
            option: "subtitle_streams",
            reason,
        };
        let named = match pick {
            AudioPick::Index(index) => index.to_string(),
            AudioPick::Language(wanted) => wanted.clone(),
        };
        if matching.is_empty() {
            return Err(refused(format!("{named}: {}", no_such_stream(all))));
        }
        if let Some((stream, why)) = matching.iter().find_map(|s| unreadable(s).map(|why| (s, why))) {
            return Err(refused(format!("{named}: subtitle stream {} {why}", describe(stream))));
        }
        for stream in matching {
            if chosen.iter().all(|c| c.index() != stream.index()) {
                chosen.push(stream);
            }
        }
    }
    Ok(chosen)
}

/// Says that no text subtitle stream matched, and which subtitle streams there are.
fn no_such_stream(all: &[Stream]) -> String {
    match all.is_empty() {
        true => "the source has no subtitle stream".to_owned(),
        false => {
            let listed: Vec<String> = all.iter().map(describe).collect();
            format!("no such text subtitle stream (the source's: {})", listed.join(", "))
        }
    }
}

fn text_stream(source: &Source, stream: &Stream) -> Result<TextStream> {
    let context = codec::context::Context::from_parameters(stream.parameters())
        .map_err(source::reading_parameters(&source.path, stream))?;
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
        script: AssScript::from_script(&script_header(&decoder)),
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

/// The ASS script header the decoder gives its events with (an ASS stream's own, with its
/// `PlayResX`/`PlayResY`; libav's default for the other text codecs).
fn script_header(decoder: &codec::decoder::Subtitle) -> String {
    // SAFETY: the decoder is open; libav owns `subtitle_header`, `subtitle_header_size` bytes long
    // (or null), for the decoder's life, and it is only read here.
    unsafe {
        let context = decoder.as_ptr();
        let (header, size) = ((*context).subtitle_header, (*context).subtitle_header_size);
        match (header.is_null(), usize::try_from(size)) {
            (false, Ok(size)) => String::from_utf8_lossy(std::slice::from_raw_parts(header, size)).into_owned(),
            _ => String::new(),
        }
    }
}
