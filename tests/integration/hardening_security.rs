//! Issue 20, data loss and security: keys of other packages, playlist injection from the
//! input, `-o` over the inputs, side files without end. Each test is named after its item.

use crate::util::aes::{self, Key};
use crate::util::cli::{self, FAST};
use crate::util::m3u8;
use crate::util::media;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stream-pack");

/// One 90p rung of the 3 s `tiny` source in 1 s segments.
const TINY: [&str; 4] = ["--reps", "90", "--segment-duration", "1"];

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Every file in `dir` and its bytes (files that vanish while read are left out).
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .filter_map(|entry| {
            let path = entry.expect("folder entry").path();
            let bytes = std::fs::read(&path).ok()?;
            Some((path.file_name()?.to_string_lossy().into_owned(), bytes))
        })
        .collect()
}

/// `stream-pack hls tiny -o OUT --encrypt --key-dir KEYS`, which must succeed.
fn encrypted_tiny(out: &Path, keys: &Path) {
    let args = [&TINY[..], &FAST, &["--encrypt", "--key-dir", path_str(keys)]].concat();
    cli::assert_success(&cli::hls(&media("tiny"), out, &args));
}

/// Every segment of the 90p and audio playlists of `out` decrypts with the key file its
/// EXT-X-KEY names (a relative URI) and the IV it gives.
fn assert_package_decrypts(out: &Path) {
    for dir in ["90p", "audio"] {
        let folder = out.join(dir);
        let playlist = m3u8::read_media(&folder.join("index.m3u8"));
        for segment in &playlist.segments {
            let tag = segment.key.as_ref().expect("an encrypted segment");
            let key: Key = aes::read_key(&folder.join(&tag.uri));
            let iv = tag.iv.expect("an explicit IV");
            assert!(
                aes::decrypts_to_ts(&key, iv, &folder.join(&segment.uri)),
                "{}/{dir}/{} does not decrypt with {}",
                out.display(),
                segment.uri,
                tag.uri
            );
        }
    }
}

/// A source long enough to interrupt: 320x180, 25 fps, with audio, `seconds` long.
fn long_source(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("long.mp4");
    let video = format!("testsrc2=size=320x180:rate=25:duration={seconds}");
    let audio = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    let status = Command::new("ffmpeg")
        .args([
            "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio,
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
    path
}

/// Sends SIGINT to a running stream-pack once `ready` holds, and returns its exit status.
fn interrupt_when(args: &[&str], ready: impl Fn() -> bool) -> std::process::ExitStatus {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stream-pack");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if let Some(status) = child.try_wait().expect("wait for stream-pack") {
            panic!("stream-pack ended ({status}) before it could be interrupted");
        }
        assert!(Instant::now() < deadline, "stream-pack never got ready to interrupt");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    child.wait().expect("reap stream-pack")
}

/// Two packages named `show` share a key dir: the second writes keys of its own and leaves
/// the first's untouched, and a third one interrupted by Ctrl-C removes only what it wrote.
#[test]
fn item01_shared_key_dir_keeps_other_packages_keys() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let keys = parent.path().join("K");
    let (a, b) = (parent.path().join("a/show"), parent.path().join("b/show"));
    encrypted_tiny(&a, &keys);
    let first = contents(&keys);
    encrypted_tiny(&b, &keys);
    let both = contents(&keys);
    for (name, bytes) in &first {
        assert_eq!(
            both.get(name),
            Some(bytes),
            "K/{name} of the first package was replaced or removed by the second"
        );
    }
    assert!(
        both.len() > first.len(),
        "the second package wrote no key files of its own"
    );
    assert_package_decrypts(&a);
    assert_package_decrypts(&b);

    let source = long_source(parent.path(), 20);
    let c = parent.path().join("c/show");
    let args = [
        "hls",
        path_str(&source),
        "-o",
        path_str(&c),
        "--progress",
        "none",
        "--reps",
        "180",
        "--segment-duration",
        "1",
        "--encrypt",
        "--key-rotation",
        "1",
        "--key-dir",
        path_str(&keys),
    ];
    let known: Vec<&String> = both.keys().collect();
    let status = interrupt_when(&args, || {
        let names = crate::util::file_names(&keys);
        names
            .iter()
            .any(|name| name.ends_with(".key") && !known.contains(&name))
    });
    assert_eq!(status.code(), Some(130), "Ctrl-C cancels the job");
    assert_eq!(
        contents(&keys),
        both,
        "the cancelled job must remove its own keys and nothing else"
    );
    assert!(!c.exists(), "the cancelled package appeared");
}
