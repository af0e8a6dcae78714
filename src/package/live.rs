//! The live driver: a live source packaged in place as it arrives (in a scratch folder when it goes
//! only to remote destinations), its manifests rewritten as each segment row completes, under a
//! window that may let old segments go. Stopping the job (Ctrl-C) or losing the source ends the
//! presentation: what was sent is finished and kept.

use std::time::Instant;

use super::{
    Job, LiveJob, Made, PackageOptions, PackageReport, absolute_output, deliver, ladder_plan, load_ladder,
    refuse_overlap, regular_clock, reports, start_tracking,
};
use crate::error::{Error, Result};
use crate::input::live::{CaptureDevice, LiveSource};
use crate::input::source::Source;
use crate::output::staging::{self, Workspace};
use crate::package::audio::{self, AudioPick, AudioSelection};
use crate::package::ladder::Rung;
use crate::package::pipelines::Pipelines;
use crate::package::segment::EncodedRendition;
use crate::package::window::Window;
use crate::progress::{Monitor, Stage, Tracker};

pub(super) fn package(options: &PackageOptions, live: &LiveJob, monitor: &mut dyn Monitor) -> Result<PackageReport> {
    let ladder = load_ladder(options)?;
    // Nothing is written until the source is open: opening may wait for the open timeout or a
    // Ctrl-C, or fail.
    let mut source = Source::open_live(&live.source, &options.input_options)?;
    let scratch = match options.publishing.remote_only {
        true => Some(Workspace::scratch()?),
        false => None,
    };
    let publisher = options.publishing.start()?;
    let output = match &scratch {
        Some(scratch) => scratch.path().to_owned(),
        None => absolute_output(options)?,
    };
    refuse_overlap(options, [])?;
    // A live presentation is visible while it runs: it is written in place.
    let workspace = match scratch {
        Some(scratch) => scratch,
        None => Workspace::InPlace(staging::live_folder(&output, options.force)?),
    };
    let root = workspace.path().to_owned();
    let mut tracker = start_tracking(&source, options, monitor)?;
    let plan = ladder_plan(&source, &ladder, options)?;
    let clock = regular_clock(&source, options);
    // A live job packages the best audio stream alone, as before multi-audio.
    let best = source.audio.iter().map(|a| AudioPick::Index(a.index)).collect();
    let audio = audio::choose(&source, &AudioSelection::Streams(best), None)?;
    let job = Job::new(options, &root, &output, clock, None, false, publisher.as_ref()).with_audio(audio);
    let mut window = live_window(&source, &plan.rungs, &job, live);
    let (video, audio, lost) = transcode(&mut source, live, &plan.rungs, &job, &mut window, &mut tracker, monitor)?;
    // The files the segmenters completed while flushing; the last manifests list them all.
    let flushed = job.take_flushed(&mut tracker);
    tracker.stage(Stage::Publish, monitor);
    for file in flushed {
        job.hand_over(&file)?;
        window.add(file);
    }
    write_live_manifests(&source, &plan.rungs, &job, &mut window, true)?;
    delete_due(&mut window, &job, true)?;
    let package = job.manifest_package(&source, &plan.rungs, &video, &audio, None, None);
    let made = Made {
        renditions: reports(&package),
        dropped_above_source: plan.dropped_above_source,
        notes: Vec::new(),
        warnings: lost.into_iter().collect(),
    };
    let report = deliver(options, workspace, publisher, made, &mut tracker)?;
    tracker.stage(Stage::Done, monitor);
    Ok(report)
}

/// Reads the source until it ends, is stopped or is lost (the returned sentence says so), feeding
/// its video to the ladder and its audio to the shared track, and rewriting the manifests as
/// each row of segments completes.
fn transcode(
    source: &mut Source,
    live: &LiveJob,
    rungs: &[Rung],
    job: &Job,
    window: &mut Window,
    tracker: &mut Tracker,
    monitor: &mut dyn Monitor,
) -> Result<(Vec<EncodedRendition>, Vec<EncodedRendition>, Option<String>)> {
    let mut pipelines = Pipelines::new(source, rungs, job)?;
    let paced_from = paced(&live.source).then(Instant::now);
    let mut lost = None;
    while let Some(packet) = next_packet(source, pipelines.media_end(), &mut lost)? {
        let Some(routed) = pipelines.route(&packet, &job.clock) else {
            continue;
        };
        if let Some(start) = routed.start {
            if let Some(started) = paced_from {
                wait_for(started, start);
            }
            window.start_clock(start);
        }
        routed.pipeline.send(&packet)?;
        for file in job.take_completed(tracker)? {
            if window.add(file) {
                write_live_manifests(source, rungs, job, window, false)?;
            }
        }
        delete_due(window, job, false)?;
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

/// Writes the manifests of a live presentation as its window stands, then lets go of the
/// segments that left it.
fn write_live_manifests(source: &Source, rungs: &[Rung], job: &Job, window: &mut Window, ended: bool) -> Result<()> {
    let (listed, state) = window.listing(ended);
    let video_count = if source.video.is_some() { rungs.len() } else { 0 };
    let (video, audio) = listed.split_at(video_count.min(listed.len()));
    let package = job.manifest_package(source, rungs, video, audio, None, Some(&state));
    job.write_manifests(&package)?;
    window.manifests_written(&state);
    Ok(())
}

/// Deletes the live segments whose time has come, here and at every remote destination.
fn delete_due(window: &mut Window, job: &Job, wait: bool) -> Result<()> {
    for path in window.delete_due(wait)? {
        if let (Some(publisher), Ok(relative)) = (job.publisher, path.strip_prefix(job.root)) {
            publisher.delete(&relative.to_string_lossy())?;
        }
    }
    Ok(())
}
