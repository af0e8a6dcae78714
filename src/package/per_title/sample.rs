//! Sampling the title: a few short windows spread over it, each read from a keyframe seek,
//! decoded by the input code and scaled to every candidate rung by the real run's scaler graph.

use std::path::Path;

use ffmpeg::{filter, frame};
use ffmpeg_next as ffmpeg;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::input::source::{self, Reader, Source, VideoInput};
use crate::input::watchdog::InputOptions;
use crate::package::transcode::{self, Scaling};

/// How many windows the probe reads, at the starts of the title's equal parts.
pub const WINDOWS: usize = 4;

/// Seconds per window at most. The probe's CPU grows with the frames sampled: with 2 s windows
/// it took 21 % of the fixed ladder's encode of a 60 s 720p title, over the 15 % budget; with
/// 1.25 s, 5 s of the title in all, it stays under it (README, per-title ladders).
pub const WINDOW_SECONDS: f64 = 1.25;

/// The share of a title the windows cover, up to `WINDOW_SECONDS` each: the probe's CPU then
/// stays the same share of the encode's whatever the title's length, where fixed windows cost a
/// 20 s title 32–53 % of its encode (bench/RESULTS.md, per-title ladders).
pub const SAMPLED_SHARE: f64 = 1.0 / 16.0;

/// Seconds per window at least: a keyframe and enough pictures after it to show the motion.
pub const MIN_WINDOW_SECONDS: f64 = 0.32;

/// A title shorter than this is not sampled: the windows would be most of it, and the probe
/// would cost a large share of the encode it tunes.
pub const MIN_DURATION: f64 = 6.0;

/// One window of the title, in seconds from its start.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    pub start: f64,
    pub length: f64,
}

/// The windows for a title of `duration` seconds, or `None` when it is too short to sample:
/// `WINDOWS` of them at the starts of its equal parts, together `SAMPLED_SHARE` of it within
/// the bounds on a window's length.
pub fn windows(duration: f64) -> Option<Vec<Window>> {
    if !(duration.is_finite() && duration >= MIN_DURATION) {
        return None;
    }
    let part = duration / WINDOWS as f64;
    let length = (part * SAMPLED_SHARE).clamp(MIN_WINDOW_SECONDS, WINDOW_SECONDS);
    Some(
        (0..WINDOWS)
            .map(|i| Window {
                start: part * i as f64,
                length,
            })
            .collect(),
    )
}

/// Where the sampled frames go: each picture scaled to every size, in the sizes' order, and
/// whether it opens a window.
pub trait Sink {
    fn take(&mut self, scaled: Vec<frame::Video>, opens_window: bool) -> Result<()>;
}

/// Reads every window of the video at `path`, scaled to `sizes` as the real run scales.
pub fn sample(
    path: &Path,
    options: &InputOptions,
    sizes: &[(u32, u32)],
    scaling: Scaling,
    windows: &[Window],
    sink: &mut dyn Sink,
) -> Result<()> {
    let mut source = Source::open(path, options)?;
    let video = source.video.clone().ok_or_else(|| Error::InputCorrupt {
        path: path.to_owned(),
        reason: "the probe found no video stream".into(),
    })?;
    let stream = source.input.stream(video.index).expect("the chosen stream is there");
    let mut decoder = source::decoder_context(path, &stream)?;
    decoder.set_packet_time_base(video.time_base);
    let mut reader = WindowReader {
        decoder: decoder
            .video()
            .map_err(Error::ffmpeg("probe: opening the video decoder"))?,
        graph: None,
        video,
        sizes,
        scaling,
        start_micros: source.start_micros(),
    };
    for window in windows {
        options.cancel.check()?;
        reader.read(&mut source, *window, sink)?;
    }
    Ok(())
}

/// The decoder and scaler graph the windows share.
struct WindowReader<'a> {
    decoder: ffmpeg::decoder::Video,
    /// Built from the first decoded frame, whose format and size the graph must be told.
    graph: Option<filter::Graph>,
    video: VideoInput,
    sizes: &'a [(u32, u32)],
    scaling: Scaling,
    start_micros: i64,
}

