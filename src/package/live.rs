//! The live driver: a live source packaged in place as it arrives (in a scratch folder when it goes
//! only to remote destinations), its manifests rewritten as each segment row completes, under a
//! window that may let old segments go. Stopping the job (Ctrl-C) or losing the source ends the
//! presentation: what was sent is finished and kept. It carries every track as a file does:
//! each audio stream chosen, its 5.1 rendition beside its stereo one, and the subtitles (the
//! source's text streams and the sidecars) as WebVTT segments that HLS and DASH both list.

mod text;

use std::time::Instant;

use super::{
    Job, LiveJob, Made, PackageOptions, PackageReport, absolute_output, deliver, key_notes, ladder_plan, load_ladder,
    pipelines, regular_clock, reports, schedule_keys, stage_keys, start_tracking,
};
use crate::error::{Error, Result};
use crate::input::live::{CaptureDevice, LiveSource};
use crate::input::source::Source;
use crate::output::staging::{self, Workspace};
use crate::package::audio;
use crate::package::crypto::SharedKeys;
use crate::package::ladder::Rung;
use crate::package::manifest::dash;
use crate::package::pipelines::Pipelines;
use crate::package::segment::{Completed, EncodedRendition};
use crate::package::subtitles::webvtt::Cut;
use crate::package::subtitles::{self, source::SourceSubtitles};
use crate::package::window::Window;
use crate::progress::{Monitor, Stage, Tracker};
use text::LiveText;

pub(super) fn package(options: &PackageOptions, live: &LiveJob, monitor: &mut dyn Monitor) -> Result<PackageReport> {
    let ladder = load_ladder(options)?;
    let mut notes = Vec::new();
    // Tracks built in code come before the files, as in VOD.
    let built = options.text_tracks.iter().cloned();
    let sidecars: Vec<_> = built
        .chain(subtitles::load_sidecars(&options.subtitles, &mut notes)?)
        .collect();
    // Nothing is written until the source is open: opening may wait for the open timeout or a
    // Ctrl-C, or fail.
    let mut source = Source::open_live(&live.source, &options.input_options)?;
    // Refused before anything is written: a selection naming a stream that is not there.
    let audio = audio::choose(&source, &options.audio, options.default_audio.as_deref())?;
    let audio = audio::with_surround(audio, options.surround, |input| {
        !pipelines::copies_audio(options, input)
    });
    let scratch = match options.publishing.remote_only {
        true => Some(Workspace::scratch()?),
        false => None,
    };
    let publisher = options.publishing.start()?;
    let output = match &scratch {
        Some(scratch) => scratch.path().to_owned(),
        None => absolute_output(options)?,
    };
    let keys = schedule_keys(options, &output)?;
    // A live presentation is visible while it runs: it is written in place.
    let workspace = match scratch {
        Some(scratch) => scratch,
        None => Workspace::InPlace(staging::live_folder(&output, options.force)?),
    };
    let root = workspace.path().to_owned();
    let mut tracker = start_tracking(&source, options, monitor)?;
    let plan = ladder_plan(&source, &ladder, options)?;
    let clock = regular_clock(&source, options);
    let keys = keys
        .map(|keys| stage_keys(keys, &output, &root, &options.publishing.options))
        .transpose()?;
    let job = Job::new(options, &root, &output, clock, keys.clone(), false, publisher.as_ref()).with_audio(audio);
    let source_texts = SourceSubtitles::new(&source, &options.subtitle_streams, &mut notes)?;
    let texts = LiveText::new(&root, source_texts, sidecars)?;
    let mut presentation = Presentation {
        window: live_window(&source, &plan.rungs, &job, live).followed_by(texts.names()),
        job: &job,
        rungs: &plan.rungs,
        texts,
        keys: keys.as_ref(),
    };
    let (video, audio, lost) = transcode(&mut source, live, &mut presentation, &mut tracker, monitor)?;
    // The files the segmenters completed while flushing; the last manifests list them all.
    let flushed = job.take_flushed(&mut tracker);
    tracker.stage(Stage::Publish, monitor);
    flushed.iter().try_for_each(|file| job.hand_over(file))?;
    presentation.add(&source, flushed, true)?;
    presentation.delete_due(true)?;
    let package = job.manifest_package(&source, &plan.rungs, &video, &audio, None, None);
    let mut warnings: Vec<String> = lost.into_iter().collect();
    if let Some(keys) = &keys {
        let mut keys = keys.lock().expect("key schedule lock");
        key_notes(&mut keys, &video, &audio, &output, &mut notes, &mut warnings)?;
    }
    let made = Made {
        renditions: reports(&package),
        dropped_above_source: plan.dropped_above_source,
        notes,
        warnings,
    };
    let report = deliver(options, workspace, publisher, made, &mut tracker)?;
    tracker.stage(Stage::Done, monitor);
    Ok(report)
}

