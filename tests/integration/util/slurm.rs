//! A real Slurm cluster of one node on 127.0.0.1 (Debian's slurm-wlm and munge): munged,
//! slurmctld and slurmd in the foreground with their configuration, keys, state and logs in a
//! folder of the test's own, on free ports. The `sbatch`, `scontrol` and `squeue` of the tests
//! reach it through `SLURM_CONF`.

use super::daemon::{Daemon, free_port};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

pub struct Slurm {
    dir: TempDir,
    // Dropped in this order: the daemons before the munge they authenticate with.
    _slurmd: Daemon,
    _slurmctld: Daemon,
    _munged: Daemon,
}

impl Slurm {
    /// Starts the cluster: a node `localhost` with 2 CPUs in the default partition `test`.
    pub fn start() -> Slurm {
        let dir = tempfile::tempdir().expect("a folder for Slurm");
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir(dir.path().join(sub)).expect("Slurm's folders");
        }
        let munged = start_munge(dir.path());
        let (controller, node) = (free_port(), free_port());
        let conf = dir.path().join("slurm.conf");
        std::fs::write(&conf, config(dir.path(), controller, node)).expect("write slurm.conf");
        let daemon = |name: &str, args: &[&str], port: u16| {
            let mut command = Command::new(name);
            command.args(args).arg("-f").arg(&conf).env("SLURM_CONF", &conf);
            Daemon::start(name, &mut command, &dir.path().join(format!("log/{name}.out")), port)
        };
        let slurmctld = daemon("slurmctld", &["-D", "-i"], controller);
        let slurmd = daemon("slurmd", &["-D", "-N", "localhost"], node);
        let slurm = Slurm {
            dir,
            _slurmd: slurmd,
            _slurmctld: slurmctld,
            _munged: munged,
        };
        slurm.wait_for_idle_node();
        slurm
    }

    /// A command (`sbatch`, `scontrol`, or a script calling them) that talks to this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", self.dir.path().join("slurm.conf"));
        command
    }

    /// `scontrol show job ID`'s `JobState` of every task (one for a plain job), or `None` once
    /// Slurm has forgotten the job.
    pub fn job_states(&self, id: &str) -> Option<Vec<String>> {
        let output = self.command("scontrol").args(["-o", "show", "job", id]).output().ok()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let states: Vec<String> = text
            .lines()
            .filter_map(|line| line.split_whitespace().find_map(|f| f.strip_prefix("JobState=")))
            .map(str::to_owned)
            .collect();
        (output.status.success() && !states.is_empty()).then_some(states)
    }

    /// Waits until every task of job `id` has ended (at most `limit`); their states.
    pub fn wait_for_job(&self, id: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let states = self.job_states(id).unwrap_or_else(|| panic!("Slurm forgot job {id}"));
            let ended = |s: &String| !matches!(s.as_str(), "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING");
            if states.iter().all(ended) {
                return states;
            }
            assert!(Instant::now() < deadline, "job {id} still {states:?}; {}", self.logs());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The daemons' logs, for a failing test's message.
    pub fn logs(&self) -> String {
        ["slurmctld.log", "slurmd.log"]
            .map(|name| {
                let text = std::fs::read_to_string(self.dir.path().join("log").join(name)).unwrap_or_default();
                format!("{name}:\n{text}")
            })
            .join("\n")
    }

    fn wait_for_idle_node(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let output = self
                .command("sinfo")
                .args(["-h", "-o", "%T"])
                .output()
                .expect("run sinfo");
            if String::from_utf8_lossy(&output.stdout).trim() == "idle" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Slurm node never became idle; {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// munged in the foreground with a fresh key, its socket in `dir/munge`.
fn start_munge(dir: &Path) -> Daemon {
    let munge = dir.join("munge");
    let key = munge.join("munge.key");
    let mut bytes = [0u8; 1024];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes))
        .expect("random bytes for the munge key");
    std::fs::write(&key, bytes).expect("write the munge key");
    set_mode(&key, 0o400);
    // munged requires its socket's folders to be searchable by all (its clients are anyone).
    set_mode(dir, 0o755);
    set_mode(&munge, 0o755);
    let mut command = Command::new("munged");
    command.arg("-F").arg("--key-file").arg(&key);
    for (option, file) in [
        ("--socket", "sock"),
        ("--pid-file", "pid"),
        ("--log-file", "log"),
        ("--seed-file", "seed"),
    ] {
        command.arg(option).arg(munge.join(file));
    }
    let socket = munge.join("sock");
    Daemon::start_until("munged", &mut command, &dir.join("log/munged.out"), || socket.exists())
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("set a mode");
}

/// One node, `localhost`, of 2 CPUs; root runs everything; no accounting, no cgroups.
fn config(dir: &Path, controller: u16, node: u16) -> String {
    let root = dir.display();
    format!(
        "ClusterName=streampack\n\
         SlurmctldHost=localhost(127.0.0.1)\n\
         SlurmctldPort={controller}\n\
         SlurmdPort={node}\n\
         SlurmUser=root\n\
         SlurmdUser=root\n\
         AuthType=auth/munge\n\
         AuthInfo=socket={root}/munge/sock\n\
         CredType=cred/munge\n\
         StateSaveLocation={root}/state\n\
         SlurmdSpoolDir={root}/spool\n\
         SlurmctldPidFile={root}/slurmctld.pid\n\
         SlurmdPidFile={root}/slurmd.pid\n\
         SlurmctldLogFile={root}/log/slurmctld.log\n\
         SlurmdLogFile={root}/log/slurmd.log\n\
         ProctrackType=proctrack/linuxproc\n\
         TaskPlugin=task/none\n\
         SchedulerType=sched/backfill\n\
         SelectType=select/cons_tres\n\
         SelectTypeParameters=CR_Core\n\
         ReturnToService=2\n\
         MpiDefault=none\n\
         JobCompType=jobcomp/none\n\
         AccountingStorageType=accounting_storage/none\n\
         SwitchType=switch/none\n\
         NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=2000 State=UNKNOWN\n\
         PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
    )
}
