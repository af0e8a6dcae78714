//! The live window: which segments a live presentation lists as they are completed, and when the
//! ones that have left every manifest may be deleted.
//!
//! A segment number is listed only once every rendition has completed it, so each manifest
//! names the same segments, all of them whole on disk. Renditions that follow (subtitles) are
//! written once a number is complete, cut like the first rendition, and leave with it. With a window of N, the manifests list the
//! newest N numbers; a segment that drops out is deleted (with `--delete-segments`) one target
//! duration later at the earliest, so a client that loaded the previous manifest can still fetch it.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::package::manifest::LiveState;
use crate::package::segment::{Completed, EncodedRendition, SegmentedStream};

/// How a live presentation keeps its segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowOptions {
    /// Segments listed; `None` lists all of them (an EVENT playlist).
    pub size: Option<usize>,
    /// Delete the segments that have left the window.
    pub delete_segments: bool,
}

/// One rendition as far as it has been written.
struct Progress {
    name: String,
    rendition: Option<EncodedRendition>,
    files: Vec<PathBuf>,
    /// Written after each complete number rather than counted towards it.
    follows: bool,
}

pub struct Window {
    options: WindowOptions,
    target: u64,
    renditions: Vec<Progress>,
    /// Segment numbers complete in every rendition.
    complete: usize,
    /// The first number listed by the manifests last written.
    first_listed: usize,
    epoch: Option<DateTime<Utc>>,
    /// availabilityStartTime: the epoch moved later by the time the first segments took to be
    /// encoded and written, so that a segment is on disk when the MPD says it is available.
    availability_start: Option<DateTime<Utc>>,
    /// Files that have left the manifests, and when they may go.
    leaving: VecDeque<(Instant, PathBuf)>,
}

impl Window {
    /// A window over the renditions named (folder names, in manifest order), whose segments last
    /// at most `target` seconds once rounded.
    pub fn new(names: Vec<String>, options: WindowOptions, target: u64) -> Window {
        Window {
            options,
            target,
            renditions: names.into_iter().map(|name| progress(name, false)).collect(),
            complete: 0,
            first_listed: 0,
            epoch: None,
            availability_start: None,
            leaving: VecDeque::new(),
        }
    }

    /// The window with renditions (folder names) that follow the others: written once a number is
    /// complete, listed and deleted with it.
    pub fn followed_by(mut self, names: Vec<String>) -> Window {
        self.renditions
            .extend(names.into_iter().map(|name| progress(name, true)));
        self
    }

    /// Segment numbers complete in every rendition that does not follow.
    pub fn complete(&self) -> usize {
        self.complete
    }

    /// The segments the first rendition (the top video rung, else the first audio) has written:
    /// the timeline the followers are cut like.
    pub fn timeline(&self) -> Option<&SegmentedStream> {
        self.renditions.first()?.rendition.as_ref().map(|r| &r.media)
    }

    /// Notes that presentation time `media_seconds` is happening now, once: the wall clock of the
    /// program date-times and the MPD's availabilityStartTime.
    pub fn start_clock(&mut self, media_seconds: f64) {
        self.epoch.get_or_insert_with(|| Utc::now() - micros(media_seconds));
    }

    /// Records a completed file; true when it completes a new segment number in every rendition,
    /// so the manifests should be written again.
    pub fn add(&mut self, file: Completed) -> bool {
        let Some(segment) = file.segment else {
            return false;
        };
        // Known by its folder, which the window's names are.
        let folder = file.path.parent().and_then(|p| p.file_name());
        let Some(progress) = self
            .renditions
            .iter_mut()
            .find(|r| folder.is_some_and(|f| *f == *r.name))
        else {
            return false;
        };
        let rendition = progress.rendition.get_or_insert_with(|| EncodedRendition {
            media: file.stream,
            codecs: file.codecs.unwrap_or_default(),
            // A live master playlist is written before the pass could know.
            captions: None,
            frames: None,
        });
        rendition.media.segments.push(segment);
        progress.files.push(file.path);
        let complete = self.counts().min().unwrap_or(0);
        let grew = complete > self.complete;
        self.complete = complete;
        if grew && self.availability_start.is_none() {
            self.availability_start = Some(Utc::now() - micros(self.first_row_end()));
        }
        grew
    }

    /// Seconds from the source's start to the end of the first segment of every rendition.
    fn first_row_end(&self) -> f64 {
        self.renditions
            .iter()
            .filter_map(|r| r.rendition.as_ref())
            .filter_map(|r| {
                let first = r.media.segments.first()?;
                let end = first.start_ticks + first.duration_ticks - r.media.presentation_offset;
                Some(end as f64 / f64::from(r.media.timescale.max(1)))
            })
            .fold(0.0, f64::max)
    }

