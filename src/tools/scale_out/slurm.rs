//! `plan --emit slurm`: `PLAN/submit.sh`, a bash script that submits a plan's tasks to Slurm as a
//! job array and the assemble job after it, and prints both job ids. Every word that reaches the
//! script (the plan folder, the program, the user's sbatch options) is shell-quoted, and the
//! command each job runs is quoted once more inside its `--wrap`, so no path or option is ever
//! read by a shell as anything but itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::sidecar::checksum_of;
use super::store::PLAN_FILE;
use crate::error::{Error, Result};

pub const SUBMIT_SCRIPT: &str = "submit.sh";
/// The jobs' logs: `encode-ARRAYID_I.log` per task, `assemble-ID.log`.
pub const LOGS: &str = "logs";

/// sbatch options the script sets itself, or that would keep it from submitting the jobs and
/// printing their ids. sbatch takes any unambiguous prefix of a long option (`--arr`), so a name
/// that begins one of these is refused too.
const SET_BY_THE_SCRIPT: [&str; 12] = [
    "array",
    "dependency",
    "parsable",
    "wrap",
    "output",
    "error",
    "chdir",
    "wait",
    "test-only",
    "help",
    "usage",
    "version",
];

/// How the plan's jobs are submitted.
pub struct SlurmJobs {
    /// The plan folder's absolute path.
    plan: String,
    /// What each job runs: a stream-pack every node reaches by this path (or on its PATH).
    program: String,
    /// Array tasks running at once (sbatch's `--array=…%N`).
    throttle: u32,
    /// More sbatch options, given to both jobs: `--name` or `--name=value`, each one word.
    options: Vec<String>,
}

impl SlurmJobs {
    /// The jobs of the plan to be made in `folder`, checked before anything is planned.
    pub fn new(folder: &Path, program: &Path, throttle: u32, options: Vec<String>) -> Result<SlurmJobs> {
        if throttle == 0 {
            return Err(Error::InvalidOption {
                option: "slurm_throttle",
                reason: "0: at least one task must run at a time".into(),
            });
        }
        for option in &options {
            check_sbatch_option(option)?;
        }
        let program = program.to_str().ok_or_else(|| Error::InvalidOption {
            option: "slurm_program",
            reason: format!("{}: the program's path must be UTF-8", program.display()),
        })?;
        Ok(SlurmJobs {
            plan: plan_path(folder)?,
            program: program.to_owned(),
            throttle,
            options,
        })
    }

    /// Writes `PLAN/submit.sh` (under a temporary name, renamed into place) for the plan's
    /// `tasks` tasks and makes `PLAN/logs/`, which Slurm needs before a job can write its log
    /// there.
    pub fn write_submit_script(&self, tasks: u64) -> Result<PathBuf> {
        let folder = PathBuf::from(&self.plan);
        let script = self.script(tasks)?;
        let logs = folder.join(LOGS);
        std::fs::create_dir_all(&logs).map_err(Error::io(&logs))?;
        let path = folder.join(SUBMIT_SCRIPT);
        let mut staged = tempfile::Builder::new()
            .prefix(&format!(".{SUBMIT_SCRIPT}."))
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .tempfile_in(&folder)
            .map_err(Error::io(&folder))?;
        staged.write_all(script.as_bytes()).map_err(Error::io(&path))?;
        staged.persist(&path).map_err(|e| Error::io(&path)(e.error))?;
        Ok(path)
    }

    fn script(&self, tasks: u64) -> Result<String> {
        let plan = self.plan.as_str();
        let logs = format!("{}/{LOGS}", plan.replace('%', "%%"));
        let array = self.sbatch_words(
            [
                "--job-name=stream-pack-encode".to_owned(),
                format!("--array=0-{}%{}", tasks.saturating_sub(1), self.throttle),
                "--requeue".to_owned(),
                format!("--output={logs}/encode-%A_%a.log"),
            ],
            "encode-chunk",
        )?;
        let assemble = self.sbatch_words(
            [
                "--job-name=stream-pack-assemble".to_owned(),
                "--kill-on-invalid-dep=yes".to_owned(),
                format!("--output={logs}/assemble-%j.log"),
            ],
            "assemble",
        )?;
        let plan_file = Path::new(plan).join(PLAN_FILE);
        let plan_bytes = std::fs::read(&plan_file).map_err(Error::io(&plan_file))?;
        let check = format!("{}  {plan}/{PLAN_FILE}", checksum_of(&plan_bytes));
        let script = Script {
            tasks,
            throttle: self.throttle,
            plan_check: shlex::try_quote(&check).map_err(|_| self.nul())?.into_owned(),
            array,
            assemble,
        };
        Ok(script.text())
    }

