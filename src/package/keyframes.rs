//! Cutting at the source's keyframes, which a stream copy and a passed-through top rung need
//! (VOD only: a live source does not show its keyframes in advance): the copy's one rendition,
//! the clock that follows the keyframes, whether the source's stream can stand as the top rung,
//! and the note when the keyframes cannot honour the segment duration.

use ffmpeg::{codec, format::Pixel};
use ffmpeg_next as ffmpeg;

use super::{PackageOptions, Passthrough, invalid, regular_clock};
use crate::error::Result;
use crate::input::source::{Source, VideoInput};
use crate::package::ladder::{self, Bitrate, RateControl, Reps, Rung};
use crate::package::per_title::LadderMode;
use crate::package::segment::{SegmentClock, SegmentFacts, SegmentFormat};
use crate::package::transcode::copy;
use crate::package::transcode::encoding::VideoCodec;

/// With `copy`, the one rendition is the source's stream, named by its short side.
pub(super) fn copy_plan(source: &Source, video: &VideoInput, format: SegmentFormat) -> Result<ladder::Plan> {
    if !copy::copyable(video.codec, format) {
        return Err(invalid(
            "copy",
            format!(
                "with {}: it holds {:?} video, which {} segments cannot carry without re-encoding (H.264 goes \
                 anywhere, HEVC in fMP4)",
                source.path.display(),
                video.codec,
                if format == SegmentFormat::Ts { "MPEG-TS" } else { "fMP4" },
            ),
        ));
    }
    if video.rotation != 0 && format == SegmentFormat::Ts {
        return Err(invalid(
            "copy",
            format!(
                "with {}: it is shown rotated by {}° clockwise, which MPEG-TS segments cannot say (no display \
                 matrix): use the fmp4 format, which carries it, or encode the video to rotate the pictures",
                source.path.display(),
                video.rotation
            ),
        ));
    }
    let stream = source.input.stream(video.index).expect("chosen stream exists");
    let bitrate = Bitrate(stream.parameters().bit_rate().max(1) as u64);
    let short = video.display_geometry().short_side().round() as u32;
    // The manifests give the picture as shown: the track's display matrix turns it upright.
    let (width, height) = match video.rotation {
        90 | 270 => (video.height, video.width),
        _ => (video.width, video.height),
    };
    Ok(ladder::Plan {
        rungs: vec![Rung {
            name: format!("{short}p"),
            width,
            height,
            rate: RateControl {
                bitrate,
                maxrate: bitrate,
                bufsize: bitrate,
            },
            constant_quality: None,
        }],
        dropped_above_source: Vec::new(),
    })
}

/// The clock every rendition is cut by, and whether the top rung is the source's own stream. A
/// stream copy and a passed-through top rung are cut at the source's keyframes, so then the clock
/// follows them and the encoded rungs place their IDRs there too.
pub(super) fn segment_clock(
    source: &Source,
    plan: &ladder::Plan,
    options: &PackageOptions,
    notes: &mut Vec<String>,
) -> Result<(SegmentClock, bool)> {
    let clock = regular_clock(source, options);
    let (Some(video), Some(top)) = (&source.video, plan.rungs.first()) else {
        return Ok((clock, false));
    };
    let passthrough = match options.passthrough_top {
        _ if options.copy => false,
        Passthrough::Always => true,
        // A per-title ladder encodes its top rung too: its bitrate is what the probe chose.
        Passthrough::Auto => matches!(options.reps, Reps::Auto) && options.ladder_mode == LadderMode::Fixed,
        Passthrough::Never => false,
    };
    if !(options.copy || passthrough) {
        return Ok((clock, false));
    }
    let refuse = |reason: String, notes: &mut Vec<String>| match options.passthrough_top {
        Passthrough::Always => Err(invalid(
            "passthrough_top",
            format!("cannot pass the source's stream through: {reason}"),
        )),
        _ => {
            notes.push(format!(
                "the top rung {} is encoded, not passed through: {reason}",
                top.name
            ));
            Ok((clock.clone(), false))
        }
    };
    if let Some(reason) = passthrough_unfit(video, top, options).filter(|_| passthrough) {
        return refuse(reason, notes);
    }
    let scan = copy::keyframe_scan(&source.path, video.index, &clock, &options.input_options)?;
    let scheduled = clock.clone().scheduled(scan.boundaries);
    if !passthrough {
        return Ok((scheduled, false));
    }
    let maxrate = top.rate.maxrate.0 as f64;
    if scan.bitrate > maxrate {
        return refuse(
            format!(
                "the source's video averages {:.0} kb/s, above the top rung's maxrate of {:.0} kb/s",
                scan.bitrate / 1e3,
                maxrate / 1e3
            ),
            notes,
        );
    }
    let spread = scheduled.longest();
    if options.passthrough_top == Passthrough::Auto && spread > 1.5 * options.segment_duration {
        return refuse(
            format!(
                "the source's keyframes make segments of up to {spread:.2} s, against --segment-duration {}",
                options.segment_duration
            ),
            notes,
        );
    }
    notes.push(format!(
        "the top rung {} is the source's own {:?} stream; every rung is cut at its keyframes",
        top.name, video.codec
    ));
    Ok((scheduled, true))
}

/// Why the source's stream cannot stand as the top rung as it is, if it cannot.
fn passthrough_unfit(video: &VideoInput, top: &Rung, options: &PackageOptions) -> Option<String> {
    let same_codec = matches!(
        (video.codec, options.video_codec),
        (codec::Id::H264, VideoCodec::H264) | (codec::Id::HEVC, VideoCodec::H265)
    );
    let sar = video.sample_aspect;
    if !same_codec {
        Some(format!(
            "the source's {:?} video is not the ladder's codec ({})",
            video.codec, options.video_codec
        ))
    } else if !matches!(video.pixel_format, Pixel::YUV420P | Pixel::YUVJ420P) {
        Some(format!(
            "the source's pictures are {:?}, not 8-bit 4:2:0",
            video.pixel_format
        ))
    } else if video.rotation != 0 {
        Some(format!("the source is shown rotated by {}°", video.rotation))
    } else if sar.numerator() > 0 && sar.numerator() != sar.denominator() {
        Some("the source's pixels are not square".into())
    } else if (video.width, video.height) != (top.width, top.height) {
        Some(format!(
            "the source is {}x{} and the top rung {}x{}",
            video.width, video.height, top.width, top.height
        ))
    } else {
        None
    }
}

/// In a stream copy the source's keyframes decide where segments can start; say so when they
/// keep a segment more than a frame longer than the requested duration (the last one too: a
/// source with one keyframe makes one long segment), or one but the last more than a frame
/// shorter.
pub(super) fn keyframe_note(segments: &[SegmentFacts], requested: f64, video: Option<&VideoInput>) -> Option<String> {
    let frame = video.map_or(0.0, VideoInput::frame_duration);
    let body = &segments[..segments.len().saturating_sub(1)];
    let longest = segments.iter().map(|s| s.duration).fold(0.0, f64::max);
    let shortest = body.iter().map(|s| s.duration).fold(longest, f64::min);
    let uneven = longest - requested > frame + 1e-6 || requested - shortest > frame + 1e-6;
    (!segments.is_empty() && uneven).then(|| {
        let lasting = if longest - shortest < 1e-3 {
            format!("{longest:.3} s")
        } else {
            format!("{shortest:.3}–{longest:.3} s")
        };
        format!(
            "the source's keyframes cannot honour --segment-duration {requested}: segments start at the nearest \
             keyframes and last {lasting} (the playlists give the real durations)"
        )
    })
}
