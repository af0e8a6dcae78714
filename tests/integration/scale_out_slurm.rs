//! Issue 17 on a real Slurm (util/slurm.rs: munged, slurmctld and slurmd started by the test):
//! `plan --emit slurm` writes PLAN/submit.sh, bash runs it, sbatch queues the encode-chunk array
//! and the assemble job, and the package is the one-process package by the local scale-out
//! tests' judges. A task requeued mid-encode runs again and the package is still whole; a task
//! killed mid-encode fails, its assemble job is cancelled, and a rerun by hand completes the
//! package; a chunk deleted before assemble fails the assemble job with one line naming it. The
//! plan folder and the program are at paths holding a space, quotes, `$`, backticks and `%`, and
//! an sbatch option holds them too: each must reach Slurm as itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::scale_out::{Runs, assert_same_dash_package, ladder_options, one_process_run, plan, segments};
use crate::util::cli::{assert_failure, run};
use crate::util::slurm::Slurm;

/// A name no shell may read as anything but itself.
const AWKWARD: &str = "it's \"a\" $HOME `x` 100%";

const JOB_LIMIT: Duration = Duration::from_secs(300);

/// `--emit slurm` with the program at `program`, a throttle of 2 and an awkward job name.
fn emit_options(program: &Path) -> Vec<String> {
    vec![
        "--emit".into(),
        "slurm".into(),
        "--slurm-throttle".into(),
        "2".into(),
        "--slurm-program".into(),
        program.display().to_string(),
        format!("--slurm-option=--job-name={AWKWARD}"),
    ]
}

/// The stream-pack under test, linked from a folder with an awkward name.
fn awkward_program(dir: &Path) -> PathBuf {
    let folder = dir.join(format!("bin {AWKWARD}"));
    std::fs::create_dir(&folder).expect("the program's folder");
    let program = folder.join("stream-pack");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_stream-pack"), &program).expect("link the program");
    program
}

/// `bash PLAN/submit.sh` on the cluster: the array's and the assemble job's ids it prints.
fn submit(slurm: &Slurm, plan_dir: &Path) -> (String, String) {
    let output = slurm
        .command("bash")
        .arg(plan_dir.join("submit.sh"))
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "submit.sh: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let id = |label: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no {label:?} line with a job id in {stdout:?}"))
            .to_owned()
    };
    (id("encode-chunk array job: "), id("assemble job: "))
}

/// `scontrol -o show job ID`, one line per task.
fn show_job(slurm: &Slurm, id: &str) -> String {
    let output = slurm
        .command("scontrol")
        .args(["-o", "show", "job", id])
        .output()
        .expect("run scontrol");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn scontrol(slurm: &Slurm, args: &[&str]) {
    let output = slurm.command("scontrol").args(args).output().expect("run scontrol");
    assert!(
        output.status.success(),
        "scontrol {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Whether task `index` is at work: its hidden staging folder `chunks/.I.tmp-*`, made before it
/// encodes and renamed to `chunks/I` once the chunk is whole, is there.
fn staging(plan_dir: &Path, index: u64) -> bool {
    let prefix = format!(".{index}.tmp-");
    std::fs::read_dir(plan_dir.join("chunks")).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
    })
}

/// The process of this cluster's array task `array`_`index` running encode-chunk, found by the
/// variables Slurm gave it and the `SLURM_CONF` the job was submitted with (job ids restart at 1
/// in every test's cluster).
fn task_process(slurm: &Slurm, array: &str, index: u64) -> Option<u32> {
    let submitting = slurm.command("sbatch");
    let (_, conf) = submitting.get_envs().find(|(name, _)| *name == "SLURM_CONF")?;
    let wanted = [
        format!("SLURM_CONF={}", conf?.to_str()?),
        format!("SLURM_ARRAY_JOB_ID={array}"),
        format!("SLURM_ARRAY_TASK_ID={index}"),
    ];
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let environ = std::fs::read(entry.path().join("environ")).ok()?;
        let has = |bytes: &[u8], word: &str| bytes.split(|b| *b == 0).any(|w| w == word.as_bytes());
        let ours = has(&cmdline, "encode-chunk") && wanted.iter().all(|w| has(&environ, w));
        ours.then_some(pid)
    })
}

/// Sends `signal` to process `pid`.
fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(
        sent.success(),
        "kill {signal} {pid}: task 1's process ended before it was caught"
    );
}

