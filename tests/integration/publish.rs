//! The publisher against real servers started here: nginx's WebDAV module (and Garage, S3).
//! What was published is read back from the server's own document root or over S3.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use stream_pack::Error;
use stream_pack::output::publish::{Destination, PublishOptions, Publisher, Remote};
use stream_pack::output::retry::RetryPolicy;

use crate::hls::check::{Expect, Segments, check_package};
use crate::live::{LiveRun, RENDITIONS, Seen, read_live};
use crate::util::azurite::Azurite;
use crate::util::cli::{self, FAST};
use crate::util::daemon::free_port;
use crate::util::dav::{Dav, Request};
use crate::util::garage::Garage;
use crate::util::gcs::Gcs;
use crate::util::{download, media};

fn remote(url: &str) -> Remote {
    match url.parse::<Destination>().expect("a destination") {
        Destination::Remote(remote) => remote,
        Destination::Local(path) => panic!("{url} parsed as the local {}", path.display()),
    }
}

/// `count` files of `size` pseudo-random bytes each (no two alike), in a temporary folder.
fn files(count: usize, size: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = (0..count)
        .map(|i| {
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
            let bytes: Vec<u8> = (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let path = dir.path().join(format!("segment{i:05}.ts"));
            std::fs::write(&path, bytes).unwrap();
            path
        })
        .collect();
    (dir, paths)
}

fn quick() -> PublishOptions {
    PublishOptions {
        retry: RetryPolicy {
            attempts: 3,
            first_wait: Duration::from_millis(20),
        },
        ..PublishOptions::default()
    }
}

fn same_file(a: &Path, b: &Path) {
    assert!(
        std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
        "{} differs from {}",
        a.display(),
        b.display()
    );
}

fn puts_of<'a>(requests: &'a [Request], path: &str) -> Vec<&'a Request> {
    requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path == path)
        .collect()
}

#[test]
fn manifests_wait_for_the_files_given_before_them() {
    let dav = Dav::start();
    let (_dir, paths) = files(12, 3 << 20);
    let publisher = Publisher::start(&[remote(&dav.url("pkg/"))], &PublishOptions::default()).unwrap();
    for (i, path) in paths.iter().enumerate() {
        publisher.file(&format!("720p/segment{i:05}.ts"), path).unwrap();
        if i % 4 == 3 {
            publisher
                .manifest("720p/index.m3u8", format!("#EXTM3U\n# up to {i}\n").into_bytes())
                .unwrap();
        }
    }
    let counts = publisher.finish().unwrap();
    assert_eq!(counts.uploads, 15);
    assert_eq!(
        counts.bytes,
        12 * (3 << 20) + 3 * "#EXTM3U\n# up to 11\n".len() as u64 - 2
    );
    for (i, path) in paths.iter().enumerate() {
        same_file(path, &dav.root.join(format!("pkg/720p/segment{i:05}.ts")));
    }
    assert_eq!(
        std::fs::read_to_string(dav.root.join("pkg/720p/index.m3u8")).unwrap(),
        "#EXTM3U\n# up to 11\n",
        "the last manifest given is the one published"
    );
    // nginx's access log: every manifest PUT began after every file PUT given before it ended,
    // and ended before any file given after it began (to the log's millisecond).
    let requests = dav.requests();
    let manifests = puts_of(&requests, "/pkg/720p/index.m3u8");
    assert_eq!(manifests.len(), 3);
    for (round, manifest) in manifests.iter().enumerate() {
        for i in 0..paths.len() {
            let file = puts_of(&requests, &format!("/pkg/720p/segment{i:05}.ts"));
            let [file] = file[..] else {
                panic!("segment {i} was put {} times", file.len())
            };
            if i < 4 * (round + 1) {
                assert!(
                    file.end <= manifest.start + 0.001,
                    "manifest {round} began before segment {i} ended"
                );
            } else {
                assert!(
                    file.start + 0.001 >= manifest.end,
                    "segment {i} began before manifest {round} ended"
                );
            }
        }
    }
    // Files between two manifests went up concurrently: some PUTs overlapped.
    let files: Vec<&Request> = requests.iter().filter(|r| r.path.ends_with(".ts")).collect();
    assert!(
        files
            .iter()
            .any(|a| files.iter().any(|b| a.start < b.start && b.start < a.end - 0.001)),
        "no two uploads overlapped: {files:?}"
    );
}

