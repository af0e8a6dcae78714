//! The VOD driver: a file or URL read as fast as it comes, packaged in a staging folder (a scratch
//! folder when it goes only to remote destinations) and put in place whole at the end. Its video
//! may be copied or its top rung passed through, cut at its keyframes; its segments may be
//! encrypted.

use std::path::PathBuf;

use super::{
    Job, Made, PackageOptions, PackageReport, absolute_output, deliver, key_notes, keyframes, ladder_plan, load_ladder,
    reports, schedule_keys, stage_keys, start_tracking,
};
use crate::error::Result;
use crate::input::source::{self, Source};
use crate::output::staging::{Staging, Workspace};
use crate::package::audio;
use crate::package::crypto::{KeySchedule, SharedKeys};
use crate::package::ladder;
use crate::package::ladder::Rung;
use crate::package::manifest::dash;
use crate::package::per_title::{self, LadderMode};
use crate::package::pipelines::{self, Pipelines};
use crate::package::segment::EncodedRendition;
use crate::package::subtitles::source::SourceSubtitles;
use crate::package::subtitles::{self, TextRendition};
use crate::progress::{Monitor, Stage, Tracker};

pub(super) fn package(options: &PackageOptions, monitor: &mut dyn Monitor) -> Result<PackageReport> {
    let ladder = load_ladder(options)?;
    let mut notes = Vec::new();
    let text_tracks = subtitles::load_sidecars(&options.subtitles, &mut notes)?;
    // Nothing is written until the input is open: opening may wait for the open timeout or a
    // Ctrl-C, or fail; an object-storage input is downloaded first.
    let mut source = Source::fetch_and_open(
        &options.input,
        &options.input_options,
        &options.publishing.options,
        monitor,
    )?;
    // Refused before anything is written: a selection naming a stream that is not there.
    let audio = audio::choose(&source, &options.audio, options.default_audio.as_deref())?;
    let audio = audio::with_surround(audio, options.surround, |input| {
        !pipelines::copies_audio(options, input)
    });
    let (workspace, output, keys) = prepare_output(options)?;
    let publisher = options.publishing.start()?;
    let root = workspace.path().to_owned();
    let mut tracker = start_tracking(&source, options, monitor)?;
    let plan = match &source.video {
        Some(video) if options.copy => keyframes::copy_plan(&source, video, options.format)?,
        _ => ladder_plan(&source, &ladder, options)?,
    };
    let (plan, per_title) = match options.ladder_mode {
        LadderMode::PerTitle => per_title::choose_ladder(&source, plan, &ladder, options, &mut notes)?,
        LadderMode::Fixed => (plan, None),
    };
    tracker.set_ladder(per_title.clone());
    let (clock, passthrough) = keyframes::segment_clock(&source, &plan, options, &mut notes)?;
    let keys = keys
        .map(|keys| stage_keys(keys, &output, &root, &options.publishing.options))
        .transpose()?;
    let job = Job::new(
        options,
        &root,
        &output,
        clock,
        keys.clone(),
        passthrough,
        publisher.as_ref(),
    )
    .with_audio(audio);
    let mut source_texts = SourceSubtitles::new(&source, &options.subtitle_streams, &mut notes)?;
    let (video, audio) = transcode(&mut source, &plan.rungs, &job, &mut source_texts, &mut tracker, monitor)?;
    let built = options.text_tracks.iter().cloned();
    let text_tracks = source_texts
        .finish()
        .into_iter()
        .chain(built)
        .chain(text_tracks)
        .collect();
    // The files the segmenters completed while flushing; the manifests list them all.
    let flushed = job.take_flushed(&mut tracker);
    tracker.stage(Stage::Publish, monitor);
    options.input_options.cancel.check()?;
    flushed.iter().try_for_each(|file| job.hand_over(file))?;
    notes.extend(
        video
            .first()
            .filter(|_| options.copy || passthrough)
            .and_then(|v| keyframes::keyframe_note(&v.media.segments, options.segment_duration, source.video.as_ref())),
    );
    let subtitles = write_subtitles(&job, text_tracks, &video, &audio)?;
    let written = Written {
        video: &video,
        audio: &audio,
        subtitles: &subtitles,
    };
    let made = write_manifests(&job, &source, plan, &written, keys.as_ref(), notes)?;
    let report = PackageReport {
        per_title,
        ..deliver(options, workspace, publisher, made, &mut tracker)?
    };
    if let Some(keys) = &keys {
        keys.lock().expect("key schedule lock").keep();
    }
    tracker.stage(Stage::Done, monitor);
    Ok(report)
}