/// Catches task 1 mid-encode: its process stopped while its chunk is staged and not yet in
/// place, checked while stopped (a chunk here takes about 0.2 s from staged to in place). Its
/// pid.
fn stop_task_1_mid_encode(slurm: &Slurm, plan_dir: &Path, array: &str) -> u32 {
    let deadline = Instant::now() + JOB_LIMIT;
    let pid = loop {
        if let Some(pid) = task_process(slurm, array, 1) {
            break pid;
        }
        assert!(Instant::now() < deadline, "task 1 never started; {}", slurm.logs());
        std::thread::sleep(Duration::from_millis(5));
    };
    loop {
        signal(pid, "-STOP");
        let complete = plan_dir.join("chunks/1").exists();
        assert!(!complete, "task 1 finished before it was caught mid-encode");
        if staging(plan_dir, 1) {
            return pid;
        }
        signal(pid, "-CONT");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Asks Slurm to requeue task 1, caught mid-encode: Slurm kills the run and starts the task
/// again.
fn requeue_task_1_mid_encode(slurm: &Slurm, plan_dir: &Path, array: &str) {
    stop_task_1_mid_encode(slurm, plan_dir, array);
    let task = format!("{array}_1");
    scontrol(slurm, &["requeue", &task]);
    // Once the killed run has ended, Slurm holds a requeued job back 2 minutes (its BeginTime),
    // which is not what is tested: the test moves it to now.
    let deadline = Instant::now() + JOB_LIMIT;
    while slurm.job_states(&task).is_some_and(|states| states != ["PENDING"]) {
        assert!(
            Instant::now() < deadline,
            "task 1 never pending again; {}",
            slurm.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    scontrol(slurm, &["update", &format!("JobId={task}"), "StartTime=now"]);
}

/// A plan of the local scale-out tests' dash ladder with `--emit slurm`, and the options a
/// one-process run is given.
fn dash_plan(dir: &Path, program: &Path) -> (PathBuf, serde_json::Value, Vec<String>) {
    let plan_dir = dir.join(format!("plan {AWKWARD}"));
    let options = ladder_options(&[]);
    let emitting = [options.clone(), emit_options(program)].concat();
    let planned = plan("dash", &plan_dir, &dir.join("chunked"), &emitting);
    assert_eq!(planned["tasks"], 5, "4 chunks of 2 s and the audio");
    (plan_dir, planned, options)
}

/// The chunked package in `dir/chunked` judged against a one-process run of `options`.
fn assert_same_as_one_process_run(dir: tempfile::TempDir, planned: serde_json::Value, options: Vec<String>) {
    let single = dir.path().join("single");
    one_process_run("dash", &single, options);
    let runs = Runs {
        chunked: dir.path().join("chunked"),
        single,
        plan: planned,
        _dir: dir,
    };
    assert_same_dash_package(&runs);
}

#[test]
fn a_slurm_array_requeued_mid_encode_makes_the_one_process_package() {
    let slurm = Slurm::start();
    let dir = tempfile::tempdir().expect("temporary folder");
    let program = awkward_program(dir.path());
    let (plan_dir, planned, options) = dash_plan(dir.path(), &program);

    let (array, assemble) = submit(&slurm, &plan_dir);
    let shown = show_job(&slurm, &array);
    assert!(shown.contains(&format!("JobName={AWKWARD} ")), "{shown}");
    assert!(shown.contains("ArrayTaskThrottle=2"), "{shown}");
    requeue_task_1_mid_encode(&slurm, &plan_dir, &array);

    let assembled = slurm.wait_for_job(&assemble, JOB_LIMIT);
    assert_eq!(assembled, ["COMPLETED"], "{}", slurm.logs());
    let tasks = slurm.wait_for_job(&array, JOB_LIMIT);
    assert_eq!(tasks, ["COMPLETED"; 5], "every task succeeded");
    let task_1 = show_job(&slurm, &format!("{array}_1"));
    assert!(task_1.contains("Restarts=1"), "task 1 ran again: {task_1}");
    for index in 0..5 {
        let log = plan_dir.join(format!("logs/encode-{array}_{index}.log"));
        assert!(log.exists(), "{}: the task's log", log.display());
    }
    assert_same_as_one_process_run(dir, planned, options);
}

/// `kill -9` is a failure to Slurm, not a requeue: the task fails, the assemble job is
/// cancelled, and rerunning the task and assemble by hand completes the package.
#[test]
fn a_slurm_task_killed_mid_encode_fails_and_a_rerun_completes_the_package() {
    let slurm = Slurm::start();
    let dir = tempfile::tempdir().expect("temporary folder");
    let program = awkward_program(dir.path());
    let (plan_dir, planned, options) = dash_plan(dir.path(), &program);

    let (array, assemble) = submit(&slurm, &plan_dir);
    let pid = stop_task_1_mid_encode(&slurm, &plan_dir, &array);
    signal(pid, "-KILL");
    let mut tasks = slurm.wait_for_job(&array, JOB_LIMIT);
    tasks.sort();
    assert_eq!(tasks, ["COMPLETED", "COMPLETED", "COMPLETED", "COMPLETED", "FAILED"]);
    let task_1 = slurm.job_states(&format!("{array}_1"));
    assert_eq!(task_1, Some(vec!["FAILED".to_owned()]), "task 1 failed, not requeued");
    assert_eq!(slurm.wait_for_job(&assemble, JOB_LIMIT), ["CANCELLED"]);
    assert!(!dir.path().join("chunked").exists(), "nothing assembled");

    let rerun = |args: &[&str]| {
        let output = run(args.iter().copied().chain([plan_dir.to_str().expect("UTF-8")]));
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    rerun(&["encode-chunk", "--index", "1"]);
    rerun(&["assemble"]);
    let hidden = std::fs::read_dir(plan_dir.join("chunks"))
        .expect("chunks")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(hidden, 0, "the killed run's leftovers removed by assemble");
    assert_same_as_one_process_run(dir, planned, options);
}

#[test]
fn a_chunk_deleted_before_assemble_fails_the_slurm_assemble_job_naming_it() {
    let slurm = Slurm::start();
    let dir = tempfile::tempdir().expect("temporary folder");
    let plan_dir = dir.path().join(format!("plan {AWKWARD}"));
    let out = dir.path().join("out");
    let options = [
        ["--reps", "144", "--segment-duration", "1", "--progress", "none"].as_slice(),
        &crate::util::cli::FAST,
        &["--emit", "slurm", "--slurm-throttle", "2"],
    ]
    .concat()
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    plan("hls", &plan_dir, &out, &options);

    let (array, assemble) = submit(&slurm, &plan_dir);
    // Held while it waits for the array, so the chunk can go before it runs.
    scontrol(&slurm, &["hold", &assemble]);
    assert_eq!(
        slurm.wait_for_job(&array, JOB_LIMIT),
        ["COMPLETED"; 5],
        "{}",
        slurm.logs()
    );
    assert_eq!(
        segments(&plan_dir.join("chunks/2/144p"), "ts").len(),
        2,
        "chunk 2 encoded"
    );
    std::fs::remove_dir_all(plan_dir.join("chunks/2")).expect("delete chunk 2");
    scontrol(&slurm, &["release", &assemble]);

    assert_eq!(slurm.wait_for_job(&assemble, JOB_LIMIT), ["FAILED"], "{}", slurm.logs());
    let log = std::fs::read_to_string(plan_dir.join(format!("logs/assemble-{assemble}.log"))).expect("the log");
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {log}");
    assert!(lines[0].contains("chunk 2") && lines[0].contains("missing"), "{log}");
    assert!(!out.exists(), "nothing published");
}

/// `plan hls SOURCE --plan PLAN -o DIR/out --emit slurm EXTRA`: the one line it fails with
/// (exit 2), and no plan written.
fn refused_plan(dir: &Path, plan_dir: &Path, extra: &[String]) -> String {
    let source = crate::scale_out::source().display().to_string();
    let args = ["plan", "hls", &source, "--plan"].map(String::from).into_iter().chain(
        [
            plan_dir.display().to_string(),
            "-o".into(),
            dir.join("out").display().to_string(),
            "--emit".into(),
            "slurm".into(),
        ]
        .into_iter()
        .chain(extra.iter().cloned()),
    );
    let line = assert_failure(&run(args), 2);
    assert!(!plan_dir.exists(), "no plan written");
    line
}

#[test]
fn sbatch_options_the_script_sets_or_that_are_not_one_long_option_are_refused() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let plan_dir = dir.path().join("plan");
    for (option, named) in [
        ("--array=0-3", "--array"),
        ("--dep=afterok:1", "--dependency"),
        ("--out=x", "--output"),
        ("-p long", "long form"),
    ] {
        let line = refused_plan(dir.path(), &plan_dir, &[format!("--slurm-option={option}")]);
        assert!(line.contains("--slurm-option") && line.contains(named), "{line}");
    }
    let line = refused_plan(dir.path(), &dir.path().join("plan\\x"), &[]);
    assert!(line.contains("--plan") && line.contains("backslash"), "{line}");
}

/// A plan made again without `--emit slurm` keeps the old script, which refuses to submit
/// what it was not written for.
#[test]
fn a_submit_script_refuses_a_plan_made_again_since() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let plan_dir = dir.path().join(format!("plan {AWKWARD}"));
    let out = dir.path().join("out");
    let options =
        |extra: &[&str]| -> Vec<String> { ["--reps", "144"].iter().chain(extra).map(|s| s.to_string()).collect() };
    let first = plan(
        "hls",
        &plan_dir,
        &out,
        &options(&["--segment-duration", "1", "--emit", "slurm"]),
    );
    let again = plan(
        "hls",
        &plan_dir,
        &out,
        &options(&["--segment-duration", "4", "--force"]),
    );
    assert_ne!(first["tasks"], again["tasks"], "a plan of other tasks");
    let submitted = std::process::Command::new("bash")
        .arg(plan_dir.join("submit.sh"))
        .output()
        .expect("run bash");
    assert_eq!(submitted.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&submitted.stderr);
    assert!(stderr.contains("not the plan this script was written for"), "{stderr}");
    assert!(submitted.stdout.is_empty(), "no job submitted");
}
