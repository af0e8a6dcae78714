//! Scale out: a title planned into chunks of whole segments ([`plan`]), each chunk's rungs
//! encoded by a task of any array-job engine ([`encode_chunk`]; the audio is one more task, over
//! the whole title), and the package put together from the chunks without re-encoding
//! ([`assemble`]), the same package a one-process run makes. The engine is the user's: these are
//! three commands over a PLAN folder on shared storage (`store`), which holds `plan.json`
//! (`plan_file`) and a folder per task with its sidecar (`sidecar`).

mod assemble;
pub mod plan_file;
pub mod sidecar;
pub mod slurm;
pub mod store;

use std::path::Path;

use self::plan_file::{Plan, Planning, Settings};
use self::sidecar::{ChunkSidecar, RenditionRecord};
use self::store::{PlanFolder, SIDECAR};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::output::staging;
use crate::package::segment::EncodedRendition;
use crate::package::{PackageOptions, PackageReport, Passthrough, chunk};
use crate::progress::Monitor;

/// The environment variables array-job engines give a task's index in, in the order read:
/// Slurm, Kubernetes Indexed Jobs, AWS Batch.
pub const INDEX_VARIABLES: [&str; 3] = [
    "SLURM_ARRAY_TASK_ID",
    "JOB_COMPLETION_INDEX",
    "AWS_BATCH_JOB_ARRAY_INDEX",
];

/// The task's index: `given`, or the first of [`INDEX_VARIABLES`] set.
pub fn task_index(given: Option<u64>) -> Result<u64> {
    if let Some(index) = given {
        return Ok(index);
    }
    let Some((name, value)) = INDEX_VARIABLES
        .iter()
        .find_map(|name| std::env::var(name).ok().map(|value| (name, value)))
    else {
        return Err(Error::Usage(format!(
            "no --index given and none of {} is set",
            INDEX_VARIABLES.join(", ")
        )));
    };
    value
        .trim()
        .parse()
        .map_err(|_| Error::Usage(format!("${name} is {value:?}: a task index must be a number")))
}

/// `options` as every task of a chunked run uses them, or why they cannot be chunked.
pub fn chunkable(options: &PackageOptions) -> Result<PackageOptions> {
    crate::input::watchdog::init()?;
    options.validate()?;
    let refuse = |option: &'static str, reason: &str| {
        Err(Error::InvalidOption {
            option,
            reason: format!("cannot be planned into chunks: {reason}"),
        })
    };
    if options.live.is_some() {
        return refuse("live", "a live source is packaged as it arrives, by one process");
    }
    if options.copy || options.passthrough_top == Passthrough::Always {
        let option = if options.copy { "copy" } else { "passthrough_top" };
        return refuse(
            option,
            "chunks are encoded; a copy is cut at the source's keyframes in one pass",
        );
    }
    if options.encryption.is_some() {
        return refuse("encryption", "encrypted packages are not assembled from chunks yet");
    }
    // Each task would probe the title again and could not share one measured ladder.
    if options.ladder_mode == crate::package::per_title::LadderMode::PerTitle {
        return refuse("ladder_mode", "a per-title ladder is not planned into chunks yet");
    }
    if !matches!(Location::of_path(&options.input), Location::File(_)) {
        return Err(Error::Usage(format!(
            "{}: cannot be planned into chunks: every task seeks in the source: give a file on shared storage",
            options.input.display()
        )));
    }
    // A passed-through top rung is cut at the source's keyframes: every rung is encoded instead.
    Ok(PackageOptions {
        passthrough_top: Passthrough::Never,
        ..options.clone()
    })
}

/// Probes the source and writes `PLAN/plan.json` for `planning.options`.
pub fn plan(folder: &Path, planning: Planning) -> Result<Plan> {
    let options = chunkable(planning.options)?;
    refuse_output(&options, folder)?;
    let title = chunk::survey(&options)?;
    let plan = Plan::new(
        &title,
        Planning {
            options: &options,
            ..planning
        },
    );
    let folder = PlanFolder::at(folder)?;
    folder.create(options.force)?;
    let bytes = serde_json::to_vec_pretty(&plan).expect("a plan serializes");
    folder.write_plan(&bytes)?;
    Ok(plan)
}

