//! HLS playlists (RFC 8216) written from the measured facts of the segments.

use std::collections::HashMap;
use std::path::Path;

use m3u8_rs::{
    AlternativeMedia, AlternativeMediaType, Map, MasterPlaylist, MediaPlaylist, MediaPlaylistType, MediaSegment,
    QuotedOrUnquoted, Resolution, VariantStream,
};

use crate::error::{Error, Result};
use crate::segment::{SegmentFacts, SegmentedStream};
use crate::transcode::EncodedRendition;

/// Decimal EXTINF needs version 3; EXT-X-MAP without I-frames-only needs 6 (RFC 8216 §7).
const PLAYLIST_VERSION: usize = 3;
const PLAYLIST_VERSION_WITH_MAP: usize = 6;
const AUDIO_GROUP: &str = "audio";
const MEDIA_PLAYLIST: &str = "index.m3u8";
pub const MASTER_PLAYLIST: &str = "master.m3u8";

/// A video rendition of the package.
pub struct VideoVariant<'a> {
    /// Folder, relative to the package root.
    pub dir: &'a str,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub rendition: &'a EncodedRendition,
}

/// The audio rendition every variant shares.
pub struct AudioRendition<'a> {
    pub dir: &'a str,
    pub channels: u16,
    pub language: Option<&'a str>,
    pub rendition: &'a EncodedRendition,
}

/// Writes `master.m3u8` and every media playlist into `root`.
pub fn write_package(root: &Path, video: &[VideoVariant], audio: Option<&AudioRendition>) -> Result<()> {
    let all = video.iter().map(|v| v.rendition).chain(audio.map(|a| a.rendition));
    let target = target_duration(all.clone().flat_map(|r| &r.media.segments));
    for (dir, rendition) in video
        .iter()
        .map(|v| (v.dir, v.rendition))
        .chain(audio.map(|a| (a.dir, a.rendition)))
    {
        let playlist = media_playlist(&rendition.media, target);
        write(&root.join(dir).join(MEDIA_PLAYLIST), |w| playlist.write_to(w))?;
    }
    let master = master_playlist(video, audio, target);
    write(&root.join(MASTER_PLAYLIST), |w| master.write_to(w))
}

fn write(path: &Path, body: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> Result<()> {
    let mut bytes = Vec::new();
    body(&mut bytes).map_err(Error::io(path))?;
    std::fs::write(path, bytes).map_err(Error::io(path))
}

/// EXT-X-TARGETDURATION (RFC 8216 §4.3.3.1): every EXTINF rounded to the nearest integer must
/// not exceed it. One value for the whole package, so every variant switches alike.
pub fn target_duration<'a>(segments: impl Iterator<Item = &'a SegmentFacts>) -> u64 {
    segments
        .map(|s| extinf(s.duration).round() as u64)
        .max()
        .unwrap_or(1)
        .max(1)
}

/// EXTINF as written: milliseconds are what players and validators resolve.
fn extinf(duration: f64) -> f64 {
    (duration * 1000.0).round() / 1000.0
}

pub fn media_playlist(media: &SegmentedStream, target: u64) -> MediaPlaylist {
    let map = media.init.as_ref().map(|uri| Map {
        uri: uri.clone(),
        ..Map::default()
    });
    MediaPlaylist {
        version: Some(if map.is_some() {
            PLAYLIST_VERSION_WITH_MAP
        } else {
            PLAYLIST_VERSION
        }),
        target_duration: target,
        media_sequence: 0,
        segments: media
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: s.uri.clone(),
                duration: extinf(s.duration) as f32,
                // m3u8-rs writes EXT-X-MAP on every segment that carries it; one map applies to all.
                map: if i == 0 { map.clone() } else { None },
                ..MediaSegment::empty()
            })
            .collect(),
        end_list: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        ..MediaPlaylist::default()
    }
}

pub fn master_playlist(video: &[VideoVariant], audio: Option<&AudioRendition>, target: u64) -> MasterPlaylist {
    let audio_peak = audio.map_or(0.0, |a| peak_bitrate(&a.rendition.media.segments, target));
    let audio_average = audio.map_or(0.0, |a| average_bitrate(&a.rendition.media.segments));
    let mut variants: Vec<VariantStream> = video
        .iter()
        .map(|v| VariantStream {
            uri: format!("{}/{MEDIA_PLAYLIST}", v.dir),
            bandwidth: (peak_bitrate(&v.rendition.media.segments, target) + audio_peak).round() as u64,
            average_bandwidth: Some((average_bitrate(&v.rendition.media.segments) + audio_average).round() as u64),
            codecs: Some(match audio {
                Some(a) => format!("{},{}", v.rendition.codecs, a.rendition.codecs),
                None => v.rendition.codecs.clone(),
            }),
            resolution: Some(Resolution {
                width: u64::from(v.width),
                height: u64::from(v.height),
            }),
            audio: audio.map(|_| AUDIO_GROUP.to_owned()),
            // m3u8-rs prints FRAME-RATE with as few digits as possible; HLS wants three decimals.
            other_attributes: Some(HashMap::from([(
                "FRAME-RATE".to_owned(),
                QuotedOrUnquoted::Unquoted(format!("{:.3}", v.frame_rate)),
            )])),
            ..VariantStream::default()
        })
        .collect();
    let alternatives = match (video.is_empty(), audio) {
        (false, Some(a)) => vec![audio_media(a)],
        (true, Some(a)) => {
            variants.push(VariantStream {
                uri: format!("{}/{MEDIA_PLAYLIST}", a.dir),
                bandwidth: audio_peak.round() as u64,
                average_bandwidth: Some(audio_average.round() as u64),
                codecs: Some(a.rendition.codecs.clone()),
                ..VariantStream::default()
            });
            Vec::new()
        }
        (_, None) => Vec::new(),
    };
    MasterPlaylist {
        version: Some(PLAYLIST_VERSION),
        variants,
        // Every segment of every rendition starts with a keyframe: the segmenter refuses otherwise.
        independent_segments: true,
        alternatives,
        ..MasterPlaylist::default()
    }
}

fn audio_media(audio: &AudioRendition) -> AlternativeMedia {
    AlternativeMedia {
        media_type: AlternativeMediaType::Audio,
        uri: Some(format!("{}/{MEDIA_PLAYLIST}", audio.dir)),
        group_id: AUDIO_GROUP.to_owned(),
        language: audio.language.map(str::to_owned),
        name: audio.language.unwrap_or("Audio").to_owned(),
        default: true,
        autoselect: true,
        channels: Some(audio.channels.to_string()),
        ..AlternativeMedia::default()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(duration: f64, bytes: u64) -> SegmentFacts {
        SegmentFacts {
            uri: String::new(),
            start: 0.0,
            duration,
            start_ticks: 0,
            duration_ticks: 0,
            bytes,
        }
    }

    #[test]
    fn target_duration_rounds_to_nearest() {
        let segs = [segment(6.006, 1), segment(6.49, 1), segment(2.0, 1)];
        assert_eq!(target_duration(segs.iter()), 6);
        let segs = [segment(6.5, 1)];
        assert_eq!(target_duration(segs.iter()), 7);
        assert_eq!(target_duration([].iter()), 1);
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