impl WindowReader<'_> {
    /// Seeks to the keyframe at or before the window and hands on the frames inside it.
    fn read(&mut self, source: &mut Source, window: Window, sink: &mut dyn Sink) -> Result<()> {
        let target = self.start_micros + (window.start * 1e6) as i64;
        if let Reader::File(input) = &mut source.input {
            input
                .seek(target, ..target + 1)
                .map_err(Error::ffmpeg(format!("probe: seeking to {:.2} s", window.start)))?;
        }
        self.decoder.flush();
        let mut first = true;
        while let Some(packet) = source.read(window.start)? {
            if packet.stream() != self.video.index {
                continue;
            }
            self.decoder
                .send_packet(&packet)
                .map_err(Error::ffmpeg("probe: decoding the video"))?;
            if self.take_frames(window, &mut first, sink)? {
                return Ok(());
            }
        }
        self.decoder
            .send_eof()
            .map_err(Error::ffmpeg("probe: decoding the video"))?;
        self.take_frames(window, &mut first, sink)?;
        Ok(())
    }

    /// Scales and hands on the decoded frames inside the window; true once one lies past it.
    fn take_frames(&mut self, window: Window, first: &mut bool, sink: &mut dyn Sink) -> Result<bool> {
        let mut decoded = frame::Video::empty();
        while transcode::received(self.decoder.receive_frame(&mut decoded))
            .map_err(Error::ffmpeg("probe: decoding the video"))?
        {
            let Some(pts) = decoded.timestamp() else { continue };
            let seconds = pts as f64 * f64::from(self.video.time_base) - self.start_micros as f64 / 1e6;
            if seconds < window.start {
                continue;
            }
            if seconds >= window.start + window.length {
                return Ok(true);
            }
            decoded.set_pts(Some(pts));
            let scaled = self.scale(&decoded)?;
            sink.take(scaled, std::mem::take(first))?;
        }
        Ok(false)
    }

    fn scale(&mut self, decoded: &frame::Video) -> Result<Vec<frame::Video>> {
        let graph = match &mut self.graph {
            Some(graph) => graph,
            None => self
                .graph
                .insert(transcode::scaler_graph(decoded, &self.video, self.sizes, self.scaling)?),
        };
        transcode::feed_graph(graph, Some(decoded), "probe: feeding the scaler graph")?;
        (0..self.sizes.len())
            .map(|i| {
                let mut scaled = frame::Video::empty();
                let mut sink = graph.get(&format!("out{i}")).expect("graph output");
                match transcode::received(sink.sink().frame(&mut scaled)).map_err(Error::ffmpeg("probe: scaling"))? {
                    true => Ok(scaled),
                    false => Err(Error::Codec {
                        stream: "probe".into(),
                        reason: "the scaler graph held a frame back".into(),
                    }),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_start_each_quarter_and_short_titles_get_none() {
        let lengths = |duration| windows(duration).unwrap().iter().map(|w| w.length).collect::<Vec<_>>();
        let long = windows(60.0).unwrap();
        let starts: Vec<f64> = long.iter().map(|w| w.start).collect();
        assert_eq!(starts, [0.0, 15.0, 30.0, 45.0]);
        // A sixteenth of the title, 0.32 to 1.25 s a window.
        assert_eq!(lengths(60.0), [0.9375; 4]);
        assert_eq!(lengths(3600.0), [1.25; 4]);
        assert_eq!(lengths(20.0), [0.32; 4]);
        let just = windows(6.0).unwrap();
        let starts: Vec<f64> = just.iter().map(|w| w.start).collect();
        assert_eq!(starts, [0.0, 1.5, 3.0, 4.5]);
        assert_eq!(lengths(6.0), [0.32; 4]);
        assert!(windows(5.9).is_none());
        assert!(windows(f64::NAN).is_none());
    }
}
