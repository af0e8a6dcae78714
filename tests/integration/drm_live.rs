//! Encrypted live presentations (`--live --encrypt`): an AES-128 sliding window whose keys rotate,
//! every key a playlist named while the run went on still there at the end and every segment left
//! decrypting with openssl to MPEG-TS that ffmpeg decodes; cenc and cbcs live packages (DASH, and
//! HLS in fMP4) whose key ID the manifests signal while they are live and whose tracks FFmpeg 8.1
//! (`-decryption_key`) decrypts and decodes without an error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cenc::{framemd5, hex, track, write};
use crate::drm::strs;
use crate::live::{LiveRun, RENDITIONS, read_live};
use crate::util::aes;
use crate::util::ffprobe::assert_decodes_cleanly;
use crate::util::media;
use crate::util::mpd::parse_mpd;

const KID: [u8; 16] = 0x5a1e0c3f_07b2_4c1d_9e8f_6a2b3c4d5e6f_u128.to_be_bytes();
const KEY: [u8; 16] = 0x0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0_u128.to_be_bytes();

/// The key file a segment's EXT-X-KEY names, from the rendition folder `dir`.
fn key_file(dir: &Path, key: &crate::util::m3u8::Key) -> PathBuf {
    let path = dir.join(&key.uri);
    path.canonicalize()
        .unwrap_or_else(|e| panic!("key file {}: {e}", path.display()))
}

/// A sliding window of 3 segments, deleting what left, encrypted with AES-128 under keys
/// generated into `key_dir`, a new one every `rotation` segments.
pub(crate) fn encrypted_window(rotation: &str, key_dir: &Path) -> Vec<String> {
    let key_dir = key_dir.to_str().expect("a UTF-8 path");
    [
        "--window",
        "3",
        "--delete-segments",
        "--encrypt",
        "aes-128",
        "--key-rotation",
        rotation,
        "--key-dir",
        key_dir,
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn a_live_aes128_window_rotates_its_keys_keeps_those_named_and_decrypts() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("live");
    let keys = root.path().join("keys");
    let source = media("main");
    let mut run = LiveRun::start(
        "hls",
        &[source.to_str().unwrap()],
        &out,
        &strs(&encrypted_window("2", &keys)),
    );
    let mut named: BTreeSet<PathBuf> = BTreeSet::new();
    let status = run.watch(Duration::from_secs(60), |out, _| {
        for name in RENDITIONS {
            let dir = out.join(name);
            let Some(playlist) = read_live(&dir.join("index.m3u8")) else {
                continue;
            };
            for segment in &playlist.segments {
                let key = segment.key.as_ref().expect("every live segment is under a key");
                assert!(key.iv.is_some(), "an explicit IV: live media sequence numbers move");
                named.insert(key_file(&dir, key));
            }
        }
    });
    assert!(status.success(), "{}", run.stderr());
    // 8 segments, a new key every 2: 4 keys, all still fetchable by a player that joined early.
    assert_eq!(named.len(), 4, "keys named while live: {named:?}");
    assert!(named.iter().all(|file| file.starts_with(keys.canonicalize().unwrap())));
    let info = crate::encrypt::files_under(&keys)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".keyinfo.json"))
        .expect("the operators' key info beside the keys");
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(info).unwrap()).unwrap();
    let spans: Vec<(u64, u64)> = info["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["first_segment"].as_u64().unwrap(),
                k["last_segment"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        spans,
        [(0, 1), (2, 3), (4, 5), (6, 7)],
        "the segments each key encrypts"
    );
    let scratch = tempfile::tempdir().unwrap();
    for name in RENDITIONS {
        let dir = out.join(name);
        let playlist = read_live(&dir.join("index.m3u8")).expect("the closing playlist");
        assert!(playlist.endlist);
        let mut joined = Vec::new();
        for (i, segment) in playlist.segments.iter().enumerate() {
            let key = segment.key.as_ref().expect("a key");
            let clear = scratch.path().join(format!("{name}-{i}.ts"));
            aes::decrypt(
                &aes::read_key(&key_file(&dir, key)),
                key.iv.unwrap(),
                &dir.join(&segment.uri),
                &clear,
            )
            .unwrap_or_else(|e| panic!("{name} {}: {e}", segment.uri));
            joined.extend(std::fs::read(&clear).unwrap());
        }
        assert_decodes_cleanly(&write(scratch.path(), &format!("{name}.ts"), &joined));
    }
}