/// The folder the package is built in, where it will be (for key paths relative to it: keys
/// never go to remote destinations, so a remote-only package has only its scratch folder) and
/// its keys, refused if they would overwrite what the run did not make.
pub(super) fn prepare_output(options: &PackageOptions) -> Result<(Workspace, PathBuf, Option<KeySchedule>)> {
    let workspace = match options.publishing.remote_only {
        true => Workspace::scratch()?,
        false => Workspace::Staged(Staging::new(&options.output, options.force)?),
    };
    let output = match options.publishing.remote_only {
        true => workspace.path().to_owned(),
        false => absolute_output(options)?,
    };
    let keys = schedule_keys(options, &output)?;
    Ok((workspace, output, keys))
}

/// Writes the subtitle renditions, cut like the top video rendition (or the audio), their cue
/// times counted from where the DASH period starts (whether or not there is an MPD, so that
/// `dash --hls` and `hls` write the same files), and hands their files over.
fn write_subtitles(
    job: &Job,
    tracks: Vec<subtitles::TextTrack>,
    video: &[EncodedRendition],
    audio: &[EncodedRendition],
) -> Result<Vec<TextRendition>> {
    let Some(timeline) = video.first().or(audio.first()) else {
        return Ok(Vec::new());
    };
    let period_start = dash::latest_start(video.iter().chain(audio).map(|r| &r.media));
    let origin_ms = (period_start * 1000.0).round().max(0.0) as u64;
    let renditions = subtitles::write_renditions(job.root, tracks, &timeline.media, origin_ms)?;
    renditions
        .iter()
        .flat_map(|s| s.completed(job.root))
        .try_for_each(|file| job.hand_over(&file))?;
    Ok(renditions)
}

/// The renditions the pass wrote.
pub(super) struct Written<'a> {
    pub video: &'a [EncodedRendition],
    pub audio: &'a [EncodedRendition],
    pub subtitles: &'a [TextRendition],
}

/// Writes the manifests, and the key info operators need; says what was made.
pub(super) fn write_manifests(
    job: &Job,
    source: &Source,
    plan: ladder::Plan,
    written: &Written,
    keys: Option<&SharedKeys>,
    mut notes: Vec<String>,
) -> Result<Made> {
    let mut warnings = Vec::new();
    let mut keys_in_force = keys.map(|k| k.lock().expect("key schedule lock"));
    let (video, audio) = (written.video, written.audio);
    let mut package = job.manifest_package(source, &plan.rungs, video, audio, keys_in_force.as_deref(), None);
    package.subtitles = written.subtitles;
    job.write_manifests(&package)?;
    let renditions = reports(&package);
    if let Some(keys) = keys_in_force.as_deref_mut() {
        key_notes(keys, video, audio, job.output, &mut notes, &mut warnings)?;
    }
    Ok(Made {
        renditions,
        dropped_above_source: plan.dropped_above_source,
        notes,
        warnings,
    })
}

/// Reads the source once, to its end (a chunk's job: to its last frame), feeding its video to the
/// ladder, each audio stream kept to its rendition and its text subtitles to `texts`; a
/// cancelled job stops at once.
pub(super) fn transcode(
    source: &mut Source,
    rungs: &[Rung],
    job: &Job,
    texts: &mut SourceSubtitles,
    tracker: &mut Tracker,
    monitor: &mut dyn Monitor,
) -> Result<(Vec<EncodedRendition>, Vec<EncodedRendition>)> {
    let mut pipelines = Pipelines::new(source, rungs, job)?;
    tracker.follow(pipelines.tracks(), job.clock.longest());
    while let Some(packet) = source.read(pipelines.media_end())? {
        if job
            .range
            .is_some_and(|range| range.passed(&packet, source.video.as_ref()))
        {
            return pipelines.finish();
        }
        if texts.take(&packet, &job.clock)? {
            continue;
        }
        let Some(routed) = pipelines.route(&packet, &job.clock) else {
            continue;
        };
        routed.pipeline.send(&packet)?;
        job.take_completed(tracker)?;
        job.tick(tracker, pipelines.media_end(), monitor);
        job.options.input_options.cancel.check()?;
    }
    pipelines.finish_audio()?;
    source::check_complete(&source.path, source.declared_duration(), pipelines.media_end())?;
    pipelines.finish()
}