/// Reads the source until it ends, is stopped or is lost (the returned sentence says so), feeding
/// its video to the ladder, its audio streams to their renditions and its text streams to the
/// subtitles, and rewriting the manifests as each row of segments completes.
fn transcode(
    source: &mut Source,
    live: &LiveJob,
    presentation: &mut Presentation,
    tracker: &mut Tracker,
    monitor: &mut dyn Monitor,
) -> Result<(Vec<EncodedRendition>, Vec<EncodedRendition>, Option<String>)> {
    let job = presentation.job;
    let mut pipelines = Pipelines::new(source, presentation.rungs, job)?;
    tracker.follow(pipelines.tracks(), job.clock.longest());
    let paced_from = paced(&live.source).then(Instant::now);
    let mut lost = None;
    while let Some(packet) = next_packet(source, pipelines.media_end(), &mut lost)? {
        if presentation.texts.take(&packet, &job.clock)? {
            continue;
        }
        let Some(routed) = pipelines.route(&packet, &job.clock) else {
            continue;
        };
        if let Some(start) = routed.start {
            if let Some(started) = paced_from {
                wait_for(started, start);
            }
            presentation.window.start_clock(start);
        }
        routed.pipeline.send(&packet)?;
        let completed = job.take_completed(tracker)?;
        presentation.add(source, completed, false)?;
        presentation.delete_due(false)?;
        job.tick(tracker, pipelines.media_end(), monitor);
        // Stopping a live presentation is how it ends: what was sent is finished and kept.
        if job.options.input_options.cancel.is_cancelled() {
            break;
        }
    }
    let (video, audio) = pipelines.finish()?;
    Ok((video, audio, lost))
}

/// A source that does not arrive at its own pace (a file, a filter graph) is read at its
/// presentation rate, as a live source would send it.
fn paced(source: &LiveSource) -> bool {
    matches!(
        source,
        LiveSource::File(_)
            | LiveSource::Capture {
                device: CaptureDevice::Lavfi,
                ..
            }
    )
}

/// The next packet; `None` where the source ends, was told to stop, or was lost (said in `lost`).
fn next_packet(
    source: &mut Source,
    read_so_far: f64,
    lost: &mut Option<String>,
) -> Result<Option<ffmpeg_next::Packet>> {
    match source.read(read_so_far) {
        Err(Error::Cancelled) => Ok(None),
        Err(error @ Error::LiveDropped { .. }) => {
            *lost = Some(format!("{error}; the presentation was closed after {read_so_far:.1} s"));
            Ok(None)
        }
        other => other,
    }
}

/// Sleeps until `media_seconds` after `started`, to read a file at its presentation rate.
fn wait_for(started: Instant, media_seconds: f64) {
    let due = started + std::time::Duration::from_secs_f64(media_seconds.max(0.0));
    if let Some(ahead) = due.checked_duration_since(Instant::now()) {
        std::thread::sleep(ahead);
    }
}

/// The window of a live presentation over its renditions, in manifest order. Its target duration
/// is the segment duration rounded up: RFC 8216 does not let it change while the playlist lives,
/// and clock-cut segments overrun the duration by less than an audio frame.
fn live_window(source: &Source, rungs: &[Rung], job: &Job, live: &LiveJob) -> Window {
    let mut names: Vec<String> = match source.video {
        Some(_) => rungs.iter().map(|r| r.name.clone()).collect(),
        None => Vec::new(),
    };
    names.extend(job.audio.iter().map(|a| a.dir.clone()));
    let target = (job.options.segment_duration.ceil() as u64).max(1);
    Window::new(names, live.window, target)
}

