//! Subtitles of an HLS or DASH input, read by `convert` itself: FFmpeg 5.1's HLS demuxer leaves
//! subtitle renditions out and its DASH demuxer refuses an MPD that lists WebVTT segments. Each
//! WebVTT rendition becomes a [`TextTrack`] whose cue times count from the source's start as the
//! packager sees it (libav's start time of the input). A rendition in a form this does not read
//! (IMSC/TTML, WebVTT in fMP4, encrypted) is left out with a note; one that is broken (a piece
//! missing, malformed WebVTT) fails the conversion, as a missing media segment does.

use stream_pack_formats::subtitles::{self as cues, Cue, Syntax};

use super::pieces::{Place, Reader};
use crate::error::{Error, Result};
use crate::package::language;
use crate::package::subtitles::TextTrack;

/// The largest playlist or WebVTT segment read: a segment of a few seconds holds a few KiB.
pub const PIECE_LIMIT: u64 = 4 << 20;
/// The most WebVTT one rendition may hold in all: a feature film's takes a few hundred KiB.
const TRACK_LIMIT: u64 = 64 << 20;
/// The most segments one rendition may list: a day cut every second.
pub const SEGMENT_LIMIT: usize = 86_400;

/// The tracks read, and a note for each rendition left out or changed.
#[derive(Debug, Default)]
pub struct Found {
    pub tracks: Vec<TextTrack>,
    pub notes: Vec<String>,
}

/// How a manifest describes a subtitle rendition.
#[derive(Debug, Clone, Default)]
pub struct Described {
    pub name: Option<String>,
    pub language: Option<String>,
    pub forced: bool,
    pub hearing_impaired: bool,
}

impl Described {
    /// How notes and errors name it.
    pub fn label(&self) -> String {
        format!(
            "the subtitle rendition {:?} ({})",
            self.name.as_deref().unwrap_or_default(),
            self.language.as_deref().unwrap_or("und")
        )
    }

    /// Its track of `cues`: a language that is no language tag is `und`, with a note.
    pub fn track(&self, cues: Vec<Cue>, notes: &mut Vec<String>) -> TextTrack {
        let language = match self.language.as_deref().map(str::trim) {
            Some(tag) if language::well_formed(tag).is_some() => language::bcp47(Some(tag)),
            Some(tag) => {
                notes.push(format!(
                    "{}: {tag:?} is not a language tag: carried as und",
                    self.label()
                ));
                language::UNDETERMINED.to_owned()
            }
            None => language::UNDETERMINED.to_owned(),
        };
        let given = self.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        let name = given.map_or_else(
            || language::english_name(&language).unwrap_or("Subtitles").to_owned(),
            str::to_owned,
        );
        TextTrack {
            language,
            name,
            forced: self.forced,
            hearing_impaired: self.hearing_impaired,
            cues,
        }
    }
}

/// A rendition in a form `convert` does not read: why, for its note.
#[derive(Debug)]
pub struct Unreadable(pub String);

/// One rendition's outcome: its cues, or why it is left out with a note; `Err` fails the job.
pub type Outcome = Result<std::result::Result<Vec<Cue>, Unreadable>>;

/// Reads the WebVTT segments at `places`, in order; `timing` puts a segment's cues on the
/// source's timeline from the `X-TIMESTAMP-MAP` offset (milliseconds, `None` when it has none).
pub fn read_segments(
    reader: &Reader,
    places: &[Place],
    described: &Described,
    timing: impl Fn(Option<i64>) -> i64,
) -> Outcome {
    if places.len() > SEGMENT_LIMIT {
        return Err(corrupt(
            reader,
            described,
            format!("more than {SEGMENT_LIMIT} segments"),
        ));
    }
    let mut cues = Vec::new();
    let mut total = 0;
    for (index, place) in places.iter().enumerate() {
        let bytes = reader.read(place, PIECE_LIMIT)?;
        total += bytes.len() as u64;
        if total > TRACK_LIMIT {
            return Err(corrupt(
                reader,
                described,
                format!("more than {} MiB of WebVTT", TRACK_LIMIT >> 20),
            ));
        }
        match webvtt_segment(&bytes) {
            Ok((map, segment)) => cues.extend(placed(segment, timing(map))),
            Err(SegmentError::NotWebVtt) if index == 0 => {
                return Ok(Err(Unreadable("its segments are not WebVTT (IMSC/TTML?)".into())));
            }
            Err(SegmentError::NotWebVtt) => return Err(corrupt(reader, described, format!("{place}: not WebVTT"))),
            Err(SegmentError::Bad(reason)) => return Err(corrupt(reader, described, format!("{place}: {reason}"))),
        }
    }
    let cues = merged(cues);
    // What the packager would refuse of cues built in code is the input's fault here.
    cues::check(&cues).map_err(|(number, reason)| corrupt(reader, described, format!("cue {number}: {reason}")))?;
    Ok(Ok(cues))
}

