//! The one progress-and-cancel mechanism of every job (packaging, live packaging, recording,
//! unframing): the job sends structured reports to a [`Monitor`], and stops when its [`Cancel`]
//! is cancelled — from a signal handler, another thread or the monitor itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::output::publish::PublishCounts;
use crate::package::per_title::PerTitleReport;

/// Stops a job from anywhere; clones share one flag. A cancelled job returns
/// [`Error::Cancelled`] and leaves nothing behind.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// `Err(Error::Cancelled)` once cancelled, for `?` at the job's checkpoints.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// What the job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Downloading an input from object storage (`s3://`, `gs://`, `az://`) before reading it.
    Fetch,
    /// Reading the input and choosing streams and rungs.
    Probe,
    /// Decoding, scaling, encoding and segmenting.
    Transcode,
    /// Writing playlists and moving the package into place.
    Publish,
    Done,
}

/// One progress report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub stage: Stage,
    /// Seconds of media done.
    pub media_time: f64,
    /// Seconds of media in all, when known.
    pub duration: Option<f64>,
    /// 0–100, when the duration is known.
    pub percent: Option<f64>,
    /// Media seconds done per wall-clock second.
    pub speed: f64,
    /// Seconds left at the current speed, when the duration is known.
    pub eta: Option<f64>,
    /// Media segments written so far, all renditions together.
    pub segments: u64,
    /// What has gone to remote destinations so far, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<PublishCounts>,
    /// Bytes of the input downloaded so far and in all, while fetching it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched: Option<Fetched>,
    /// The renditions that encode on threads of their own (each encoded video rung, each encoded
    /// audio rendition), each with how far it has come: they may trail `media_time`, which counts
    /// the media read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackProgress>,
    /// In the `done` report of a `--ladder-mode per-title` job: the ladder chosen and the curves
    /// measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ladder: Option<Box<PerTitleReport>>,
}

/// How far one track has come.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackProgress {
    /// The rendition's folder in the package (`720p`, `audio-en`, `audio-en-5.1`).
    pub name: String,
    /// Seconds of media encoded.
    pub media_time: f64,
    /// Whether the track trails the media read by more than a segment.
    pub lagging: bool,
}

/// How far a track's own thread has encoded, shared with the tracker that reports it.
#[derive(Debug, Clone)]
pub(crate) struct TrackPosition {
    name: String,
    /// The seconds as `f64` bits: for non-negative values their order is the numbers' order.
    encoded_bits: Arc<AtomicU64>,
}

impl TrackPosition {
    pub fn new(name: &str) -> TrackPosition {
        TrackPosition {
            name: name.to_owned(),
            encoded_bits: Arc::default(),
        }
    }

    /// Records that the track is encoded up to `seconds` of media.
    pub fn advance(&self, seconds: f64) {
        self.encoded_bits
            .fetch_max(seconds.max(0.0).to_bits(), Ordering::Relaxed);
    }

    fn seconds(&self) -> f64 {
        f64::from_bits(self.encoded_bits.load(Ordering::Relaxed))
    }
}

/// How far the download of an input has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Fetched {
    pub bytes: u64,
    pub total: u64,
}

impl Progress {
    /// A report of the input's download: `bytes` of `total` done, before any media is read.
    pub fn fetch(bytes: u64, total: u64) -> Progress {
        Progress {
            stage: Stage::Fetch,
            media_time: 0.0,
            duration: None,
            percent: Some(100.0 * bytes as f64 / total.max(1) as f64),
            speed: 0.0,
            eta: None,
            segments: 0,
            published: None,
            fetched: Some(Fetched { bytes, total }),
            tracks: Vec::new(),
            ladder: None,
        }
    }
}

/// Receives a job's reports: [`Progress`] from packaging, the recorder's own from `record`.
pub trait Monitor<P = Progress> {
    fn report(&mut self, progress: &P);
}

/// A monitor that ignores reports.
pub struct Silent;

impl<P> Monitor<P> for Silent {
    fn report(&mut self, _: &P) {}
}

impl<P, F: FnMut(&P)> Monitor<P> for F {
    fn report(&mut self, progress: &P) {
        self(progress)
    }
}

