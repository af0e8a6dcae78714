//! `--ladder-mode per-title`: before encoding, the title is sampled (`sample`), each candidate
//! rung is encoded at a few constant-quality settings and measured (`probe`), its rate–quality
//! curve fitted (`fit`), and the ladder chosen from the curves (`choose`): the fewest bits that
//! reach each rung's quality target, without the rungs that do not earn their place.

pub mod choose;
pub mod fit;
mod probe;
pub mod sample;

use serde::Serialize;

use self::choose::{Decision, Measured, RungChoice};
use self::probe::{ProbeSettings, Probes};
use self::sample::Window;
use crate::error::Result;
use crate::input::source::Source;
use crate::package::PackageOptions;
use crate::package::ladder::{self, Ladder, Plan, Rung};
use crate::package::transcode::encoding::{PRESETS, VideoCodec, preset_index};

/// How the ladder's bitrates are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LadderMode {
    /// As the ladder file gives them.
    #[default]
    Fixed,
    /// Measured for each title by the probe.
    PerTitle,
}

named!(LadderMode, "ladder mode", LadderMode::Fixed => "fixed", LadderMode::PerTitle => "per-title");

/// The preset the probe encodes at (`veryfast`), or the job's own when that is faster.
const PROBE_PRESET: usize = 2;

/// The job preset whose rates the probe's are corrected to (`medium`).
const CORRECTED_PRESET: usize = 5;

/// The bitrate `medium` needs for the PSNR `veryfast` reaches, as a share of `veryfast`'s: the
/// geometric mean over 360p and 234p of a static slide (1.02, 1.09), testsrc2 (0.90, 0.84) and
/// testsrc2 under noise (1.02, 0.94), each averaged over the PSNR range both presets' probes
/// cover. It scales only the predicted bitrates, by which rungs are compared: the rungs are
/// encoded at the probe's CRF, at which `medium` reaches 0–3.8 dB more than `veryfast` (so at
/// or above the target). Other presets get no correction.
const MEDIUM_BITRATE_SHARE: f64 = 0.96;

/// What the probe measured and chose, for the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PerTitleReport {
    /// The windows sampled, in seconds from the title's start.
    pub windows: Vec<Window>,
    /// The x264 preset of the probe encodes.
    pub probe_preset: String,
    /// The factor the probe's bitrates were multiplied by for the job's preset.
    pub bitrate_correction: f64,
    /// CPU seconds (user and system) the probe took.
    pub probe_cpu_seconds: f64,
    /// Every candidate rung, largest first, kept or dropped.
    pub rungs: Vec<RungChoice>,
}

/// The plan with the per-title bitrates and without the rungs the choice drops, and the report
/// of the choice; a title too short to sample keeps the fixed plan, with a note.
pub(crate) fn choose_ladder(
    source: &Source,
    plan: Plan,
    ladder: &Ladder,
    options: &PackageOptions,
    notes: &mut Vec<String>,
) -> Result<(Plan, Option<PerTitleReport>)> {
    let Some(video) = &source.video else {
        return Ok((plan, None));
    };
    let Some(duration) = source.declared_duration() else {
        notes.push(
            "per-title: the input declares no duration, so it cannot be sampled: the fixed ladder is used".into(),
        );
        return Ok((plan, None));
    };
    let Some(windows) = sample::windows(duration) else {
        notes.push(format!(
            "per-title: the title is {duration:.1} s long, too short to sample ({} s at least): the fixed ladder is used",
            sample::MIN_DURATION
        ));
        return Ok((plan, None));
    };
    let job_preset = preset_index(&options.encoder_preset)?;
    let settings = ProbeSettings {
        preset: job_preset.min(PROBE_PRESET),
        keyint: VideoCodec::H264.keyint(options.segment_duration, video.frame_rate),
        frame_rate: video.frame_rate,
        gop: options.segment_duration * f64::from(video.frame_rate),
    };
    let sizes: Vec<(u32, u32)> = plan.rungs.iter().map(|r| (r.width, r.height)).collect();
    let cpu_before = cpu_seconds();
    let mut probes = Probes::new(&sizes, settings)?;
    sample::sample(
        &source.path,
        &options.input_options,
        &sizes,
        options.scaling,
        &windows,
        &mut probes,
    )?;
    let points = probes.finish()?;
    let probe_cpu_seconds = cpu_seconds() - cpu_before;
    let correction = match job_preset == CORRECTED_PRESET {
        true => MEDIUM_BITRATE_SHARE,
        false => 1.0,
    };
    let measured = plan
        .rungs
        .iter()
        .zip(points)
        .map(|(rung, points)| Measured {
            name: rung.name.clone(),
            width: rung.width,
            height: rung.height,
            fixed: rung.rate,
            quality_target: ladder.quality_target_for(rung.width.min(rung.height)),
            points,
        })
        .collect();
    let choices = choose::choose(measured, correction);
    let mut rungs: Vec<Rung> = plan
        .rungs
        .into_iter()
        .zip(&choices)
        .filter(|(_, choice)| choice.kept())
        .map(|(rung, choice)| Rung {
            name: match &choice.decision {
                Decision::Resized { to, .. } => to.clone(),
                _ => rung.name,
            },
            width: choice.width,
            height: choice.height,
            rate: choice.rate(rung.rate),
            constant_quality: choice.crf,
        })
        .collect();
    ladder::disambiguate_names(&mut rungs);
    let report = PerTitleReport {
        windows,
        probe_preset: PRESETS[settings.preset].to_owned(),
        bitrate_correction: correction,
        probe_cpu_seconds,
        rungs: choices,
    };
    let plan = Plan {
        rungs,
        dropped_above_source: plan.dropped_above_source,
    };
    Ok((plan, Some(report)))
}

/// CPU seconds this process has used, user and system.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
