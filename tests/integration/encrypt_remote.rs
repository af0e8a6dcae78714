//! Encrypted packages published to a remote destination (nginx's WebDAV module, started here): the
//! keys stay in the local key dir, no key file and no key's bytes reach the server, the playlists
//! name the keys at `--key-url`, and what the server holds decrypts with the local keys (openssl
//! for AES-128, FFmpeg 8.1 `-decryption_key` for cenc) and decodes.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cenc::write;
use crate::drm::strs;
use crate::drm_live::{assert_tracks_decrypt, encrypted_window};
use crate::encrypt::files_under;
use crate::live::{LiveRun, RENDITIONS};
use crate::util::aes;
use crate::util::cli::{self, FAST};
use crate::util::dav::Dav;
use crate::util::ffprobe::assert_decodes_cleanly;
use crate::util::m3u8::parse_media;
use crate::util::media;

const KEY_URL: &str = "https://keys.example.com/live/";

/// `COMMAND main -o URL ARGS`, nothing local but the key dir; the run's output.
fn publish(command: &str, url: &str, args: &[&str]) -> std::process::Output {
    let source = media("main");
    let mut all = vec![OsStr::new(command), source.as_os_str()];
    all.extend(
        [
            "-o",
            url,
            "--progress",
            "none",
            "--reps",
            "180",
            "--segment-duration",
            "1",
        ]
        .map(OsStr::new),
    );
    all.extend(FAST.map(OsStr::new));
    all.extend(args.iter().map(OsStr::new));
    cli::run(all)
}