/// `COMMAND --live --encrypt SCHEME` with the test's key on the 8 s source (long enough to be
/// seen live); the package, and how many manifest reads while it ran found the key ID signalled.
fn live_common(
    command: &str,
    scheme: &str,
    extra: &[&str],
    signalled: impl Fn(&Path) -> bool,
) -> (tempfile::TempDir, PathBuf, usize) {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join(scheme);
    let source = media("main");
    let (kid, key) = (hex(&KID), hex(&KEY));
    let args = [&["--encrypt", scheme, "--key-id", &kid, "--key", &key][..], extra].concat();
    let mut run = LiveRun::start(command, &[source.to_str().unwrap()], &out, &args);
    let mut reads = 0;
    let status = run.watch(Duration::from_secs(60), |out, _| reads += usize::from(signalled(out)));
    assert!(status.success(), "{}", run.stderr());
    (root, out, reads)
}

/// Every track `names` of a common-encryption package at `out` decrypts with `key` and decodes
/// without an error; with a wrong key its frames are not the same.
pub(crate) fn assert_tracks_decrypt(scratch: &Path, out: &Path, names: &[&str], key: [u8; 16]) {
    let mut wrong = key;
    wrong[15] ^= 1;
    for name in names {
        let (init, segments) = track(out, name);
        let file = write(scratch, &format!("{name}.mp4"), &[init, segments.concat()].concat());
        let frames = framemd5(&file, Some(key), true).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!frames.is_empty(), "{name}: frames decoded");
        assert!(
            framemd5(&file, Some(wrong), true).ok() != Some(frames),
            "{name}: a wrong key decodes the same frames"
        );
    }
}

#[test]
fn a_live_cenc_dash_presentation_signals_its_key_while_live_and_decrypts() {
    let kid_uuid = "5a1e0c3f-07b2-4c1d-9e8f-6a2b3c4d5e6f";
    let (root, out, reads) = live_common("dash", "cenc", &[], |out| {
        let Ok(text) = std::fs::read_to_string(out.join("manifest.mpd")) else {
            return false;
        };
        let mpd = parse_mpd(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let dynamic = mpd.attributes.get("type") == Some("dynamic");
        let kids: Vec<_> = mpd
            .adaptation_sets
            .iter()
            .map(|set| set.content_protection.first().and_then(|c| c.default_kid.clone()))
            .collect();
        assert!(kids.iter().all(|kid| kid.as_deref() == Some(kid_uuid)), "{kids:?}");
        dynamic
    });
    assert!(reads > 0, "a dynamic MPD was read");
    assert_tracks_decrypt(root.path(), &out, &RENDITIONS, KEY);
}

#[test]
fn a_live_cbcs_hls_fmp4_presentation_signals_its_key_while_live_and_decrypts() {
    let keyid = format!("KEYID=0x{}", hex(&KID));
    let (root, out, reads) = live_common("hls", "cbcs", &["--format", "fmp4"], |out| {
        let Ok(text) = std::fs::read_to_string(out.join("180p/index.m3u8")) else {
            return false;
        };
        let keys: Vec<&str> = text.lines().filter(|l| l.starts_with("#EXT-X-KEY:")).collect();
        assert!(
            !keys.is_empty()
                && keys
                    .iter()
                    .all(|k| k.contains("METHOD=SAMPLE-AES") && k.contains(&keyid)),
            "{text}"
        );
        !text.contains("#EXT-X-ENDLIST")
    });
    assert!(reads > 0, "a live playlist was read");
    assert_tracks_decrypt(root.path(), &out, &RENDITIONS, KEY);
}