    /// A job's sbatch words, each quoted for bash, one per line: `ours`, the user's options
    /// (which may override ours, as sbatch takes the last), the working folder, and the `--wrap`
    /// running `command` on the plan, quoted once more for the `sh` that sbatch makes of it.
    fn sbatch_words<const N: usize>(&self, ours: [String; N], command: &str) -> Result<String> {
        let plan = &self.plan;
        let run = shlex::try_join(["exec", &self.program, command, plan]).map_err(|_| self.nul())?;
        let last = [format!("--chdir={plan}"), format!("--wrap={run}")];
        let quoted = ours
            .iter()
            .chain(&self.options)
            .chain(&last)
            .map(|word| shlex::try_quote(word).map(|q| format!("    {q}")))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| self.nul())?;
        Ok(quoted.join(" \\\n"))
    }

    fn nul(&self) -> Error {
        Error::InvalidOption {
            option: "slurm_option",
            reason: "holds a NUL byte, which no shell word can".into(),
        }
    }
}

/// The script's parts, each quoted where it is made.
struct Script {
    tasks: u64,
    throttle: u32,
    /// `SHA256  PLAN/plan.json`, for `sha256sum --check`.
    plan_check: String,
    array: String,
    assemble: String,
}

impl Script {
    fn text(&self) -> String {
        let Script {
            tasks,
            throttle,
            plan_check,
            array,
            assemble,
        } = self;
        format!(
            r#"#!/usr/bin/env bash
# Written by `stream-pack plan --emit slurm`. Run with bash where sbatch reaches the cluster:
# submits the plan's {tasks} tasks as a Slurm job array, at most {throttle} running at once, each
# running encode-chunk (a task requeued after a node failure runs again: a rerun is harmless),
# then the assemble job, which starts once every task has succeeded and is cancelled if one
# fails. Prints both job ids. Logs: logs/ beside this script.
set -euo pipefail

# A plan made again since (plan --force) may have other tasks: it needs its own script.
if ! echo {plan_check} | sha256sum --check --status; then
    echo "submit.sh: plan.json is not the plan this script was written for: plan again with --emit slurm" >&2
    exit 1
fi

# sbatch's job id (--parsable prints `id` or `id;cluster`), or a failure.
submit() {{
    local printed
    printed=$(sbatch --parsable "$@") || return 1
    printed=${{printed%%;*}}
    if [[ ! $printed =~ ^[0-9]+$ ]]; then
        echo "submit.sh: sbatch printed no job id: $printed" >&2
        return 1
    fi
    echo "$printed"
}}

array=$(submit \
{array}
)
if ! assemble=$(submit --dependency=afterok:"$array" \
{assemble}
); then
    scancel "$array"
    echo "submit.sh: the assemble job was not submitted: array job $array cancelled" >&2
    exit 1
fi
echo "encode-chunk array job: $array"
echo "assemble job: $assemble"
"#
        )
    }
}

/// `folder` made absolute, or why sbatch cannot be given it.
fn plan_path(folder: &Path) -> Result<String> {
    let absolute = std::path::absolute(folder).map_err(Error::io(folder))?;
    let refuse = |reason: &str| {
        Err(Error::InvalidOption {
            option: "plan",
            reason: format!(
                "{}: --emit slurm needs a plan folder whose path {reason}",
                absolute.display()
            ),
        })
    };
    match absolute.to_str() {
        None => refuse("is UTF-8"),
        // A backslash anywhere in a log's path turns off sbatch's %A, %a and %j in it.
        Some(path) if path.contains('\\') => refuse("holds no backslash"),
        Some(path) => Ok(path.to_owned()),
    }
}

/// Refuses an sbatch option that is not one long option word, or that the script sets itself.
fn check_sbatch_option(option: &str) -> Result<()> {
    let refuse = |reason: &str| {
        Err(Error::InvalidOption {
            option: "slurm_option",
            reason: format!("{option:?}: {reason}"),
        })
    };
    let Some(long) = option.strip_prefix("--") else {
        return refuse("give sbatch's long form, --name or --name=value, as one word");
    };
    let name = long.split_once('=').map_or(long, |(name, _)| name);
    let well_formed = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !well_formed {
        return refuse("not an sbatch option name (--name or --name=value)");
    }
    if let Some(set) = SET_BY_THE_SCRIPT.iter().find(|set| set.starts_with(name)) {
        return refuse(&format!("--{set} is set by submit.sh itself"));
    }
    if option.contains('\0') {
        return refuse("holds a NUL byte");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_the_script_sets_or_that_are_not_one_long_option_are_refused() {
        for bad in [
            "-p long",
            "-plong",
            "--array=0-3",
            "--arr=1",
            "--dep=afterok:1",
            "--o=x",
            "--wait",
            "--w",
            "--Partition=x",
            "--=x",
            "partition",
        ] {
            assert!(check_sbatch_option(bad).is_err(), "{bad}");
        }
        for good in [
            "--partition=long",
            "--time=01:00:00",
            "--cpus-per-task=8",
            "--exclusive",
            "--wait-all-nodes=1",
            "--job-name=it's $HOME",
        ] {
            assert!(check_sbatch_option(good).is_ok(), "{good}");
        }
    }
}
