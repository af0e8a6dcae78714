//! README's exit-code table, one test per code: a real run that must end with that code, one
//! `error:` line on stderr naming what is at fault, and nothing left beside `-o`.

use crate::util::{cli, file_names, media};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stream-pack");

/// Runs `stream-pack hls INPUT -o FRESH/out ARGS`, asserts it failed with `code`, left FRESH
/// empty and named every one of `named` in its `error:` line.
fn fails_with(code: i32, input: &Path, args: &[&str], named: &[&str]) {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let output = cli::hls(input, &parent.path().join("out"), args);
    let line = cli::assert_failure(&output, code);
    for name in named {
        assert!(line.contains(name), "the error does not name {name}: {line}");
    }
    let left = file_names(parent.path());
    assert!(left.is_empty(), "a failed run left {left:?} beside -o");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// 1, an encoding failure: libopus refuses a bitrate above what it can make (at most 256 kb/s a
/// channel), and the library does not check audio bitrates before opening the encoder.
#[test]
fn exit_1_an_encoder_that_refuses_its_settings() {
    let args = [
        "--reps",
        "90",
        "--format",
        "fmp4",
        "--audio-codec",
        "opus",
        "--audio-bitrate",
        "1M",
    ];
    fails_with(1, &media("tiny"), &args, &["audio", "libopus"]);
}

#[test]
fn exit_2_an_option_the_library_cannot_use() {
    fails_with(
        2,
        &media("tiny"),
        &["--encoder-preset", "fastest"],
        &["preset", "fastest"],
    );
}

#[test]
fn exit_3_an_input_that_does_not_exist() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let missing = dir.path().join("none.mp4");
    fails_with(3, &missing, &[], &[path_str(&missing), "no such file"]);
}

/// 4 covers the key files as well as the output: one that is missing, one that is a folder, and
/// a key-info file naming a key file that is missing.
#[test]
fn exit_4_a_key_file_that_cannot_be_read() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let missing = dir.path().join("none.key");
    let info = dir.path().join("key.info");
    std::fs::write(&info, format!("https://k.example/k.key\n{}\n", missing.display())).expect("write the key info");
    let tiny = media("tiny");
    let encrypt = |flag: &'static str, path: &Path| -> Vec<String> {
        ["--reps", "90", "--encrypt", flag, path_str(path)]
            .map(String::from)
            .to_vec()
    };
    for (args, named) in [
        (encrypt("--key-file", &missing), &missing),
        (encrypt("--key-file", dir.path()), &dir.path().to_owned()),
        (encrypt("--key-info", &info), &missing),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_with(4, &tiny, &args, &["key file", path_str(named)]);
    }
}

#[test]
fn exit_5_a_bad_ladder_file() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let ladder = dir.path().join("ladder.toml");
    std::fs::write(&ladder, "[[rung]]\nheight = 90\nbitrate = \"100k\"\n").expect("write the ladder");
    fails_with(
        5,
        &media("tiny"),
        &["--ladder", path_str(&ladder)],
        &[path_str(&ladder), "bitrate"],
    );
}

/// 130: Ctrl-C while the job waits for a server that accepted the connection and never answers.
#[test]
fn exit_130_sigint_cancels_a_running_job() {
    let server = TcpListener::bind("127.0.0.1:0").expect("listen on a port");
    server.set_nonblocking(true).expect("a non-blocking listener");
    let url = format!("http://{}/master.m3u8", server.local_addr().expect("its address"));
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let out = parent.path().join("out");
    let mut child = Command::new(BIN)
        .args(["hls", &url, "-o", path_str(&out), "--progress", "none"])
        .args(["--reps", "90", "--open-timeout", "60s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stream-pack");
    let started = Instant::now();
    // Held open, so the run waits for an answer until it is cancelled.
    let _connection = loop {
        match server.accept() {
            Ok((connection, _)) => break connection,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "stream-pack never connected"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    let pid = libc::pid_t::try_from(child.id()).expect("a pid");
    // SAFETY: sends a signal to the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "signal the run");
    let signalled = Instant::now();
    while child.try_wait().expect("wait for stream-pack").is_none() {
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "SIGINT did not end the run"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let output: Output = child.wait_with_output().expect("collect its output");
    assert_eq!(cli::assert_failure(&output, 130), "error: cancelled");
    let left = file_names(parent.path());
    assert!(left.is_empty(), "a cancelled run left {left:?} beside -o");
}
