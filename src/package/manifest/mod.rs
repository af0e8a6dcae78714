//! Manifests written by stream-pack from the facts of the segments it wrote. Both writers take the
//! same `Package`: what was encoded, and the measured segments of every rendition.

pub mod attr;
pub mod dash;
pub mod hls;

use std::path::Path;

use chrono::{DateTime, Utc};
use ffmpeg_next::Rational;

use crate::error::{Error, Result};
use crate::package::crypto::{CommonKey, KeyPeriod};
use crate::package::language;
use crate::package::segment::EncodedRendition;
use crate::package::segment::{SegmentFacts, SegmentedStream};
use crate::package::subtitles::TextRendition;

/// A video rendition of the package.
pub struct VideoTrack<'a> {
    /// Folder, relative to the package root; also the DASH Representation id.
    pub name: &'a str,
    pub width: u32,
    pub height: u32,
    pub frame_rate: Rational,
    pub rendition: &'a EncodedRendition,
}

/// An audio rendition, which every video rendition may play with.
pub struct AudioTrack<'a> {
    /// The source stream it comes from: a stream's stereo and 5.1 renditions share it.
    pub stream: usize,
    /// Folder, relative to the package root; also the DASH Representation id.
    pub name: &'a str,
    /// What players list it as (HLS NAME, DASH Label): unique in the package.
    pub label: &'a str,
    pub channels: u16,
    pub sample_rate: u32,
    /// The source's tag, as the input gives it: manifests use [`AudioTrack::language_tag`].
    pub language: Option<&'a str>,
    /// The rendition players start with.
    pub default: bool,
    /// A commentary, which players do not pick by themselves.
    pub commentary: bool,
    /// An audio description of the picture.
    pub describes_video: bool,
    pub rendition: &'a EncodedRendition,
}

impl AudioTrack<'_> {
    /// The language manifests name, in BCP 47: `und` when the source states none.
    pub fn language_tag(&self) -> String {
        language::bcp47(self.language)
    }
}

/// Everything a manifest describes.
pub struct Package<'a> {
    pub video: Vec<VideoTrack<'a>>,
    pub audio: Vec<AudioTrack<'a>>,
    pub subtitles: &'a [TextRendition],
    /// The picture aspect ratio as shown, reduced (16:9; 9:16 for portrait).
    pub display_aspect: (u32, u32),
    /// The AES-128 keys of an encrypted package, indexed by `SegmentFacts::key`.
    pub keys: Option<&'a [KeyPeriod]>,
    /// The keys encrypt H.264 slices and AAC frames (SAMPLE-AES), not whole segments.
    pub sample_aes: bool,
    /// The `skd://` URI of FairPlay's key tags, when FairPlay is signalled.
    pub fairplay_uri: Option<&'a str>,
    /// The common encryption of a CMAF package: its scheme, key ID and DRM systems.
    pub protection: Option<&'a CommonKey>,
    /// Where the package will be published (absolute): relative key URIs start there.
    pub output: &'a Path,
    /// How a live presentation stands; `None` for video on demand.
    pub live: Option<&'a LiveState>,
}

/// A live presentation at the moment its manifests are written. Every rendition lists the
/// segments from `first` on.
#[derive(Debug, Clone)]
pub struct LiveState {
    /// The number of the first segment listed: EXT-X-MEDIA-SEQUENCE, the MPD's startNumber.
    pub first: usize,
    /// Seconds from the source's start to where the first listed video segment starts (the
    /// audio's otherwise); 0 while nothing has left the window.
    pub listed_from: f64,
    /// The wall-clock time of the source's start (presentation time zero): the program
    /// date-times count from it.
    pub epoch: DateTime<Utc>,
    /// The MPD's availabilityStartTime: the epoch plus the time the first segments took to be
    /// written, so that every segment is whole when the MPD says it is available.
    pub availability_start: DateTime<Utc>,
    /// How many segments a sliding window keeps; `None` keeps every segment (an event).
    pub window: Option<usize>,
    /// EXT-X-TARGETDURATION, fixed for the whole presentation as RFC 8216 §6.2.1 requires.
    pub target: u64,
    /// The source has ended: ENDLIST, a static MPD.
    pub ended: bool,
    /// When these manifests are published.
    pub published: DateTime<Utc>,
}

