//! WebVTT written for players: one segment per media segment, cut at the same instants as the
//! video's (the timeline the segmenters measured); a cue that spans a boundary is in both
//! segments. The same files serve HLS and DASH: cue times count from the DASH period's start,
//! which is what DASH players read them as (dash.js and Shaka Player take segmented `text/vtt`
//! cue times as period time), and each segment's `X-TIMESTAMP-MAP` puts that instant on the
//! media's timeline for HLS players.

use std::path::Path;

use stream_pack_formats::subtitles::{self as cues, Cue};

use super::TextTrack;
use crate::error::{Error, Result};
use crate::package::segment::{SegmentFacts, SegmentedStream};

/// The MPEG-TS clock, which `X-TIMESTAMP-MAP` counts in.
const MPEGTS_HZ: i64 = 90_000;

/// Writes `track` into `dir` as `segment00000.vtt`… one per segment of `timeline` (the video's,
/// or the audio's when there is no video), its cue times counted from `origin_ms` after the
/// source's start (a cue over by then is left out), and says what it wrote in the same terms as
/// the timeline: the same durations and start times, so the manifests list them alike.
pub fn write_segments(
    dir: &Path,
    track: &TextTrack,
    timeline: &SegmentedStream,
    origin_ms: u64,
) -> Result<SegmentedStream> {
    std::fs::create_dir(dir).map_err(Error::io(dir))?;
    let segments = (0..timeline.segments.len())
        .map(|index| write_segment(dir, track, timeline, index, Cut { origin_ms, ended: true }))
        .collect::<Result<Vec<_>>>()?;
    Ok(SegmentedStream {
        init: None,
        segments,
        ..timeline.clone()
    })
}

/// How a track is cut into segments: its cue times count from `origin_ms` after the source's
/// start (a cue over by then is left out); `ended` says no segment follows the last one known.
#[derive(Debug, Clone, Copy)]
pub struct Cut {
    pub origin_ms: u64,
    pub ended: bool,
}

/// Writes segment `index` of `track` into `dir`, cut like that segment of `timeline`. The first
/// segment takes every cue before it; the last one known takes every cue after it when the cut
/// has ended (a live presentation writes each as its row completes).
pub fn write_segment(
    dir: &Path,
    track: &TextTrack,
    timeline: &SegmentedStream,
    index: usize,
    cut: Cut,
) -> Result<SegmentFacts> {
    let facts = &timeline.segments[index];
    let from = match index {
        0 => i64::MIN,
        _ => millis_from_origin(facts.start_ticks, timeline),
    };
    let to = match timeline.segments.get(index + 1) {
        Some(next) => millis_from_origin(next.start_ticks, timeline),
        None if cut.ended => i64::MAX,
        None => millis_from_origin(facts.start_ticks + facts.duration_ticks, timeline),
    };
    let mut body = format!(
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:{},LOCAL:00:00:00.000\n\n",
        timestamp_map(timeline, cut.origin_ms)
    );
    let shown = track.cues.iter().filter(|cue| cue.end_ms > cut.origin_ms);
    overlapping(shown, from, to).for_each(|cue| cues::write_cue(cue, cut.origin_ms, &mut body));
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

/// Where the cues' time zero is on the MPEG-TS clock: `origin_ms` after the source's start, which
/// is at the segments' presentation offset (the source's start plus `TIMELINE_OFFSET_MICROS`).
fn timestamp_map(timeline: &SegmentedStream, origin_ms: u64) -> i64 {
    let ticks = i128::from(timeline.presentation_offset) * i128::from(MPEGTS_HZ);
    let source_start = (ticks / i128::from(timeline.timescale.max(1))) as i64;
    source_start + origin_ms as i64 * (MPEGTS_HZ / 1000)
}

/// Milliseconds from the source's start to `ticks` of the timeline, rounded.
fn millis_from_origin(ticks: i64, timeline: &SegmentedStream) -> i64 {
    let scale = i128::from(timeline.timescale.max(1));
    let ticks = i128::from(ticks - timeline.presentation_offset) * 1000;
    ((ticks + scale / 2).div_euclid(scale)) as i64
}

/// The cues shown at some instant of `[from, to)`.
fn overlapping<'a>(cues: impl Iterator<Item = &'a Cue>, from: i64, to: i64) -> impl Iterator<Item = &'a Cue> {
    cues.filter(move |cue| (cue.start_ms as i64) < to && (cue.end_ms as i64) > from)
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
                Cue::new(0, 20, "before the period"),
                Cue::new(500, 1000, "first"),
                Cue::new(1500, 2500, "across"),
                Cue::new(3000, 9000, "last"),
            ],
        };
        let out = dir.path().join("subs");
        // The period starts 21 ms into the source: cue times count from there.
        let media = write_segments(&out, &track, &timeline(), 21).unwrap();
        assert_eq!(media.segments.len(), 2);
        assert_eq!(media.segments[1].uri, "segment00001.vtt");
        assert_eq!(media.segments[1].duration, 2.0);
        let first = std::fs::read_to_string(out.join("segment00000.vtt")).unwrap();
        assert!(first.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:127890,LOCAL:00:00:00.000\n\n"));
        assert!(first.contains("00:00:00.479 --> 00:00:00.979\nfirst"));
        assert!(first.contains("across") && !first.contains("last") && !first.contains("before"));
        let second = std::fs::read_to_string(out.join("segment00001.vtt")).unwrap();
        assert!(second.contains("00:00:01.479 --> 00:00:02.479\nacross"));
        assert!(second.contains("last") && !second.contains("first"));
    }
}
