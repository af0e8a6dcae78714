//! WebVTT written for players: for HLS one segment per media segment, cut at the same instants as
//! the video's (the timeline the segmenters measured), each with an `X-TIMESTAMP-MAP` that puts
//! its cues on the media's timeline; a cue that spans a boundary is in both segments.

use std::path::Path;

use stream_pack_formats::subtitles::{self as cues, Cue};

use super::TextTrack;
use crate::error::{Error, Result};
use crate::package::segment::{SegmentFacts, SegmentedStream};

/// The MPEG-TS clock, which `X-TIMESTAMP-MAP` counts in.
const MPEGTS_HZ: i64 = 90_000;

/// Writes `track` into `dir` as `segment00000.vtt`… one per segment of `timeline` (the video's,
/// or the audio's when there is no video), and says what it wrote in the same terms: the same
/// durations and start times, so the playlists list them alike.
pub fn write_segments(dir: &Path, track: &TextTrack, timeline: &SegmentedStream) -> Result<SegmentedStream> {
    std::fs::create_dir(dir).map_err(Error::io(dir))?;
    let segments = (0..timeline.segments.len())
        .map(|index| write_segment(dir, track, timeline, index, true))
        .collect::<Result<Vec<_>>>()?;
    Ok(SegmentedStream {
        init: None,
        segments,
        ..timeline.clone()
    })
}

/// Writes segment `index` of `track` into `dir`, cut like that segment of `timeline`. The first
/// segment takes every cue before it; the last one known takes every cue after it when `ended`
/// says no segment follows (a live presentation writes each as its row completes).
pub fn write_segment(
    dir: &Path,
    track: &TextTrack,
    timeline: &SegmentedStream,
    index: usize,
    ended: bool,
) -> Result<SegmentFacts> {
    let facts = &timeline.segments[index];
    let from = match index {
        0 => i64::MIN,
        _ => millis_from_origin(facts.start_ticks, timeline),
    };
    let to = match timeline.segments.get(index + 1) {
        Some(next) => millis_from_origin(next.start_ticks, timeline),
        None if ended => i64::MAX,
        None => millis_from_origin(facts.start_ticks + facts.duration_ticks, timeline),
    };
    let mut body = format!(
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{},LOCAL:00:00:00.000\n\n",
        timestamp_map(timeline)
    );
    overlapping(&track.cues, from, to).for_each(|cue| cues::write_cue(cue, 0, &mut body));
    let uri = format!("segment{index:05}.vtt");
    let path = dir.join(&uri);
    std::fs::write(&path, &body).map_err(Error::io(&path))?;
    Ok(SegmentFacts {
        uri,
        key: None,
        bytes: body.len() as u64,
        ..facts.clone()
    })
}

/// Where the source starts on the MPEG-TS clock: the segments' presentation offset (the source's
/// start plus `TIMELINE_OFFSET_MICROS`), at which the cues' time zero is shown.
fn timestamp_map(timeline: &SegmentedStream) -> i64 {
    let ticks = i128::from(timeline.presentation_offset) * i128::from(MPEGTS_HZ);
    (ticks / i128::from(timeline.timescale.max(1))) as i64
}

/// Milliseconds from the source's start to `ticks` of the timeline, rounded.
fn millis_from_origin(ticks: i64, timeline: &SegmentedStream) -> i64 {
    let scale = i128::from(timeline.timescale.max(1));
    let ticks = i128::from(ticks - timeline.presentation_offset) * 1000;
    ((ticks + scale / 2).div_euclid(scale)) as i64
}

/// The cues shown at some instant of `[from, to)`.
fn overlapping(cues: &[Cue], from: i64, to: i64) -> impl Iterator<Item = &Cue> {
    cues.iter()
        .filter(move |cue| (cue.start_ms as i64) < to && (cue.end_ms as i64) > from)
}

/// The whole track as one WebVTT file, times from `offset_ms` after the source's start (DASH's
/// period time); a cue over by then is left out.
pub fn write_whole(path: &Path, track: &TextTrack, offset_ms: u64) -> Result<u64> {
    let mut body = String::from("WEBVTT\n\n");
    let shown = track.cues.iter().filter(|cue| cue.end_ms > offset_ms);
    shown.for_each(|cue| cues::write_cue(cue, offset_ms, &mut body));
    std::fs::write(path, &body).map_err(Error::io(path))?;
    Ok(body.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> SegmentedStream {
        // Two 2 s segments of a TS rendition, the source starting at 0.
        let segment = |start_ticks, uri: &str| SegmentFacts {
            uri: uri.into(),
            duration: 2.0,
            start_ticks,
            duration_ticks: 180_000,
            bytes: 1000,
            key: None,
        };
        SegmentedStream {
            init: None,
            timescale: 90_000,
            presentation_offset: 126_000,
            segments: vec![segment(126_000, "segment00000.ts"), segment(306_000, "segment00001.ts")],
        }
    }

    #[test]
    fn cues_are_cut_at_the_video_boundaries_and_repeated_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let track = TextTrack {
            language: "en".into(),
            name: "en".into(),
            forced: false,
            hearing_impaired: false,
            cues: vec![
                Cue::new(500, 1000, "first"),
                Cue::new(1500, 2500, "across"),
                Cue::new(3000, 9000, "last"),
            ],
        };
        let out = dir.path().join("subs");
        let media = write_segments(&out, &track, &timeline()).unwrap();
        assert_eq!(media.segments.len(), 2);
        assert_eq!(media.segments[1].uri, "segment00001.vtt");
        assert_eq!(media.segments[1].duration, 2.0);
        let first = std::fs::read_to_string(out.join("segment00000.vtt")).unwrap();
        assert!(first.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n"));
        assert!(first.contains("first") && first.contains("across") && !first.contains("last"));
        let second = std::fs::read_to_string(out.join("segment00001.vtt")).unwrap();
        assert!(second.contains("00:00:01.500 --> 00:00:02.500\nacross"));
        assert!(second.contains("last") && !second.contains("first"));
    }
}