/// A live presentation as it is written: its window over the renditions, and its subtitles.
struct Presentation<'a> {
    job: &'a Job<'a>,
    rungs: &'a [Rung],
    window: Window,
    texts: LiveText,
    /// The AES-128 keys the segments name (kept whole: the window lets segments go, never
    /// the keys a player that joined earlier may still fetch).
    keys: Option<&'a SharedKeys>,
}

impl Presentation<'_> {
    /// Adds files completed (and handed over); when they complete a row, or the presentation
    /// has `ended`, writes the subtitles' segments of the rows complete, then the manifests.
    fn add(&mut self, source: &Source, files: Vec<Completed>, ended: bool) -> Result<()> {
        let mut grew = false;
        for file in files {
            grew |= self.window.add(file);
        }
        if !(grew || ended) {
            return Ok(());
        }
        self.write_subtitles(ended)?;
        self.write_manifests(source, ended)
    }

    /// Writes the subtitles' segments of the rows complete (every row once `ended`), their cue
    /// times counted from where the DASH period starts, hands them over and has the window
    /// list them. When the period moved at the end, the segments the static MPD lists are cut
    /// again for it.
    fn write_subtitles(&mut self, ended: bool) -> Result<()> {
        let Some(timeline) = self.window.timeline() else {
            return Ok(());
        };
        let rows = match ended {
            true => timeline.segments.len(),
            false => self.window.complete(),
        };
        let live = dash::live_period_start(&self.window.state(false));
        let cut = |period_start: f64| Cut {
            origin_ms: (period_start * 1000.0).round() as u64,
            ended,
        };
        let written = self.texts.write_up_to(self.job.root, timeline, rows, cut(live))?;
        let state = self.window.state(ended);
        let moved = dash::live_period_start(&state);
        let again = match self.job.options.manifests.dash && moved != live {
            true => self
                .texts
                .write_moved(self.job.root, timeline, state.first..rows, cut(moved))?,
            false => Vec::new(),
        };
        for file in again {
            self.job.hand_over(&file)?;
        }
        for file in written {
            self.job.hand_over(&file)?;
            self.window.add(file);
        }
        Ok(())
    }

    /// Writes the manifests as the window stands, then lets go of the segments that left it.
    fn write_manifests(&mut self, source: &Source, ended: bool) -> Result<()> {
        let (mut listed, state) = self.window.listing(ended);
        let texts = self.texts.names();
        let media_count = listed.iter().filter(|(name, _)| !texts.contains(name)).count();
        let text_listed = listed.split_off(media_count);
        let video_count = if source.video.is_some() { self.rungs.len() } else { 0 };
        let media: Vec<EncodedRendition> = listed.into_iter().map(|(_, r)| r).collect();
        let (video, audio) = media.split_at(video_count.min(media.len()));
        let subtitles = self.texts.renditions(text_listed);
        let mut keys = self.keys.map(|k| k.lock().expect("key schedule lock"));
        let mut package = self
            .job
            .manifest_package(source, self.rungs, video, audio, keys.as_deref(), Some(&state));
        package.subtitles = &subtitles;
        self.job.write_manifests(&package)?;
        self.window.manifests_written(&state);
        // Players fetch the keys these manifests name, whatever ends the job later: a failure
        // must not take them from the segments already served.
        if let Some(keys) = keys.as_mut() {
            keys.keep();
        }
        Ok(())
    }

    /// Deletes the live segments whose time has come, here and at every remote destination.
    fn delete_due(&mut self, wait: bool) -> Result<()> {
        for path in self.window.delete_due(wait)? {
            if let (Some(publisher), Ok(relative)) = (self.job.publisher, path.strip_prefix(self.job.root)) {
                publisher.delete(&relative.to_string_lossy())?;
            }
        }
        Ok(())
    }
}
