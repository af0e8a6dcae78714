//! `plan`, `encode-chunk` and `assemble`: a title encoded in chunks by an array-job engine's
//! tasks. `plan` keeps its `hls`/`dash` command line in the plan; the other two read it again
//! with the same parser, so every task runs the options `plan` was given.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use stream_pack::PackageOptions;
use stream_pack::tools::record::time::parse_duration;
use stream_pack::tools::scale_out::plan_file::Planning;
use stream_pack::tools::scale_out::slurm::SlurmJobs;
use stream_pack::tools::scale_out::{self, LoadedPlan};

use crate::args::JobArgs;
use crate::package::{DashArgs, HlsArgs};
use crate::report;

#[derive(clap::Args)]
pub struct PlanArgs {
    #[command(subcommand)]
    command: Planned,
}

/// The command planned: `hls` or `dash` with every option of its own, and the plan's.
#[derive(clap::Subcommand)]
enum Planned {
    /// Plan an `hls` run: its arguments, then --plan.
    Hls {
        #[command(flatten)]
        args: HlsArgs,
        #[command(flatten)]
        chunking: Chunking,
    },
    /// Plan a `dash` run: its arguments, then --plan.
    Dash {
        #[command(flatten)]
        args: DashArgs,
        #[command(flatten)]
        chunking: Chunking,
    },
}

#[derive(clap::Args)]
struct Chunking {
    /// The plan folder, on storage every task reaches (NFS or any shared path, or s3://bucket/prefix/).
    #[arg(long)]
    plan: PathBuf,
    /// Video per chunk, rounded to whole segments (120s, 2m, 45s).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    chunk_duration: std::time::Duration,
    /// Video before each chunk encoded to warm up the rate control, then dropped (0s: none).
    #[arg(long, default_value = "4s", value_parser = parse_preroll)]
    chunk_preroll: std::time::Duration,
    #[command(flatten)]
    emit: Emit,
}

/// `--emit slurm` and its options: PLAN/submit.sh.
#[derive(clap::Args)]
struct Emit {
    /// Also write PLAN/submit.sh, which submits the plan's jobs to this engine.
    #[arg(long, value_enum)]
    emit: Option<Engine>,
    /// Array tasks running at once (sbatch --array=…%N).
    #[arg(long, default_value_t = 16, requires = "emit")]
    slurm_throttle: u32,
    /// One more sbatch option for both jobs, as one word: --name or --name=value (repeatable).
    #[arg(long, allow_hyphen_values = true, requires = "emit")]
    slurm_option: Vec<String>,
    /// The stream-pack the jobs run [default: this one's absolute path]; `stream-pack`: the one
    /// on each node's PATH.
    #[arg(long, requires = "emit")]
    slurm_program: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Engine {
    Slurm,
}

impl Emit {
    /// The jobs to write a submit script for, checked before anything is planned.
    fn slurm_jobs(&self, folder: &std::path::Path) -> anyhow::Result<Option<SlurmJobs>> {
        let Some(Engine::Slurm) = self.emit else {
            return Ok(None);
        };
        let program = match &self.slurm_program {
            Some(program) => program.clone(),
            None => std::env::current_exe().context("finding this stream-pack's path")?,
        };
        let jobs = SlurmJobs::new(folder, &program, self.slurm_throttle, self.slurm_option.clone())?;
        Ok(Some(jobs))
    }
}

/// A duration, or none: `0`.
fn parse_preroll(text: &str) -> Result<std::time::Duration, String> {
    match text {
        "0" | "0s" => Ok(std::time::Duration::ZERO),
        _ => parse_duration(text),
    }
}

/// A planned command line read again.
#[derive(Parser)]
#[command(name = "stream-pack plan")]
struct PlannedLine {
    #[command(subcommand)]
    command: Planned,
}

impl Planned {
    fn options(&self) -> anyhow::Result<PackageOptions> {
        match self {
            Planned::Hls { args, .. } => args.options(),
            Planned::Dash { args, .. } => args.options(),
        }
    }

    fn job(&self) -> &JobArgs {
        match self {
            Planned::Hls { args, .. } => args.job(),
            Planned::Dash { args, .. } => args.job(),
        }
    }

