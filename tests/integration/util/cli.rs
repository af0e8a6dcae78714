//! Running the `stream-pack` binary and judging its exit status and stderr.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_stream-pack");

/// The x264 preset of tests that are not about encoding quality (the default is medium).
pub const FAST: [&str; 2] = ["--encoder-preset", "veryfast"];

/// A run longer than this is a hang: the binary is killed and the test fails.
const TIMEOUT: Duration = Duration::from_secs(240);

/// Runs the binary with `args`, no stdin, and `RUST_BACKTRACE` unset (so a panic shows its
/// "RUST_BACKTRACE" hint on stderr and is caught by [`assert_failure`]).
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_with_env(args, &[])
}

/// [`run`] with these variables added to the environment.
pub fn run_with_env<I, S>(args: I, env: &[(&str, String)]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut child = Command::new(BIN)
        .args(args)
        .envs(env.iter().map(|(name, value)| (name, value)))
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stream-pack");
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for stream-pack") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().expect("kill stream-pack");
            child.wait().expect("reap stream-pack");
            panic!("stream-pack ran longer than {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).expect("read a pipe of stream-pack");
        bytes
    })
}

/// `stream-pack hls INPUT -o OUT --progress none EXTRA...`
pub fn hls(input: &Path, out: &Path, extra: &[&str]) -> Output {
    package("hls", input, out, extra)
}

/// Runs `stream-pack COMMAND SOURCE -o TMP/out ARGS` (`hls` or `dash`) and asserts it
/// succeeded. The TempDir keeps the package alive.
pub fn package_in_temp(command: &str, source: &Path, args: &[&str]) -> (TempDir, PathBuf) {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let out = parent.path().join("out");
    assert_success(&package(command, source, &out, args));
    (parent, out)
}

/// `stream-pack COMMAND INPUT -o OUT --progress none EXTRA...`
pub fn package(command: &str, input: &Path, out: &Path, extra: &[&str]) -> Output {
    package_showing("none", command, input, out, extra)
}

/// `stream-pack COMMAND INPUT -o OUT --progress PROGRESS EXTRA...`
pub fn package_showing(progress: &str, command: &str, input: &Path, out: &Path, extra: &[&str]) -> Output {
    let fixed = [
        OsStr::new(command),
        input.as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--progress"),
        OsStr::new(progress),
    ];
    run(fixed.into_iter().chain(extra.iter().map(OsStr::new)))
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "stream-pack failed with {}; stderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Asserts the run exited with `code` and reported it the way every failure must: stderr
/// is one line, beginning with `error:` (no panic, no usage text). Returns that line.
pub fn assert_failure(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "wrong exit status; stderr:\n{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "stream-pack panicked:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("error:"),
        "stderr must be one line beginning with `error:`:\n{stderr}"
    );
    lines[0].to_string()
}

/// Asserts one line of the run's stdout or stderr contains every one of `words` (in any
/// case): the run told the user `what`.
pub fn assert_says(output: &Output, words: &[&str], what: &str) {
    let [stdout, stderr] = [&output.stdout, &output.stderr].map(|text| String::from_utf8_lossy(text).to_lowercase());
    let said = stdout
        .lines()
        .chain(stderr.lines())
        .any(|line| words.iter().all(|word| line.contains(&word.to_lowercase())));
    assert!(
        said,
        "no line says {what} ({words:?}); stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