/// Builds reports from the job's position, at most a few per second.
pub(crate) struct Tracker {
    started: Instant,
    last_report: Option<Instant>,
    duration: Option<f64>,
    media_time: f64,
    segments: u64,
    published: Option<PublishCounts>,
    tracks: Vec<TrackPosition>,
    /// How far a track may trail the media read before it is said to lag: a segment.
    lag_allowed: f64,
    /// The per-title ladder, for the `done` report.
    ladder: Option<Box<PerTitleReport>>,
}

const REPORT_INTERVAL: Duration = Duration::from_millis(250);

impl Tracker {
    pub fn new(duration: Option<f64>) -> Tracker {
        Tracker {
            started: Instant::now(),
            last_report: None,
            duration: duration.filter(|d| *d > 0.0),
            media_time: 0.0,
            segments: 0,
            published: None,
            tracks: Vec::new(),
            lag_allowed: f64::INFINITY,
            ladder: None,
        }
    }

    /// Reports these tracks' own positions too; one trailing the media read by more than
    /// `segment_duration` is said to lag.
    pub fn follow(&mut self, tracks: Vec<TrackPosition>, segment_duration: f64) {
        self.tracks = tracks;
        self.lag_allowed = segment_duration;
    }

    pub fn advance(&mut self, media_time: f64) {
        self.media_time = self.media_time.max(media_time);
    }

    /// Counts media segments as the segmenters complete them.
    pub fn segments_done(&mut self, segments: u64) {
        self.segments += segments;
    }

    pub fn set_ladder(&mut self, ladder: Option<PerTitleReport>) {
        self.ladder = ladder.map(Box::new);
    }

    pub fn set_published(&mut self, published: Option<PublishCounts>) {
        self.published = published;
    }

    /// Reports the transcode's position if the last report is old enough.
    pub fn tick(&mut self, monitor: &mut dyn Monitor) {
        let now = Instant::now();
        if self.last_report.is_some_and(|t| now - t < REPORT_INTERVAL) {
            return;
        }
        self.last_report = Some(now);
        monitor.report(&self.progress(Stage::Transcode))
    }

    /// Reports a change of stage whatever the time since the last report.
    pub fn stage(&mut self, stage: Stage, monitor: &mut dyn Monitor) {
        if stage == Stage::Done {
            self.media_time = self.duration.unwrap_or(self.media_time).max(self.media_time);
        }
        self.last_report = Some(Instant::now());
        monitor.report(&self.progress(stage))
    }

    fn progress(&self, stage: Stage) -> Progress {
        let elapsed = self.started.elapsed().as_secs_f64();
        let speed = if elapsed > 0.0 { self.media_time / elapsed } else { 0.0 };
        let percent = self.duration.map(|d| {
            if stage == Stage::Done {
                100.0
            } else {
                (100.0 * self.media_time / d).clamp(0.0, 99.9)
            }
        });
        let eta = self
            .duration
            .filter(|_| speed > 0.0)
            .map(|d| ((d - self.media_time) / speed).max(0.0));
        Progress {
            stage,
            media_time: self.media_time,
            duration: self.duration,
            percent,
            speed,
            eta,
            segments: self.segments,
            published: self.published,
            fetched: None,
            tracks: self.track_progress(),
            ladder: self.ladder.clone().filter(|_| stage == Stage::Done),
        }
    }

    fn track_progress(&self) -> Vec<TrackProgress> {
        self.tracks
            .iter()
            .map(|track| {
                let media_time = track.seconds();
                TrackProgress {
                    name: track.name.clone(),
                    media_time,
                    lagging: self.media_time - media_time > self.lag_allowed,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_track_trailing_the_media_read_by_more_than_a_segment_is_lagging() {
        let (stereo, surround) = (TrackPosition::new("audio"), TrackPosition::new("audio-5.1"));
        let mut tracker = Tracker::new(Some(60.0));
        tracker.follow(vec![stereo.clone(), surround.clone()], 6.0);
        tracker.advance(20.0);
        stereo.advance(15.0);
        surround.advance(13.5);
        surround.advance(12.0);
        let tracks = tracker.progress(Stage::Transcode).tracks;
        let shown: Vec<(&str, f64, bool)> = tracks
            .iter()
            .map(|t| (t.name.as_str(), t.media_time, t.lagging))
            .collect();
        assert_eq!(shown, [("audio", 15.0, false), ("audio-5.1", 13.5, true)]);
    }
}
