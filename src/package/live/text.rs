//! A live presentation's subtitles: the source's text streams, read as they arrive, and the
//! sidecar files, whose cue times count from the live source's start. Each WebVTT segment is
//! written once its number is complete in every media rendition, cut like the first one; the
//! window lists and deletes it with them.

use std::path::Path;

use ffmpeg_next::Packet;

use crate::error::{Error, Result};
use crate::package::segment::{Completed, EncodedRendition, SegmentClock, SegmentedStream};
use crate::package::subtitles::source::SourceSubtitles;
use crate::package::subtitles::{self, TextRendition, TextTrack, webvtt};

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
    /// Makes a folder in `root` for each track of `source` and each sidecar; with `wanted`
    /// false (no manifest could list them), reads the source's tracks but writes nothing.
    pub fn new(root: &Path, mut source: SourceSubtitles, sidecars: Vec<TextTrack>, wanted: bool) -> Result<LiveText> {
        let tracks: Vec<TextTrack> = source.tracks().cloned().chain(sidecars.iter().cloned()).collect();
        let names = match wanted {
            true => subtitles::folder_names(&tracks),
            false => Vec::new(),
        };
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

    /// Writes every track's segments up to number `count` of `timeline` (with `ended`, the last
    /// also takes every cue after it), and says what it completed, for the window and the
    /// remote destinations.
    pub fn write_up_to(
        &mut self,
        root: &Path,
        timeline: &SegmentedStream,
        count: usize,
        ended: bool,
    ) -> Result<Vec<Completed>> {
        let count = count.min(timeline.segments.len());
        let mut completed = Vec::new();
        let sidecars = self.sidecars.iter();
        for (track, name) in self.source.tracks().chain(sidecars).zip(&self.names) {
            let dir = root.join(name);
            let segments = (self.written..count)
                .map(|index| {
                    webvtt::write_segment(
                        &dir,
                        track,
                        timeline,
                        index,
                        webvtt::Cut {
                            origin_ms: 0,
                            ended: ended && index + 1 == count,
                        },
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let rendition = TextRendition {
                name: name.clone(),
                track: described(track),
                media: SegmentedStream {
                    segments,
                    init: None,
                    ..timeline.clone()
                },
            };
            completed.extend(rendition.completed(root));
        }
        self.written = self.written.max(count);
        Ok(completed)
    }

    /// The renditions the manifests list, from the window's listing of the followers. A live
    /// subtitle track is listed segment by segment as the window moves.
    pub fn renditions(&mut self, listed: Vec<(String, EncodedRendition)>) -> Vec<TextRendition> {
        let tracks: Vec<&TextTrack> = self.source.tracks().chain(&self.sidecars).collect();
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