/// Refuses at once an output that `assemble` would refuse or that would replace the plan.
fn refuse_output(options: &PackageOptions, folder: &Path) -> Result<()> {
    if options.publishing.remote_only {
        return Ok(());
    }
    if options.output.exists() && !options.force {
        return Err(Error::OutputExists {
            path: options.output.clone(),
        });
    }
    // A plan in a bucket cannot be inside a local output.
    if Location::of_path(folder).is_url() {
        return Ok(());
    }
    let absolute = |path: &Path| std::path::absolute(path).map_err(Error::io(path));
    if absolute(folder)?.starts_with(absolute(&options.output)?) {
        return Err(Error::InvalidOption {
            option: "output",
            reason: format!(
                "{}: holds the plan folder {}, which assemble would replace; give another output",
                options.output.display(),
                folder.display()
            ),
        });
    }
    staging::refuse_overlap(&options.output, [("the plan folder", folder)])
}

/// A plan read from its folder, and the SHA-256 of its `plan.json`, which names it in sidecars.
pub struct LoadedPlan {
    pub folder: PlanFolder,
    pub plan: Plan,
    pub hash: String,
}

impl LoadedPlan {
    pub fn load(folder: &Path) -> Result<LoadedPlan> {
        let folder = PlanFolder::at(folder)?;
        let bytes = folder.read_plan()?;
        let plan: Plan = serde_json::from_slice(&bytes).map_err(|e| Error::Plan {
            path: folder.plan_path(),
            reason: format!("not a plan stream-pack can read: {e}"),
        })?;
        plan.check_runnable(&folder.plan_path())?;
        Ok(LoadedPlan {
            hash: sidecar::checksum_of(&bytes),
            folder,
            plan,
        })
    }

    /// The options the plan's command gives here, checked against the plan.
    fn options(&self, options: &PackageOptions) -> Result<PackageOptions> {
        let options = chunkable(options)?;
        if Settings::of(&options) != self.plan.settings {
            return Err(Error::Plan {
                path: self.folder.plan_path(),
                reason: "its settings are not what its command gives: the file was edited".into(),
            });
        }
        Ok(options)
    }

    /// Encodes task `index` into `chunks/I/`, put in place whole with its sidecar.
    pub fn encode_chunk(
        &self,
        options: &PackageOptions,
        index: u64,
        monitor: &mut dyn Monitor,
    ) -> Result<ChunkSidecar> {
        let options = self.options(options)?;
        let tasks = self.plan.tasks;
        if index >= tasks {
            return Err(Error::InvalidOption {
                option: "index",
                reason: format!("{index}: the plan has {tasks} tasks, 0 to {}", tasks.saturating_sub(1)),
            });
        }
        let staged = self.folder.stage(index)?;
        let encoded = match self.plan.chunks.get(index as usize) {
            Some(chunk) => chunk::encode_video(&options, chunk.range, staged.path(), monitor)?,
            None => chunk::encode_audio(&options, staged.path(), monitor)?,
        };
        let sidecar = self.sidecar(index, &encoded, staged.path())?;
        assemble::planned(&self.plan, index, &sidecar, staged.path())?;
        let path = staged.path().join(SIDECAR);
        let bytes = serde_json::to_vec_pretty(&sidecar).expect("a sidecar serializes");
        std::fs::write(&path, bytes).map_err(Error::io(&path))?;
        self.folder.commit(staged, index)?;
        Ok(sidecar)
    }

    fn sidecar(&self, index: u64, encoded: &[(String, EncodedRendition)], dir: &Path) -> Result<ChunkSidecar> {
        let renditions = encoded
            .iter()
            .map(|(name, rendition)| RenditionRecord::measure(name, rendition, &dir.join(name)))
            .collect::<Result<Vec<_>>>()?;
        Ok(ChunkSidecar {
            version: plan_file::VERSION,
            plan: self.hash.clone(),
            index,
            renditions,
        })
    }

    /// Checks every chunk, stitches them and publishes the package to the plan's destinations.
    pub fn assemble(&self, options: &PackageOptions, monitor: &mut dyn Monitor) -> Result<PackageReport> {
        let options = self.options(options)?;
        let sidecars = (0..self.plan.tasks)
            .map(|index| assemble::checked_sidecar(&self.folder, &self.plan, &self.hash, index))
            .collect::<Result<Vec<_>>>()?;
        let stitched = assemble::stitch(&self.folder, &self.plan, &sidecars)?;
        let report = chunk::publish(&options, &stitched, monitor)?;
        self.folder.remove_leftovers()?;
        Ok(report)
    }
}
