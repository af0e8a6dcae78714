//! Issue 20, items 4 and 6: every open and read of an input is bounded in time, in requests and
//! by Ctrl-C, nothing is written beside `-o` before the input is open, and an input with a
//! missing or truncated piece fails naming it instead of making a package with a hole.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::util::http::{self, Route};
use crate::util::{cli, file_names, media};

const BIN: &str = env!("CARGO_BIN_EXE_stream-pack");

/// A server that accepts connections and never says a word, for as long as the tests run; it
/// counts the connections.
fn silent_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for connection in listener.incoming() {
            held.push(connection);
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (address, accepted)
}

fn start(args: &[&OsStr]) -> Child {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stream-pack")
}

/// Waits for the run to end; a run still going after `within` is killed and fails the test.
fn finish(mut child: Child, within: Duration, what: &str) -> Output {
    let started = Instant::now();
    while child.try_wait().expect("wait for stream-pack").is_none() {
        if started.elapsed() > within {
            child.kill().expect("kill stream-pack");
            child.wait().expect("reap stream-pack");
            panic!("{what}: still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect stream-pack's output")
}

/// The command line of `command` reading `input` and writing `out` (none for `probe`).
fn command_line<'a>(command: &'a str, input: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a OsStr> {
    let mut args: Vec<&OsStr> = vec![OsStr::new(command), OsStr::new(input)];
    if command != "probe" {
        args.extend([OsStr::new("-o"), out.as_os_str()]);
    }
    if command == "hls" {
        args.extend(["--progress", "none"].map(OsStr::new));
    }
    args.extend(extra.iter().map(|arg| OsStr::new(*arg)));
    args
}

/// Runs `command` on `input`, writing into a fresh folder, and asserts it fails with exit 3 and
/// one line within `within`, leaving that folder empty. Returns the line.
fn assert_input_error(command: &str, input: &str, extra: &[&str], within: Duration) -> String {
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join(if command == "remux" { "out.mp4" } else { "out" });
    let started = Instant::now();
    let output = finish(
        start(&command_line(command, input, &out, extra)),
        within,
        &format!("{command} {input}"),
    );
    let line = cli::assert_failure(&output, 3);
    assert!(started.elapsed() < within, "{command}: took {:?}", started.elapsed());
    assert!(
        file_names(parent.path()).is_empty(),
        "{command} left {:?} beside -o",
        file_names(parent.path())
    );
    line
}

#[test]
fn item04_a_server_that_never_answers_fails_each_command_within_the_open_timeout() {
    let url = format!("http://{}/master.m3u8", silent_server().0);
    for command in ["hls", "probe", "remux"] {
        let line = assert_input_error(command, &url, &["--open-timeout", "1s"], Duration::from_secs(8));
        assert_eq!(line, format!("error: {url}: sent nothing within 1 s"), "{command}");
    }
}

#[test]
fn item04_a_master_playlist_that_names_itself_fails_after_a_bounded_number_of_requests() {
    let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nmaster.m3u8\n";
    let server = http::serve(HashMap::from([("/master.m3u8".to_owned(), Route::File(master.into()))]));
    let url = format!("{}/master.m3u8", server.base);
    for command in ["probe", "remux", "hls"] {
        let before = server.hits("/master.m3u8");
        let line = assert_input_error(command, &url, &[], Duration::from_secs(20));
        assert!(line.contains(&url) && line.contains("name itself"), "{command}: {line}");
        let requests = server.hits("/master.m3u8") - before;
        assert!(requests <= 20, "{command}: {requests} requests for the playlist");
    }
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("master.m3u8");
    std::fs::write(&local, master).unwrap();
    let line = assert_input_error("probe", &local.display().to_string(), &[], Duration::from_secs(20));
    assert!(line.contains("name itself"), "{line}");
}

#[test]
fn item04_master_playlists_nested_without_end_fail_after_a_bounded_number_of_requests() {
    let levels = 2000;
    let routes = (0..levels)
        .map(|n| {
            let master = format!("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nm{}.m3u8\n", n + 1);
            (format!("/m{n}.m3u8"), Route::File(master.into_bytes()))
        })
        .collect();
    let server = http::serve(routes);
    let line = assert_input_error(
        "probe",
        &format!("{}/m0.m3u8", server.base),
        &[],
        Duration::from_secs(60),
    );
    assert!(line.contains("nest without end"), "{line}");
    let requests: usize = (0..levels).map(|n| server.hits(&format!("/m{n}.m3u8"))).sum();
    assert!(requests <= 600, "{requests} requests");
}

/// Sends `signal` to a run blocked opening a silent server's URL (once it has connected) and
/// asserts it ends promptly with exit 130, leaving nothing beside `-o`.
fn assert_signal_cancels(command: &str, signal: libc::c_int) {
    let (address, accepted) = silent_server();
    let url = format!("http://{address}/master.m3u8");
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join(if command == "remux" { "out.mp4" } else { "out" });
    let child = start(&command_line(command, &url, &out, &["--open-timeout", "60s"]));
    let started = Instant::now();
    while accepted.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "{command} never connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: sends a signal to the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal the run");
    let signalled = Instant::now();
    let output = finish(
        child,
        Duration::from_secs(5),
        &format!("{command} after signal {signal}"),
    );
    let line = cli::assert_failure(&output, 130);
    assert_eq!(line, "error: cancelled");
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(
        file_names(parent.path()).is_empty(),
        "{command} left {:?} beside -o",
        file_names(parent.path())
    );
}

#[test]
fn item04_sigint_stops_a_stalled_open_with_exit_130_and_nothing_left() {
    for command in ["hls", "probe", "remux"] {
        assert_signal_cancels(command, libc::SIGINT);
    }
}

#[test]
fn item04_sigterm_stops_a_stalled_open_with_exit_130_and_nothing_left() {
    for command in ["hls", "remux"] {
        assert_signal_cancels(command, libc::SIGTERM);
    }
}

#[test]
fn item06_remux_of_an_mp4_cut_in_half_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(media("main")).unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let out = dir.path().join("out.mp4");
    let output = cli::run([OsStr::new("remux"), cut.as_os_str(), OsStr::new("-o"), out.as_os_str()]);
    let line = cli::assert_failure(&output, 3);
    assert!(
        line.contains(&*cut.to_string_lossy()) && line.contains("truncated"),
        "{line}"
    );
    assert_eq!(file_names(dir.path()), ["cut.mp4".to_owned()].into());
}

