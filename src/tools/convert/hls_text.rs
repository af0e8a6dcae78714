//! The subtitle renditions of an HLS master playlist (`EXT-X-MEDIA:TYPE=SUBTITLES`): each
//! rendition's media playlist and its WebVTT segments, whose `X-TIMESTAMP-MAP` puts their cues on
//! the media's clock (RFC 8216 §3.5; none means cue time 0 is MPEG-TS time 0).

use m3u8_rs::{AlternativeMedia, AlternativeMediaType, KeyMethod, Playlist};

use super::pieces::{Place, Reader};
use super::text::{self, Described, Found, Outcome, PIECE_LIMIT, Unreadable};
use crate::error::Result;

/// What SDH subtitles say of themselves in `CHARACTERISTICS`.
const TRANSCRIBES_DIALOG: &str = "public.accessibility.transcribes-spoken-dialog";

/// Every subtitle rendition of the master playlist at `master`, each read once (several groups
/// may list one), cue times counted from `start_ms` on the media's clock. A media playlist has
/// none.
pub fn read(reader: &Reader, master: &Place, start_ms: i64) -> Result<Found> {
    let bytes = reader.read(master, PIECE_LIMIT)?;
    let Ok(Playlist::MasterPlaylist(playlist)) = m3u8_rs::parse_playlist_res(&bytes) else {
        return Ok(Found::default());
    };
    let mut found = Found::default();
    let mut seen: Vec<Place> = Vec::new();
    let subtitles = playlist
        .alternatives
        .iter()
        .filter(|media| media.media_type == AlternativeMediaType::Subtitles);
    for media in subtitles {
        let described = described(media);
        let Some(uri) = &media.uri else {
            found
                .notes
                .push(format!("{} was left out: it has no URI", described.label()));
            continue;
        };
        let place = master
            .join(uri)
            .map_err(|reason| text::corrupt(reader, &described, reason))?;
        if seen.contains(&place) {
            continue;
        }
        seen.push(place.clone());
        match rendition(reader, &place, &described, start_ms)? {
            Ok(cues) => found.tracks.push(described.track(cues, &mut found.notes)),
            Err(Unreadable(why)) => found.notes.push(format!("{} was left out: {why}", described.label())),
        }
    }
    Ok(found)
}

fn described(media: &AlternativeMedia) -> Described {
    Described {
        name: Some(media.name.clone()),
        language: media.language.clone(),
        forced: media.forced,
        hearing_impaired: media
            .characteristics
            .as_deref()
            .is_some_and(|c| c.split(',').any(|c| c.trim() == TRANSCRIBES_DIALOG)),
    }
}

/// The cues of the rendition whose media playlist is at `place`.
fn rendition(reader: &Reader, place: &Place, described: &Described, start_ms: i64) -> Outcome {
    let bytes = reader.read(place, PIECE_LIMIT)?;
    let playlist = m3u8_rs::parse_media_playlist_res(&bytes)
        .map_err(|_| text::corrupt(reader, described, format!("{place} is not a media playlist")))?;
    let plain = |s: &m3u8_rs::MediaSegment| {
        s.map.is_none() && s.byte_range.is_none() && s.key.as_ref().is_none_or(|k| k.method == KeyMethod::None)
    };
    if !playlist.segments.iter().all(plain) {
        return Ok(Err(Unreadable(
            "its segments are not plain WebVTT files (fMP4, encrypted or byte ranges)".into(),
        )));
    }
    let places = playlist
        .segments
        .iter()
        .map(|segment| place.join(&segment.uri))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|reason| text::corrupt(reader, described, reason))?;
    text::read_segments(reader, &places, described, |map| map.unwrap_or(0) - start_ms)
}