/// The keys in the local key dir; none of them, nor any key or key-info file, is among what the
/// server received.
fn assert_keys_stayed_local(key_dir: &Path, published: &Path) -> Vec<PathBuf> {
    let keys: Vec<PathBuf> = files_under(key_dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    assert!(!keys.is_empty(), "keys in the local key dir");
    let received = files_under(published);
    for file in &received {
        let name = file.to_string_lossy();
        assert!(
            !name.ends_with(".key") && !name.ends_with(".keyinfo.json"),
            "{name} was published"
        );
        let bytes = std::fs::read(file).unwrap();
        for key in &keys {
            let key = std::fs::read(key).unwrap();
            assert!(!bytes.windows(key.len()).any(|w| w == key), "{name} holds a key");
        }
    }
    keys
}

#[test]
fn aes128_keys_stay_local_the_playlists_name_the_key_url_and_the_segments_decrypt() {
    let dav = Dav::start();
    let local = tempfile::tempdir().unwrap();
    let key_dir = local.path().join("keys");
    let url = dav.url("shows/enc/");
    let args = [
        "--encrypt",
        "aes-128",
        "--key-rotation",
        "2",
        "--key-dir",
        key_dir.to_str().unwrap(),
        "--key-url",
        KEY_URL,
    ];
    cli::assert_success(&publish("hls", &url, &args));
    let published = dav.root.join("shows/enc");
    let keys = assert_keys_stayed_local(&key_dir, &published);
    assert_eq!(keys.len(), 4, "8 segments, a new key every 2");
    assert_renditions_decrypt(&published, &key_dir, local.path(), &["180p", "audio"]);
}

/// Every segment a published playlist `names` lists decrypts with openssl under the key it names
/// at `--key-url`, read from the local `key_dir`, to MPEG-TS that ffmpeg decodes whole.
fn assert_renditions_decrypt(published: &Path, key_dir: &Path, scratch: &Path, names: &[&str]) {
    for name in names {
        let dir = published.join(name);
        let playlist = parse_media(&std::fs::read_to_string(dir.join("index.m3u8")).unwrap()).unwrap();
        let mut joined = Vec::new();
        for (i, segment) in playlist.segments.iter().enumerate() {
            let key = segment.key.as_ref().expect("every segment under a key");
            let file_name = key
                .uri
                .strip_prefix(KEY_URL)
                .unwrap_or_else(|| panic!("{} is not at --key-url", key.uri));
            let clear = scratch.join(format!("{name}-{i}.ts"));
            aes::decrypt(
                &aes::read_key(&key_dir.join(file_name)),
                key.iv.expect("an IV"),
                &dir.join(&segment.uri),
                &clear,
            )
            .unwrap_or_else(|e| panic!("{name} {}: {e}", segment.uri));
            joined.extend(std::fs::read(&clear).unwrap());
        }
        assert_decodes_cleanly(&write(scratch, &format!("{name}.ts"), &joined));
    }
}

#[test]
fn a_cenc_key_generated_for_a_remote_package_stays_local_and_decrypts_it() {
    let dav = Dav::start();
    let local = tempfile::tempdir().unwrap();
    let key_dir = local.path().join("keys");
    let url = dav.url("cenc/");
    cli::assert_success(&publish(
        "dash",
        &url,
        &["--encrypt", "cenc", "--key-dir", key_dir.to_str().unwrap()],
    ));
    let published = dav.root.join("cenc");
    let [key] = &assert_keys_stayed_local(&key_dir, &published)[..] else {
        panic!("one key for cenc")
    };
    let key: [u8; 16] = std::fs::read(key).unwrap().try_into().expect("16 raw bytes");
    assert_tracks_decrypt(local.path(), &published, &["180p", "audio"], key);
}

/// A live AES-128 window published to nginx and kept locally: the keys are neither uploaded nor in
/// the local package, and what the server holds at the end decrypts.
#[test]
fn a_live_encrypted_window_on_nginx_keeps_its_keys_local() {
    let dav = Dav::start();
    let local = tempfile::tempdir().unwrap();
    let (out, key_dir) = (local.path().join("live"), local.path().join("keys"));
    let url = dav.url("live/");
    let source = media("main");
    let window = encrypted_window("3", &key_dir);
    let args = [&["-o", &url, "--key-url", KEY_URL][..], &strs(&window)].concat();
    let mut run = LiveRun::start("hls", &[source.to_str().unwrap()], &out, &args);
    let status = run.watch(Duration::from_secs(60), |_, _| {});
    assert!(status.success(), "{}", run.stderr());
    let published = dav.root.join("live");
    assert_eq!(
        assert_keys_stayed_local(&key_dir, &published).len(),
        3,
        "8 segments, a key every 3"
    );
    assert_keys_stayed_local(&key_dir, &out);
    assert_renditions_decrypt(&published, &key_dir, local.path(), &RENDITIONS);
}

#[test]
fn a_remote_package_without_a_local_place_for_its_keys_is_refused() {
    let url = "http://127.0.0.1:9/never/";
    let refused = |args: &[&str], words: &[&str]| {
        let output = publish("hls", url, args);
        let line = cli::assert_failure(&output, 2).to_lowercase();
        assert!(words.iter().all(|w| line.contains(w)), "{line}");
    };
    let local = tempfile::tempdir().unwrap();
    let key_dir = local.path().join("keys");
    refused(
        &["--encrypt", "aes-128", "--key-dir", key_dir.to_str().unwrap()],
        &["--key-url"],
    );
    refused(&["--encrypt", "aes-128", "--key-url", KEY_URL], &["--key-dir"]);
    assert!(!key_dir.exists(), "nothing written for a refused job");
}

/// A live job that fails after it served segments (its server gone) keeps the keys those
/// segments' playlists named: players that fetched them still need the keys.
#[test]
fn a_live_job_that_fails_keeps_the_keys_its_served_segments_name() {
    let dav = Dav::start();
    let local = tempfile::tempdir().unwrap();
    let (out, key_dir) = (local.path().join("live"), local.path().join("keys"));
    let url = dav.url("live/");
    let source = media("main");
    let window = encrypted_window("1", &key_dir);
    let args = [&["-o", &url, "--key-url", KEY_URL][..], &strs(&window)].concat();
    let mut run = LiveRun::start("hls", &[source.to_str().unwrap()], &out, &args);
    let playlist = dav.root.join("live").join(RENDITIONS[0]).join("index.m3u8");
    dav.wait_for(&playlist);
    let served = std::fs::read_to_string(&playlist).unwrap();
    dav.stop();
    let status = run.watch(Duration::from_secs(90), |_, _| {});
    assert!(!status.success(), "the job fails when its server is gone");
    let named = parse_media(&served)
        .expect("a whole playlist")
        .segments
        .into_iter()
        .filter_map(|s| s.key)
        .map(|k| k.uri);
    for uri in named {
        let name = uri.strip_prefix(KEY_URL).expect("keys named at --key-url");
        assert!(
            key_dir.join(name).is_file(),
            "{name}, named by a served playlist, was deleted"
        );
    }
}