    /// Segments completed, per rendition that does not follow.
    fn counts(&self) -> impl Iterator<Item = usize> + '_ {
        self.renditions.iter().filter(|r| !r.follows).map(|r| r.files.len())
    }

    /// Every rendition written so far, named, as the manifests should list it now, in the
    /// window's order, and the state of the presentation. The last listing (`ended`) takes each rendition to its own end, so one
    /// that wrote a segment more than the others (audio's last frames) lists it too.
    pub fn listing(&self, ended: bool) -> (Vec<(String, EncodedRendition)>, LiveState) {
        let end = self.listed_end(ended);
        let first = self.first_for(self.complete);
        let renditions: Vec<(String, EncodedRendition)> = self
            .renditions
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.rendition.as_ref()?)))
            .map(|(name, r)| {
                let listed = EncodedRendition {
                    media: SegmentedStream {
                        init: r.media.init.clone(),
                        timescale: r.media.timescale,
                        presentation_offset: r.media.presentation_offset,
                        segments: slice(&r.media.segments, first, end).to_vec(),
                    },
                    codecs: r.codecs.clone(),
                    captions: r.captions,
                    frames: r.frames,
                };
                (name, listed)
            })
            .collect();
        (renditions, self.state(ended))
    }

    /// The state of the presentation as manifests written now would list it.
    pub fn state(&self, ended: bool) -> LiveState {
        let first = self.first_for(self.complete);
        let listed_from = self.timeline().map_or(0.0, |media| {
            slice(&media.segments, first, self.listed_end(ended))
                .first()
                .map_or(0.0, |s| {
                    (s.start_ticks - media.presentation_offset) as f64 / f64::from(media.timescale.max(1))
                })
        });
        let epoch = self.epoch.unwrap_or_else(Utc::now);
        LiveState {
            first,
            listed_from: if first > 0 { listed_from } else { 0.0 },
            epoch,
            availability_start: self.availability_start.unwrap_or(epoch),
            window: self.options.size,
            target: self.target,
            ended,
            published: Utc::now(),
        }
    }

    /// The number after the last one listed.
    fn listed_end(&self, ended: bool) -> usize {
        match ended {
            true => self.counts().max().unwrap_or(0),
            false => self.complete,
        }
    }

    fn first_for(&self, end: usize) -> usize {
        self.options.size.map_or(0, |size| end.saturating_sub(size))
    }

    /// After manifests listing `state` were written: the segments that have left them may be
    /// deleted one target duration from now.
    pub fn manifests_written(&mut self, state: &LiveState) {
        if state.first <= self.first_listed {
            return;
        }
        if self.options.delete_segments {
            let due = Instant::now() + Duration::from_secs(self.target);
            for progress in &self.renditions {
                for path in slice(&progress.files, self.first_listed, state.first) {
                    self.leaving.push_back((due, path.clone()));
                }
            }
        }
        self.first_listed = state.first;
    }

    /// Deletes the segments whose time has come; with `wait`, waits for all of them. Returns the
    /// files deleted, for the remote destinations to follow.
    pub fn delete_due(&mut self, wait: bool) -> Result<Vec<PathBuf>> {
        let mut deleted = Vec::new();
        while let Some((due, _)) = self.leaving.front() {
            let now = Instant::now();
            if *due > now {
                if !wait {
                    break;
                }
                std::thread::sleep(*due - now);
            }
            let (_, path) = self.leaving.pop_front().expect("a front entry");
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::Io { path, source: e }),
            }
            deleted.push(path);
        }
        Ok(deleted)
    }
}

fn progress(name: String, follows: bool) -> Progress {
    Progress {
        name,
        rendition: None,
        files: Vec::new(),
        follows,
    }
}

fn micros(seconds: f64) -> chrono::TimeDelta {
    chrono::TimeDelta::microseconds((seconds * 1e6) as i64)
}

fn slice<T>(items: &[T], from: usize, to: usize) -> &[T] {
    let to = to.min(items.len());
    &items[from.min(to)..to]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::segment::SegmentFacts;

    /// Segment `n` (1 s at 90 kHz) of the rendition in folder `name` under `root`.
    fn file(root: &std::path::Path, name: &str, n: i64) -> Completed {
        let uri = format!("segment{n:05}.ts");
        Completed {
            rendition: name.into(),
            path: root.join(name).join(&uri),
            segment: Some(SegmentFacts {
                uri,
                duration: 1.0,
                start_ticks: n * 90_000,
                duration_ticks: 90_000,
                bytes: 100,
                key: None,
            }),
            codecs: None,
            stream: SegmentedStream {
                init: None,
                timescale: 90_000,
                presentation_offset: 0,
                segments: Vec::new(),
            },
        }
    }

    #[test]
    fn followers_neither_hold_back_a_row_nor_outlive_the_window() {
        let root = tempfile::tempdir().unwrap();
        let options = WindowOptions {
            size: Some(1),
            delete_segments: true,
        };
        let mut window = Window::new(vec!["video".into(), "audio".into()], options, 1).followed_by(vec!["subs".into()]);
        assert!(!window.add(file(root.path(), "video", 0)));
        assert!(
            window.add(file(root.path(), "audio", 0)),
            "the row is complete without its subtitles"
        );
        assert_eq!(window.timeline().map(|t| t.segments.len()), Some(1));
        assert!(!window.add(file(root.path(), "subs", 0)));
        for name in ["video", "audio", "subs"] {
            window.add(file(root.path(), name, 1));
        }
        assert_eq!(window.complete(), 2);
        let (listed, state) = window.listing(false);
        let names: Vec<(&str, usize)> = listed
            .iter()
            .map(|(n, r)| (n.as_str(), r.media.segments.len()))
            .collect();
        assert_eq!(names, [("video", 1), ("audio", 1), ("subs", 1)]);
        window.manifests_written(&state);
        let leaving: Vec<PathBuf> = window.leaving.iter().map(|(_, path)| path.clone()).collect();
        let expected: Vec<PathBuf> = ["video", "audio", "subs"]
            .iter()
            .map(|name| root.path().join(name).join("segment00000.ts"))
            .collect();
        assert_eq!(leaving, expected, "segment 0 leaves every rendition");
    }
}