pub fn corrupt(reader: &Reader, described: &Described, reason: String) -> Error {
    Error::InputCorrupt {
        path: reader.input().to_owned(),
        reason: format!("{}: {reason}", described.label()),
    }
}

enum SegmentError {
    NotWebVtt,
    Bad(String),
}

/// A WebVTT segment's cues as it times them, and its `X-TIMESTAMP-MAP` as the milliseconds to
/// add to them to reach the MPEG-TS clock (RFC 8216 §3.5: `MPEGTS` − `LOCAL`).
fn webvtt_segment(bytes: &[u8]) -> std::result::Result<(Option<i64>, Vec<Cue>), SegmentError> {
    let (text, _) = cues::decode(bytes).map_err(|_| SegmentError::NotWebVtt)?;
    let text = text.replace("\r\n", "\n");
    let signature = text.lines().next().and_then(|l| l.strip_prefix("WEBVTT"));
    if !signature.is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return Err(SegmentError::NotWebVtt);
    }
    let map = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .find_map(|line| line.strip_prefix("X-TIMESTAMP-MAP="))
        .map(|value| timestamp_map(value).ok_or_else(|| SegmentError::Bad(format!("X-TIMESTAMP-MAP={value}"))))
        .transpose()?;
    let cues = cues::parse(&text, Syntax::WebVtt).map_err(|e| SegmentError::Bad(e.to_string()))?;
    Ok((map, cues))
}

/// `MPEGTS:n,LOCAL:hh:mm:ss.mmm` (either order) as milliseconds: n / 90 − LOCAL.
fn timestamp_map(value: &str) -> Option<i64> {
    let mut mpegts = None;
    let mut local = None;
    for part in value.split(',') {
        match part.trim().split_once(':')? {
            ("MPEGTS", n) => mpegts = Some(n.parse::<u64>().ok().filter(|n| *n < 1 << 40)?),
            ("LOCAL", t) => local = Some(cues::parse_timestamp(t)?),
            _ => return None,
        }
    }
    Some(((mpegts? + 45) / 90) as i64 - local? as i64)
}

/// `cues` moved by `shift_ms`: one over before the source starts is left out, one that starts
/// before it starts with it; one that shows only blanks is left out.
fn placed(cues: Vec<Cue>, shift_ms: i64) -> impl Iterator<Item = Cue> {
    cues.into_iter().filter_map(move |cue| {
        let end = cue.end_ms as i64 + shift_ms;
        (end > 0 && !cue.text.trim().is_empty()).then(|| Cue {
            start_ms: (cue.start_ms as i64 + shift_ms).max(0) as u64,
            end_ms: end as u64,
            ..cue
        })
    })
}

/// The cues in order of time, a cue repeated in the segments it spans (the same text and
/// settings, its times within a millisecond, which rounding may move) kept once.
fn merged(mut cues: Vec<Cue>) -> Vec<Cue> {
    cues.sort_by_key(|cue| cue.start_ms);
    let mut kept: Vec<Cue> = Vec::with_capacity(cues.len());
    for cue in cues {
        let repeated = kept
            .iter()
            .rev()
            .take_while(|k| k.start_ms + 1 >= cue.start_ms)
            .any(|k| k.text == cue.text && k.settings == cue.settings && k.end_ms.abs_diff(cue.end_ms) <= 1);
        if !repeated {
            kept.push(cue);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segments_map_and_cues_are_read_and_repeats_merged() {
        let segment = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n\
                       00:00:00.500 --> 00:00:01.200\nHello\n";
        let Ok((map, read)) = webvtt_segment(segment.as_bytes()) else {
            panic!("a WebVTT segment")
        };
        assert_eq!(map, Some(1400));
        assert_eq!(read, [Cue::new(500, 1200, "Hello")]);
        assert!(matches!(
            webvtt_segment(b"<tt xmlns=\"http://www.w3.org/ns/ttml\"/>"),
            Err(SegmentError::NotWebVtt)
        ));
        assert_eq!(timestamp_map("LOCAL:00:00:01.000,MPEGTS:90000"), Some(0));
        assert_eq!(timestamp_map("MPEGTS:x,LOCAL:00:00:00.000"), None);
        let cues = vec![
            Cue::new(0, 900, "a"),
            Cue::new(800, 2500, "across"),
            Cue::new(801, 2500, "across"),
            Cue::new(800, 2500, "other"),
        ];
        let merged = merged(cues);
        assert_eq!(
            merged.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
            ["a", "across", "other"]
        );
        let read = vec![
            Cue::new(0, 100, "gone"),
            Cue::new(100, 300, "cut"),
            Cue::new(200, 400, " "),
        ];
        let moved: Vec<Cue> = placed(read, -150).collect();
        assert_eq!(moved, [Cue::new(0, 150, "cut")]);
    }
}
