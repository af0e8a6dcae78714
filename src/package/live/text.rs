//! A live presentation's subtitles: the source's text streams, read as they arrive, and the
//! sidecar files, whose cue times count from the live source's start. Each WebVTT segment is
//! written once its number is complete in every media rendition, cut like the first one; the
//! window lists and deletes it with them. The segments serve HLS and DASH alike, their cue times
//! counting from the live DASH period's start (the source's); when a window ends, the static
//! MPD's period moves to the first segment still listed, and those segments are cut again for it
//! in a folder of their own, so that no file a player may be reading changes.

use std::ops::Range;
use std::path::Path;

use ffmpeg_next::Packet;

use crate::error::{Error, Result};
use crate::package::manifest::dash::MOVED_PERIOD_TEXT;
use crate::package::segment::{Completed, EncodedRendition, SegmentClock, SegmentedStream};
use crate::package::subtitles::source::SourceSubtitles;
use crate::package::subtitles::webvtt::{self, Cut};
use crate::package::subtitles::{self, TextRendition, TextTrack};

/// The subtitle renditions of a live presentation, as far as they are written.
pub(super) struct LiveText {
    source: SourceSubtitles,
    sidecars: Vec<TextTrack>,
    /// Each track's folder: the source's streams first, then the sidecars.
    names: Vec<String>,
    /// Segments written of every track.
    written: usize,
}

impl LiveText {
    /// Makes a folder in `root` for each track of `source` and each sidecar.
    pub fn new(root: &Path, mut source: SourceSubtitles, sidecars: Vec<TextTrack>) -> Result<LiveText> {
        let tracks: Vec<TextTrack> = tracks(&mut source, &sidecars).cloned().collect();
        let names = subtitles::folder_names(&tracks);
        for name in &names {
            let dir = root.join(name);
            std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
        }
        Ok(LiveText {
            source,
            sidecars,
            names,
            written: 0,
        })
    }

    /// The folders, which follow the media renditions in the window.
    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Takes `packet` if it belongs to one of the source's text streams.
    pub fn take(&mut self, packet: &Packet, clock: &SegmentClock) -> Result<bool> {
        self.source.take(packet, clock)
    }

    /// Writes every track's segments up to number `count` of `timeline`, cut with `cut`, and
    /// says what it completed, for the window and the remote destinations.
    pub fn write_up_to(
        &mut self,
        root: &Path,
        timeline: &SegmentedStream,
        count: usize,
        cut: Cut,
    ) -> Result<Vec<Completed>> {
        let count = count.min(timeline.segments.len());
        let completed = self.write(root, "", timeline, self.written..count, cut)?;
        self.written = self.written.max(count);
        Ok(completed)
    }

    /// Cuts segments `numbers` of every track again, for a period that moved, into the folder
    /// the static MPD lists ([`MOVED_PERIOD_TEXT`]), and says what it wrote, for the remote
    /// destinations.
    pub fn write_moved(
        &mut self,
        root: &Path,
        timeline: &SegmentedStream,
        numbers: Range<usize>,
        cut: Cut,
    ) -> Result<Vec<Completed>> {
        for name in &self.names {
            let dir = root.join(name).join(MOVED_PERIOD_TEXT);
            std::fs::create_dir(&dir).map_err(Error::io(&dir))?;
        }
        self.write(root, MOVED_PERIOD_TEXT, timeline, numbers, cut)
    }

    /// Writes segments `numbers` of every track into `folder` of its own (`""`: the track's
    /// folder itself); the last of `timeline` also takes every cue after it when the cut has
    /// ended.
    fn write(
        &mut self,
        root: &Path,
        folder: &str,
        timeline: &SegmentedStream,
        numbers: Range<usize>,
        cut: Cut,
    ) -> Result<Vec<Completed>> {
        let mut completed = Vec::new();
        for (track, name) in tracks(&mut self.source, &self.sidecars).zip(&self.names) {
            let name = match folder {
                "" => name.clone(),
                folder => format!("{name}/{folder}"),
            };
            let dir = root.join(&name);
            let segments = numbers
                .clone()
                .map(|index| {
                    let ended = cut.ended && index + 1 == timeline.segments.len();
                    webvtt::write_segment(&dir, track, timeline, index, Cut { ended, ..cut })
                })
                .collect::<Result<Vec<_>>>()?;
            let rendition = TextRendition {
                name,
                track: described(track),
                media: SegmentedStream {
                    segments,
                    init: None,
                    ..timeline.clone()
                },
            };
            completed.extend(rendition.completed(root));
        }
        Ok(completed)
    }

    /// The renditions the manifests list, from the window's listing of the followers. A live
    /// subtitle track is listed segment by segment as the window moves.
    pub fn renditions(&mut self, listed: Vec<(String, EncodedRendition)>) -> Vec<TextRendition> {
        let tracks: Vec<&TextTrack> = tracks(&mut self.source, &self.sidecars).collect();
        listed
            .into_iter()
            .filter_map(|(name, rendition)| {
                let track = tracks[self.names.iter().position(|n| *n == name)?];
                Some(TextRendition {
                    name,
                    track: described(track),
                    media: rendition.media,
                })
            })
            .collect()
    }
}

/// The tracks, in the order of their folders: the source's streams, then the sidecars.
fn tracks<'a>(source: &'a mut SourceSubtitles, sidecars: &'a [TextTrack]) -> impl Iterator<Item = &'a TextTrack> {
    source.tracks().chain(sidecars)
}

/// What the manifests say of a track, without its cues, which a long presentation piles up.
fn described(track: &TextTrack) -> TextTrack {
    TextTrack {
        language: track.language.clone(),
        name: track.name.clone(),
        forced: track.forced,
        hearing_impaired: track.hearing_impaired,
        cues: Vec::new(),
    }
}