impl LiveState {
    /// The wall-clock time of a segment's start.
    pub fn time_of(&self, media: &SegmentedStream, segment: &SegmentFacts) -> DateTime<Utc> {
        let ticks = segment.start_ticks - media.presentation_offset;
        let micros = i128::from(ticks) * 1_000_000 / i128::from(media.timescale.max(1));
        self.epoch + chrono::TimeDelta::microseconds(micros as i64)
    }
}

impl Package<'_> {
    /// Every rendition, video first.
    pub fn renditions(&self) -> impl Iterator<Item = (&str, &EncodedRendition)> {
        let video = self.video.iter().map(|v| (v.name, v.rendition));
        video.chain(self.audio.iter().map(|a| (a.name, a.rendition)))
    }

    /// Whether a video rendition carries CEA-608/708 captions; `None` when nothing tells. A copied
    /// bitstream is not decoded, but it is the source's, which an encoded rung that kept
    /// captions shows has them.
    pub fn captions(&self, video: &VideoTrack) -> Option<bool> {
        let source_has_them = self.video.iter().any(|v| v.rendition.captions == Some(true));
        video.rendition.captions.or(source_has_them.then_some(true))
    }

    /// The longest segment rounded to the nearest second (EXT-X-TARGETDURATION's rule, RFC 8216
    /// §4.3.3.1), at least 1: one value for the whole package, so every rendition switches alike.
    pub fn target_duration(&self) -> u64 {
        if let Some(live) = self.live {
            return live.target;
        }
        self.renditions()
            .flat_map(|(_, r)| &r.media.segments)
            .map(|s| millis(s.duration).round() as u64)
            .max()
            .unwrap_or(1)
            .max(1)
    }
}

/// Seconds rounded to milliseconds: what manifests write and players resolve.
pub fn millis(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// The peak segment bit rate of RFC 8216 §4.3.4.2: the largest bit rate of any contiguous run of
/// segments lasting between 0.5 and 1.5 target durations; the overall rate if no run qualifies.
pub fn peak_bitrate(segments: &[SegmentFacts], target: u64) -> f64 {
    let (low, high) = (0.5 * target as f64, 1.5 * target as f64);
    let mut peak: Option<f64> = None;
    for start in 0..segments.len() {
        let (mut bytes, mut seconds) = (0u64, 0.0);
        for segment in &segments[start..] {
            bytes += segment.bytes;
            seconds += segment.duration;
            if seconds > high {
                break;
            }
            if seconds >= low {
                let rate = bytes as f64 * 8.0 / seconds;
                peak = Some(peak.map_or(rate, |p| p.max(rate)));
            }
        }
    }
    peak.unwrap_or_else(|| average_bitrate(segments))
}

pub fn average_bitrate(segments: &[SegmentFacts]) -> f64 {
    let bytes: u64 = segments.iter().map(|s| s.bytes).sum();
    let seconds: f64 = segments.iter().map(|s| s.duration).sum();
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
}

/// A manifest as written: its path inside the package (`/` separators) and its bytes.
pub type WrittenManifest = (String, Vec<u8>);

/// Writes the manifest `name` (inside `root`) from the bytes `body` produces, replacing any earlier
/// one atomically (a live manifest is read while it is rewritten), and returns what it wrote.
fn write(root: &Path, name: String, body: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Result<WrittenManifest> {
    let path = root.join(&name);
    let mut bytes = Vec::new();
    body(&mut bytes).map_err(Error::io(&path))?;
    crate::output::staging::replace_file(&path, &bytes)?;
    Ok((name, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(duration: f64, bytes: u64) -> SegmentFacts {
        SegmentFacts {
            duration,
            bytes,
            ..SegmentFacts::default()
        }
    }

    #[test]
    fn peak_is_the_richest_run_between_half_and_one_and_a_half_targets() {
        // Target 2: runs of 1–3 s qualify. A lone 0.4 s segment is too short to count alone.
        let segs = [segment(2.0, 1000), segment(2.0, 3000), segment(0.4, 1000)];
        let peak = peak_bitrate(&segs, 2);
        // Segment 1 alone: 12000 bit/s; segments 1+2: 32000 bits / 2.4 s = 13333 bit/s.
        assert!((peak - 32_000.0 / 2.4).abs() < 1e-6, "{peak}");
        assert!((average_bitrate(&segs) - 40_000.0 / 4.4).abs() < 1e-6);
    }

    #[test]
    fn peak_falls_back_to_the_average_when_no_run_qualifies() {
        let segs = [segment(0.5, 1000)];
        assert_eq!(peak_bitrate(&segs, 6), 16_000.0);
    }
}