#[test]
fn a_server_that_comes_up_late_is_retried() {
    let port = free_port();
    let (_dir, paths) = files(2, 1000);
    let destination = remote(&format!("http://127.0.0.1:{port}/late/"));
    let publisher = Publisher::start(&[destination], &PublishOptions::default()).unwrap();
    publisher.file("a.ts", &paths[0]).unwrap();
    publisher.manifest("index.m3u8", b"#EXTM3U\n".to_vec()).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let dav = Dav::start_on(port, true);
    let counts = publisher.finish().unwrap();
    assert!(counts.retries >= 1, "{counts:?}");
    assert_eq!(counts.uploads, 2);
    same_file(&paths[0], &dav.root.join("late/a.ts"));
    assert!(dav.root.join("late/index.m3u8").exists());
}

#[test]
fn a_refusing_destination_fails_after_its_retries() {
    let port = free_port();
    let (_dir, paths) = files(1, 1000);
    let destination = remote(&format!("http://127.0.0.1:{port}/pkg/"));
    let publisher = Publisher::start(&[destination], &quick()).unwrap();
    publisher.file("720p/a.ts", &paths[0]).unwrap();
    let error = publisher.finish().unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, Error::Publish { .. }), "{error:?}");
    assert_eq!(error.exit_code(), 4);
    assert!(
        message.starts_with(&format!("http://127.0.0.1:{port}/pkg/720p/a.ts: upload failed: "))
            && message.contains("after 3 attempts")
            && !message.contains('\n'),
        "{message}"
    );
}

#[test]
fn a_rejected_upload_stops_publishing_and_no_manifest_follows() {
    let dav = Dav::start();
    let (_dir, paths) = files(3, 1000);
    let publisher = Publisher::start(&[remote(&dav.url(""))], &quick()).unwrap();
    publisher.file("ok/a.ts", &paths[0]).unwrap();
    publisher.file("readonly/b.ts", &paths[1]).unwrap();
    publisher.manifest("ok/index.m3u8", b"#EXTM3U\n".to_vec()).unwrap();
    // Once the failure is known, the publisher refuses more work.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while publisher.file("ok/c.ts", &paths[2]).is_ok() {
        assert!(std::time::Instant::now() < deadline, "the failure was never reported");
        std::thread::sleep(Duration::from_millis(10));
    }
    let message = publisher.finish().unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "{}: upload failed: HTTP 405 Method Not Allowed",
            dav.url("readonly/b.ts")
        )
    );
    assert!(
        !dav.root.join("ok/index.m3u8").exists(),
        "a manifest was published after a failure"
    );
    let requests = dav.requests();
    assert_eq!(
        puts_of(&requests, "/readonly/b.ts").len(),
        1,
        "a 405 must not be retried"
    );
}

#[test]
fn deletes_follow_what_was_given_before() {
    let dav = Dav::start();
    let (_dir, paths) = files(3, 50_000);
    let publisher = Publisher::start(&[remote(&dav.url("live/"))], &quick()).unwrap();
    for (i, path) in paths.iter().enumerate() {
        publisher.file(&format!("s{i}.ts"), path).unwrap();
    }
    publisher
        .manifest("index.m3u8", b"#EXTM3U\ns1.ts\ns2.ts\n".to_vec())
        .unwrap();
    publisher.delete("s0.ts").unwrap();
    publisher.delete("never-published.ts").unwrap();
    let counts = publisher.finish().unwrap();
    assert_eq!(counts.deletes, 2);
    assert!(!dav.root.join("live/s0.ts").exists());
    same_file(&paths[1], &dav.root.join("live/s1.ts"));
    let requests = dav.requests();
    let manifest = puts_of(&requests, "/live/index.m3u8")[0];
    let delete = requests
        .iter()
        .find(|r| r.method == "DELETE" && r.path == "/live/s0.ts")
        .unwrap();
    assert!(
        delete.start + 0.001 >= manifest.end,
        "the segment was deleted before the playlist left it"
    );
}