    fn chunking(&self) -> &Chunking {
        match self {
            Planned::Hls { chunking, .. } | Planned::Dash { chunking, .. } => chunking,
        }
    }
}

#[derive(clap::Args)]
pub struct EncodeChunkArgs {
    /// The plan folder.
    plan: PathBuf,
    /// The task, 0 to the plan's tasks − 1; default: $SLURM_ARRAY_TASK_ID,
    /// $JOB_COMPLETION_INDEX or $AWS_BATCH_JOB_ARRAY_INDEX.
    #[arg(long)]
    index: Option<u64>,
}

#[derive(clap::Args)]
pub struct AssembleArgs {
    /// The plan folder.
    plan: PathBuf,
    /// Replace an existing output folder, as the planned command's --force would.
    #[arg(long)]
    force: bool,
}

/// `stream-pack plan`: the command line after `plan` is what the plan keeps.
pub fn plan(args: &PlanArgs) -> anyhow::Result<()> {
    let command = std::env::args_os()
        .skip(2)
        .map(|arg| arg.into_string())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|arg| stream_pack::Error::Usage(format!("{arg:?}: a planned argument must be UTF-8")))?;
    let options = args.command.options()?;
    let chunking = args.command.chunking();
    let slurm = chunking.emit.slurm_jobs(&chunking.plan)?;
    let planning = Planning {
        options: &options,
        command,
        cwd: std::env::current_dir().context("reading the working folder")?,
        chunk_duration: chunking.chunk_duration.as_secs_f64(),
        preroll: chunking.chunk_preroll.as_secs_f64(),
    };
    let plan = scale_out::plan(&chunking.plan, planning)?;
    if !args.command.job().quiet {
        println!(
            "{}: {} chunks, {} tasks: run stream-pack encode-chunk {} --index I for I in 0..{}, then assemble",
            chunking.plan.join("plan.json").display(),
            plan.chunks.len(),
            plan.tasks,
            chunking.plan.display(),
            plan.tasks
        );
    }
    if let Some(slurm) = slurm {
        let script = slurm.write_submit_script(plan.tasks)?;
        if !args.command.job().quiet {
            println!(
                "{}: run it with bash to submit the tasks and assemble to Slurm",
                script.display()
            );
        }
    }
    Ok(())
}

/// The plan at `folder`, and its command read again where `plan` ran (relative paths in it
/// mean what they meant there).
fn load(folder: &std::path::Path) -> anyhow::Result<(LoadedPlan, Planned)> {
    let loaded = LoadedPlan::load(folder)?;
    let cwd = &loaded.plan.cwd;
    std::env::set_current_dir(cwd).map_err(|e| stream_pack::Error::Plan {
        path: loaded.folder.plan_path(),
        reason: format!("its working folder {} cannot be entered here: {e}", cwd.display()),
    })?;
    let line = std::iter::once("stream-pack plan".to_owned()).chain(loaded.plan.command.iter().cloned());
    let planned = PlannedLine::try_parse_from(line).map_err(|e| stream_pack::Error::Plan {
        path: loaded.folder.plan_path(),
        reason: format!(
            "its command cannot be read: {}",
            e.to_string().lines().next().unwrap_or("")
        ),
    })?;
    Ok((loaded, planned.command))
}

pub fn encode_chunk(args: &EncodeChunkArgs) -> anyhow::Result<()> {
    let index = scale_out::task_index(args.index)?;
    let (loaded, planned) = load(&args.plan)?;
    let options = planned.options()?;
    let mut monitor = planned.job().monitor();
    let sidecar = loaded.encode_chunk(&options, index, &mut monitor);
    monitor.close();
    let sidecar = sidecar?;
    if !planned.job().quiet {
        let segments: usize = sidecar.renditions.iter().map(|r| r.segments.len()).sum();
        println!(
            "chunk {index}: {} renditions, {segments} segments in {}",
            sidecar.renditions.len(),
            loaded.folder.chunk_name(index).display()
        );
    }
    Ok(())
}

pub fn assemble(args: &AssembleArgs) -> anyhow::Result<()> {
    let (loaded, planned) = load(&args.plan)?;
    let mut options = planned.options()?;
    options.force |= args.force;
    let mut monitor = planned.job().monitor();
    let report = loaded.assemble(&options, &mut monitor);
    monitor.close();
    let report = report?;
    if !planned.job().quiet {
        report::print_report(&report);
    }
    Ok(())
}