/// `main` as an HLS presentation of four 2 s TS segments without its second, in `dir`.
fn playlist_without_a_middle_segment(dir: &Path) -> (PathBuf, PathBuf) {
    let playlist = crate::remux::hls(dir);
    let missing = dir.join("index1.ts");
    assert!(dir.join("index2.ts").exists(), "a segment after the missing one");
    std::fs::remove_file(&missing).unwrap();
    (playlist, missing)
}

#[test]
fn item06_a_playlist_without_a_middle_segment_fails_naming_it() {
    let source = tempfile::tempdir().unwrap();
    let (playlist, missing) = playlist_without_a_middle_segment(source.path());
    let playlist = playlist.display().to_string();
    let runs: [(&str, &[&str]); 4] = [
        ("remux", &[]),
        ("hls", &["--copy"]),
        ("hls", &cli::FAST),
        ("convert", &["--to", "dash", "--progress", "none"]),
    ];
    for (command, extra) in runs {
        let line = assert_input_error(command, &playlist, extra, Duration::from_secs(120));
        assert!(
            line.contains(&playlist) && line.contains(&*missing.to_string_lossy()),
            "{command} {extra:?}: {line}"
        );
    }
    let server = http::serve_dir(source.path());
    let url = format!("{}/index.m3u8", server.base);
    let line = assert_input_error("remux", &url, &[], Duration::from_secs(60));
    assert!(line.contains(&format!("{}/index1.ts", server.base)), "{line}");
}

#[test]
fn item06_a_playlist_with_a_segment_cut_short_or_empty_fails_saying_where() {
    let dir = tempfile::tempdir().unwrap();
    let playlist = crate::remux::hls(dir.path());
    let segment = dir.path().join("index1.ts");
    let whole = std::fs::read(&segment).unwrap();
    let playlist = playlist.display().to_string();
    for (cut, runs) in [(whole.len() / 2, ["remux", "hls"]), (0, ["remux", "convert"])] {
        std::fs::write(&segment, &whole[..cut]).unwrap();
        for command in runs {
            let extra: &[&str] = match command {
                "hls" => &["--copy"],
                "convert" => &["--to", "dash"],
                _ => &[],
            };
            let line = assert_input_error(command, &playlist, extra, Duration::from_secs(120));
            assert!(
                line.contains(&playlist) && line.contains("cut short or empty"),
                "{command} with {cut} bytes of index1.ts: {line}"
            );
        }
    }
}