#[test]
fn missing_folders_are_made_with_mkcol() {
    let dav = Dav::start_on(free_port(), false);
    let (_dir, paths) = files(2, 1000);
    let publisher = Publisher::start(&[remote(&dav.url("deep/pkg/"))], &quick()).unwrap();
    publisher.file("720p/a.ts", &paths[0]).unwrap();
    publisher.file("720p/b.ts", &paths[1]).unwrap();
    publisher.finish().unwrap();
    same_file(&paths[0], &dav.root.join("deep/pkg/720p/a.ts"));
    same_file(&paths[1], &dav.root.join("deep/pkg/720p/b.ts"));
    let requests = dav.requests();
    for folder in ["/deep/", "/deep/pkg/", "/deep/pkg/720p/"] {
        let made = requests.iter().filter(|r| r.method == "MKCOL" && r.path == folder);
        assert_eq!(made.filter(|r| r.status == 201).count(), 1, "{folder}: {requests:?}");
    }
}

#[test]
fn several_destinations_get_everything() {
    let (first, second) = (Dav::start(), Dav::start());
    let (_dir, paths) = files(4, 100_000);
    let destinations = [remote(&first.url("a/")), remote(&second.url("b/"))];
    let publisher = Publisher::start(&destinations, &quick()).unwrap();
    for (i, path) in paths.iter().enumerate() {
        publisher.file(&format!("s{i}.ts"), path).unwrap();
    }
    publisher.manifest("index.m3u8", b"#EXTM3U\n".to_vec()).unwrap();
    let counts = publisher.finish().unwrap();
    assert_eq!(counts.uploads, 10);
    for (root, folder) in [(&first.root, "a"), (&second.root, "b")] {
        for (i, path) in paths.iter().enumerate() {
            same_file(path, &root.join(format!("{folder}/s{i}.ts")));
        }
        assert!(root.join(folder).join("index.m3u8").exists());
    }
}

#[test]
fn a_missing_local_file_is_an_error() {
    let dav = Dav::start();
    let publisher = Publisher::start(&[remote(&dav.url(""))], &quick()).unwrap();
    let error = publisher.file("a.ts", Path::new("/nonexistent/a.ts")).unwrap_err();
    assert!(matches!(error, Error::Io { .. }), "{error:?}");
}

#[test]
fn a_server_that_dies_mid_job_gets_no_manifest() {
    let dav = Dav::start();
    let (_dir, paths) = files(4, 1 << 20);
    let publisher = Publisher::start(&[remote(&dav.url("pkg/"))], &quick()).unwrap();
    publisher.file("s00000.ts", &paths[0]).unwrap();
    dav.wait_for(&dav.root.join("pkg/s00000.ts"));
    dav.stop();
    // The job goes on (or learns of the failure) while the server is gone.
    for (i, path) in paths.iter().enumerate().skip(1) {
        if publisher.file(&format!("s{i:05}.ts"), path).is_err() {
            break;
        }
    }
    let _ = publisher.manifest("index.m3u8", b"#EXTM3U\n".to_vec());
    let message = publisher.finish().unwrap_err().to_string();
    assert!(
        message.starts_with(&dav.url("pkg/s")) && message.contains("upload failed") && message.contains("3 attempts"),
        "{message}"
    );
    assert!(
        !dav.root.join("pkg/index.m3u8").exists(),
        "a manifest was published after the server died"
    );
}

// The CLI: `-o` given several times publishes while packaging.

/// `hls` of the 8 s test source at 360p in 2 s TS segments, as `check::Expect` describes it.
fn expect_360p(source: &Path) -> Expect<'_> {
    Expect {
        source,
        segment_duration: 2.0,
        rungs: &[(640, 360)],
        audio: true,
        segments: Segments::TS,
    }
}

/// The same in CMAF segments (`dash`).
fn expect_360p_fmp4(source: &Path) -> Expect<'_> {
    Expect {
        segments: Segments::FMP4,
        ..expect_360p(source)
    }
}

const LADDER_360P: [&str; 6] = ["--reps", "360", "--segment-duration", "2", FAST[0], FAST[1]];

#[test]
fn hls_goes_to_nginx_and_a_local_folder_at_once() {
    let dav = Dav::start();
    let source = media("main");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let remote = dav.url("shows/pkg/");
    let mut args = vec!["-o", &remote];
    args.extend(LADDER_360P);
    let output = cli::package_showing("json", "hls", &source, &local, &args);
    cli::assert_success(&output);
    check_package(&local, &expect_360p(&source));
    let downloaded = dir.path().join("downloaded");
    download::hls_package(&remote, &downloaded, &[]);
    check_package(&downloaded, &expect_360p(&source));
    for file in [
        "master.m3u8",
        "360p/index.m3u8",
        "360p/segment00003.ts",
        "audio/segment00000.ts",
    ] {
        same_file(&local.join(file), &downloaded.join(file));
    }
    cli::assert_says(
        &output,
        &[&format!("package: {remote}master.m3u8")],
        "where the package was published",
    );
    cli::assert_says(
        &output,
        &["published: 11 files"],
        "the uploads: 8 segments and 3 playlists",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| l.contains(r#""published""#))
        .expect("progress with upload counts");
    let progress: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(progress["stage"], "done");
    assert_eq!(progress["published"]["uploads"], 11, "{last}");
}

#[test]
fn a_remote_only_dash_package_is_whole_and_leaves_nothing_local() {
    let dav = Dav::start();
    let source = media("main");
    let remote = dav.url("pkg/");
    // A temporary folder of this job's own: the system's is shared with the other tests' jobs.
    let scratch = tempfile::tempdir().unwrap();
    let long_ago = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::open(scratch.path())
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let mut args = vec!["dash".as_ref(), source.as_os_str()];
    args.extend(["-o", &remote, "--progress", "none"].map(OsStr::new));
    args.extend(LADDER_360P.map(OsStr::new));
    let tmpdir = ("TMPDIR", scratch.path().display().to_string());
    cli::assert_success(&cli::run_with_env(args, &[tmpdir]));
    let downloaded = tempfile::tempdir().unwrap();
    download::dash_package(&remote, downloaded.path(), &[]);
    let dash = crate::dash::check::check_package(downloaded.path(), &expect_360p_fmp4(&source), false);
    assert_eq!(dash.video[0].segments.len(), 4);
    // The folder changed (the job made its scratch folder there) and holds nothing now.
    let modified = std::fs::metadata(scratch.path()).unwrap().modified().unwrap();
    assert!(modified > long_ago, "the job made no scratch folder in TMPDIR");
    let left = crate::util::file_names(scratch.path());
    assert!(left.is_empty(), "the scratch folder was left behind: {left:?}");
}

#[test]
fn nginx_stopped_mid_job_fails_the_job_and_leaves_no_playlist() {
    let dav = Dav::start();
    let source = media("main");
    let remote = dav.url("pkg/");
    let args = [
        "--reps",
        "360",
        "--segment-duration",
        "1",
        FAST[0],
        FAST[1],
        "--upload-concurrency",
        "1",
        "-o",
        &remote,
    ];
    let output = std::thread::scope(|scope| {
        scope.spawn(|| {
            dav.wait_for(&dav.root.join("pkg/360p/segment00000.ts"));
            dav.stop();
        });
        let mut command = vec![
            "hls".as_ref(),
            source.as_os_str(),
            "--progress".as_ref(),
            "none".as_ref(),
        ];
        command.extend(args.map(OsStr::new));
        cli::run(command)
    });
    let line = cli::assert_failure(&output, 4);
    assert!(
        line.starts_with(&format!("error: {remote}")) && line.contains("upload failed"),
        "{line}"
    );
    let published = crate::util::file_names(&dav.root.join("pkg/360p"));
    assert!(!published.is_empty());
    assert!(
        published.iter().all(|name| name.ends_with(".ts")) && !dav.root.join("pkg/master.m3u8").exists(),
        "a playlist was published: {published:?}"
    );
}

#[test]
fn an_http_input_is_read_over_http() {
    let dav = Dav::start();
    let source = media("main");
    std::fs::copy(&source, dav.root.join("main.mp4")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let url = dav.url("main.mp4");
    cli::assert_success(&cli::package("hls", Path::new(&url), &out, &LADDER_360P));
    check_package(&out, &expect_360p(&source));
    let missing = dav.url("missing.mp4");
    let elsewhere = dir.path().join("never");
    let line = cli::assert_failure(&cli::package("hls", Path::new(&missing), &elsewhere, &LADDER_360P), 3);
    assert!(
        line.starts_with(&format!("error: {missing}: ")) && line.contains("404"),
        "{line}"
    );
    assert_eq!(
        crate::util::file_names(dir.path()),
        ["out".to_owned()].into(),
        "a failed job left something"
    );
}

#[test]
fn convert_publishes_what_it_writes_locally() {
    let dav = Dav::start();
    let dir = tempfile::tempdir().unwrap();
    let playlist = crate::util::made_by_libav(
        &media("main"),
        dir.path(),
        &["-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"],
        "index.m3u8",
    );
    let local = dir.path().join("dash");
    let remote = dav.url("converted/");
    let mut args = vec!["convert".as_ref(), playlist.as_os_str()];
    args.extend(["--to", "dash", "-o", &remote, "--progress", "none", "-o"].map(OsStr::new));
    args.push(local.as_os_str());
    cli::assert_success(&cli::run(args));
    let published = dav.root.join("converted");
    for folder in ["", "360p", "audio"] {
        let names = crate::util::file_names(&local.join(folder));
        assert_eq!(crate::util::file_names(&published.join(folder)), names, "{folder}");
        for name in names.iter().filter(|name| name.contains('.')) {
            same_file(&local.join(folder).join(name), &published.join(folder).join(name));
        }
    }
}

// S3: Garage, judged with curl's own request signing.

#[test]
fn hls_goes_to_nginx_garage_and_a_local_folder_at_once() {
    let (dav, garage) = (Dav::start(), Garage::start());
    let source = media("main");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let (http, s3) = (dav.url("pkg/"), garage.s3_url("shows/pkg/"));
    let mut args = vec![
        "hls".as_ref(),
        source.as_os_str(),
        "--progress".as_ref(),
        "none".as_ref(),
    ];
    args.extend(["-o", &http, "-o", &s3, "--s3-endpoint", &garage.endpoint].map(OsStr::new));
    args.extend(["-o".as_ref(), local.as_os_str()]);
    args.extend(LADDER_360P.map(OsStr::new));
    let output = cli::run_with_env(args, &garage.env());
    cli::assert_success(&output);
    cli::assert_says(
        &output,
        &["published: 22 files"],
        "11 files to each of two destinations",
    );
    check_package(&local, &expect_360p(&source));
    for (base, extra) in [
        (http.clone(), Vec::new()),
        (garage.http_url("shows/pkg/"), garage.curl_args()),
    ] {
        let downloaded = tempfile::tempdir().unwrap();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        download::hls_package(&base, downloaded.path(), &extra);
        check_package(downloaded.path(), &expect_360p(&source));
        for file in [
            "master.m3u8",
            "360p/index.m3u8",
            "360p/segment00002.ts",
            "audio/segment00001.ts",
        ] {
            same_file(&local.join(file), &downloaded.path().join(file));
        }
    }
}

#[test]
fn an_s3_input_is_downloaded_first() {
    let garage = Garage::start();
    let source = media("main");
    garage.put(&source, "sources/main.mp4");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut args = vec![
        "hls",
        "s3://media/sources/main.mp4",
        "--progress",
        "none",
        "--s3-endpoint",
        &garage.endpoint,
    ];
    let out_arg = out.display().to_string();
    args.extend(["-o", &out_arg]);
    args.extend(LADDER_360P);
    cli::assert_success(&cli::run_with_env(args.clone(), &garage.env()));
    check_package(&out, &expect_360p(&source));
    let never = dir.path().join("never").display().to_string();
    args[1] = "s3://media/sources/missing.mp4";
    args[7] = &never;
    let line = cli::assert_failure(&cli::run_with_env(args, &garage.env()), 3);
    assert!(line.starts_with("error: s3://media/sources/missing.mp4: "), "{line}");
}

#[test]
fn an_s3_destination_that_refuses_the_key_fails_with_one_line() {
    let garage = Garage::start();
    let mut env = garage.env();
    env[1].1 = "0".repeat(64);
    let s3 = garage.s3_url("pkg/");
    let source = media("short");
    let args = [
        "hls",
        &source.display().to_string(),
        "-o",
        &s3,
        "--s3-endpoint",
        &garage.endpoint,
        "--progress",
        "none",
    ]
    .map(str::to_owned);
    let line = cli::assert_failure(
        &cli::run_with_env(args.iter().chain(&LADDER_360P.map(str::to_owned)), &env),
        4,
    );
    assert!(
        line.starts_with(&format!("error: {s3}")) && line.contains("upload failed") && line.contains("403"),
        "{line}"
    );
}

#[test]
fn an_s3_destination_without_credentials_is_refused_before_any_work() {
    let source = media("short");
    let args = [
        "hls",
        &source.display().to_string(),
        "-o",
        "s3://media/pkg/",
        "--s3-endpoint",
        "http://127.0.0.1:1",
    ]
    .map(str::to_owned);
    let line = cli::assert_failure(&cli::run(args), 2);
    assert!(
        line.contains("s3://media/") && line.contains("AWS_ACCESS_KEY_ID"),
        "{line}"
    );
}

#[test]
fn a_live_window_on_nginx_slides_and_what_left_is_deleted_there() {
    let dav = Dav::start();
    let remote = dav.url("live/");
    let source = media("main");
    let mut run = LiveRun::start(
        "hls",
        &[source.to_str().unwrap()],
        Path::new(&remote),
        &["--window", "3", "--delete-segments"],
    );
    let published = dav.root.join("live");
    let mut seen: BTreeMap<&str, Seen> = RENDITIONS.iter().map(|r| (*r, Seen::default())).collect();
    // Every playlist state on the server names only segments that are there, and none goes
    // before it has been out of the playlist for a target duration.
    let status = run.watch(Duration::from_secs(60), |_, now| {
        for (name, seen) in &mut seen {
            seen.look(&published.join(name), 3, now);
        }
    });
    assert!(status.success(), "{}", run.stderr());
    for (name, seen) in &seen {
        assert!(
            seen.sequences.windows(2).any(|w| w[1] > w[0]),
            "{name}: the window never moved on the server"
        );
        let last = read_live(&published.join(name).join("index.m3u8")).unwrap();
        assert!(last.endlist, "{name}: no ENDLIST at the end");
        assert_eq!(last.media_sequence, 5, "{name}: 8 segments, the last 3 kept");
        let mut expected: BTreeSet<String> = last.segments.iter().map(|s| s.uri.clone()).collect();
        expected.insert("index.m3u8".into());
        assert_eq!(
            crate::util::file_names(&published.join(name)),
            expected,
            "{name}: files left on the server"
        );
    }
    let deletes = dav
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE" && r.status == 204)
        .count();
    assert_eq!(deletes, 3 * 5, "segments 0 to 4 of each rendition deleted once");
}

// Google Cloud Storage and Azure Blob Storage: emulators from PyPI and npm (util::gcs,
// util::azurite), read back with curl on their REST APIs.

/// Every file of the folder `dir`, by its path in it (`360p/segment00000.ts`), and its bytes.
pub(crate) fn package_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut folders = vec![dir.to_owned()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// The package published under `prefix` equals the local one: the same names, every object
/// byte for byte, playlists with the HLS media type.
fn assert_published(
    cloud: &str,
    local: &BTreeMap<String, Vec<u8>>,
    listing: BTreeMap<String, String>,
    prefix: &str,
    get: impl Fn(&str) -> Vec<u8>,
) {
    let names: BTreeSet<String> = listing
        .keys()
        .map(|name| name.strip_prefix(prefix).unwrap_or(name).to_owned())
        .collect();
    assert_eq!(names, local.keys().cloned().collect(), "{cloud}: the objects published");
    for (relative, bytes) in local {
        assert!(
            get(&format!("{prefix}{relative}")) == *bytes,
            "{cloud}: {prefix}{relative} differs from the local copy"
        );
    }
    assert_eq!(
        listing[&format!("{prefix}master.m3u8")],
        "application/vnd.apple.mpegurl",
        "{cloud}: the master playlist's Content-Type"
    );
}

#[test]
fn item19_hls_goes_to_gcs_and_azure_whole_and_equal_to_the_local_copy() {
    let (gcs, azurite) = (Gcs::start(), Azurite::start());
    let source = media("main");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let (gs, az) = (gcs.gs_url("shows/pkg/"), azurite.az_url("shows/pkg/"));
    let mut args = vec![
        "hls".as_ref(),
        source.as_os_str(),
        "--progress".as_ref(),
        "none".as_ref(),
    ];
    args.extend(["-o", &gs, "-o", &az, "-o"].map(OsStr::new));
    args.push(local.as_os_str());
    args.extend(LADDER_360P.map(OsStr::new));
    let output = cli::run_with_env(args, &[gcs.env(), azurite.env()].concat());
    cli::assert_success(&output);
    cli::assert_says(&output, &["published: 22 files"], "11 files to each cloud");
    for remote in [&gs, &az] {
        cli::assert_says(&output, &[&format!("package: {remote}master.m3u8")], "where it went");
    }
    check_package(&local, &expect_360p(&source));
    let files = package_files(&local);
    assert_published("gs", &files, gcs.list("shows/pkg/"), "shows/pkg/", |name| gcs.get(name));
    assert_published("az", &files, azurite.list("shows/pkg/"), "shows/pkg/", |name| {
        azurite.get(name)
    });
}

/// `hls INPUT -o OUT` at 360p, with `env` added to the environment.
fn hls_with_env(input: &str, out: &str, env: &[(&str, String)]) -> std::process::Output {
    let mut args = vec!["hls", input, "-o", out, "--progress", "none"];
    args.extend(LADDER_360P);
    cli::run_with_env(args, env)
}

#[test]
fn item19_gcs_and_azure_inputs_are_downloaded_first() {
    let (gcs, azurite) = (Gcs::start(), Azurite::start());
    let source = media("main");
    gcs.put(&source, "sources/main.mp4");
    azurite.put(&source, "sources/main.mp4");
    let dir = tempfile::tempdir().unwrap();
    let never = dir.path().join("never").display().to_string();
    for (cloud, env) in [("gs", gcs.env()), ("az", azurite.env())] {
        let out = dir.path().join(cloud);
        let input = format!("{cloud}://media/sources/main.mp4");
        cli::assert_success(&hls_with_env(&input, out.to_str().unwrap(), &env));
        check_package(&out, &expect_360p(&source));
        let missing = format!("{cloud}://media/sources/missing.mp4");
        let line = cli::assert_failure(&hls_with_env(&missing, &never, &env), 3);
        assert!(
            line.starts_with(&format!("error: {missing}: ")) && line.contains("not found"),
            "{line}"
        );
    }
    assert_eq!(
        crate::util::file_names(dir.path()),
        ["az".to_owned(), "gs".to_owned()].into(),
        "a failed job left something"
    );
}

#[test]
fn item19_an_unreachable_gcs_or_azure_fails_with_one_line_and_leaves_nothing() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let clouds = [
        ("gs", crate::util::gcs::emulator_env(&dead)),
        (
            "az",
            vec![
                ("AZURE_STORAGE_USE_EMULATOR", "true".to_owned()),
                ("AZURITE_BLOB_STORAGE_URL", dead.clone()),
            ],
        ),
    ];
    let source = media("short");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("never").display().to_string();
    std::thread::scope(|scope| {
        for (cloud, env) in &clouds {
            let (source, local) = (&source, &local);
            scope.spawn(move || {
                let remote = format!("{cloud}://media/pkg/");
                let output = hls_with_env(source.to_str().unwrap(), &remote, env);
                let line = cli::assert_failure(&output, 4);
                assert!(
                    line.starts_with(&format!("error: {remote}")) && line.contains("upload failed"),
                    "{line}"
                );
                let input = format!("{cloud}://media/sources/main.mp4");
                let line = cli::assert_failure(&hls_with_env(&input, local, env), 3);
                assert!(line.starts_with(&format!("error: {input}: ")), "{line}");
            });
        }
    });
    assert!(
        crate::util::file_names(dir.path()).is_empty(),
        "a failed job left something"
    );
}

#[test]
fn item19_a_cloud_without_credentials_is_refused_before_any_work() {
    let source = media("short");
    let line = cli::assert_failure(&cli::run(["hls", source.to_str().unwrap(), "-o", "az://media/pkg/"]), 2);
    assert!(
        line.starts_with("error: az://media/: ") && line.contains("AZURE_STORAGE_ACCOUNT_NAME"),
        "{line}"
    );
}

#[test]
fn item19_a_live_window_on_azure_slides_and_what_left_is_deleted_there() {
    let azurite = Azurite::start();
    let source = media("main");
    let remote = azurite.az_url("live/");
    let mut args = vec![
        "hls",
        source.to_str().unwrap(),
        "-o",
        &remote,
        "--live",
        "--progress",
        "none",
    ];
    args.extend(["--reps", "180,144", "--segment-duration", "1", FAST[0], FAST[1]]);
    args.extend(["--window", "3", "--delete-segments"]);
    cli::assert_success(&cli::run_with_env(args, &azurite.env()));
    let published: BTreeSet<String> = azurite.list("live/").into_keys().collect();
    let mut expected: BTreeSet<String> = ["live/master.m3u8".to_owned()].into();
    for name in RENDITIONS {
        let playlist = String::from_utf8(azurite.get(&format!("live/{name}/index.m3u8"))).unwrap();
        let last = crate::util::m3u8::parse_media(&playlist).unwrap();
        assert!(last.endlist, "{name}: no ENDLIST at the end");
        assert_eq!(last.media_sequence, 5, "{name}: 8 segments, the last 3 kept");
        expected.insert(format!("live/{name}/index.m3u8"));
        expected.extend(last.segments.iter().map(|s| format!("live/{name}/{}", s.uri)));
    }
    assert_eq!(published, expected, "the blobs left in the container");
}
