//! Live encryption beyond drm_live's cases: `--clear-lead` in a live cenc or cbcs run (the first
//! segments carry no `senc`, the rest do, and FFmpeg 8.1 decrypts the whole track), AES-128 live
//! with the operator's own key (`--key-file`, `--key-info`; openssl decrypts every segment to TS
//! that ffmpeg decodes), and SAMPLE-AES live (the PMTs signal it, and the decryptor written from
//! Apple's spec in sample_aes.rs turns every segment back into streams ffmpeg decodes cleanly).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cenc::{boxes_at, hex, track, write};
use crate::drm_live::assert_tracks_decrypt;
use crate::live::{LiveRun, RENDITIONS, read_live};
use crate::sample_aes::{decode, decrypt, iv_of, key_attributes, pmt_streams, ts_elementary_stream};
use crate::util::aes;
use crate::util::ffprobe::assert_decodes_cleanly;
use crate::util::m3u8::MediaPlaylist;
use crate::util::media;

const KID: [u8; 16] = 0x6b2f1d40_18c3_4d2e_af90_7b3c4d5e6f70_u128.to_be_bytes();
const KEY: [u8; 16] = 0x1f2e3d4c_5b6a_7988_97a6_b5c4d3e2f101_u128.to_be_bytes();
const IV: u128 = 0x00112233_4455_6677_8899_aabbccddeeff;

/// `COMMAND --live ARGS` on the 8 s source, to its end; the folder that holds the package (`live`).
fn live(command: &str, args: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let source = media("main");
    let mut run = LiveRun::start(command, &[source.to_str().unwrap()], &root.path().join("live"), args);
    let status = run.watch(Duration::from_secs(60), |_, _| {});
    assert!(status.success(), "{}", run.stderr());
    root
}

/// With `--clear-lead 2` and 1 s segments, the two segments that start before 2 s carry no
/// `senc` and every later one does; the whole track decrypts with the key and decodes.
fn assert_live_clear_lead(command: &str, scheme: &str, extra: &[&str]) {
    let (kid, key) = (hex(&KID), hex(&KEY));
    let args = [
        &[
            "--encrypt",
            scheme,
            "--key-id",
            &kid,
            "--key",
            &key,
            "--clear-lead",
            "2",
        ][..],
        extra,
    ]
    .concat();
    let root = live(command, &args);
    let out = root.path().join("live");
    for name in RENDITIONS {
        let (_, segments) = track(&out, name);
        let encrypted: Vec<bool> = segments
            .iter()
            .map(|segment| !boxes_at(segment, &[b"moof", b"traf", b"senc"]).is_empty())
            .collect();
        let expected: Vec<bool> = (0..segments.len()).map(|n| n >= 2).collect();
        assert_eq!(encrypted, expected, "{scheme} {name}: which segments have senc");
    }
    assert_tracks_decrypt(root.path(), &out, &RENDITIONS, KEY);
}

#[test]
fn a_live_cenc_dash_clear_lead_leaves_the_first_segments_clear() {
    assert_live_clear_lead("dash", "cenc", &[]);
}

#[test]
fn a_live_cbcs_hls_clear_lead_leaves_the_first_segments_clear() {
    assert_live_clear_lead("hls", "cbcs", &["--format", "fmp4"]);
}

/// The closing playlist of each rendition of a live HLS package, with its folder.
fn closed_playlists(out: &Path) -> Vec<(PathBuf, MediaPlaylist)> {
    RENDITIONS
        .iter()
        .map(|name| {
            let dir = out.join(name);
            let playlist = read_live(&dir.join("index.m3u8")).expect("the closing playlist");
            assert!(playlist.endlist, "{name}: the playlist is closed");
            (dir, playlist)
        })
        .collect()
}

/// Every segment of every rendition names `uri` as its key, with an explicit IV (`iv` if given),
/// and decrypts with KEY (openssl) to TS that, joined, ffmpeg decodes without an error.
fn assert_aes128_live(out: &Path, uri: &str, iv: Option<u128>) {
    let scratch = tempfile::tempdir().unwrap();
    for (dir, playlist) in closed_playlists(out) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let mut joined = Vec::new();
        for (n, segment) in playlist.segments.iter().enumerate() {
            let key = segment.key.as_ref().expect("every segment is under a key");
            assert_eq!(key.uri, uri, "{name}: the key's URI");
            let segment_iv = key.iv.expect("an explicit IV: live media sequence numbers move");
            assert!(iv.is_none_or(|given| given == segment_iv), "{name}: the given IV");
            let clear = scratch.path().join(format!("{name}-{n}.ts"));
            aes::decrypt(&KEY, segment_iv, &dir.join(&segment.uri), &clear)
                .unwrap_or_else(|e| panic!("{name} {}: {e}", segment.uri));
            joined.extend(std::fs::read(&clear).unwrap());
        }
        assert_decodes_cleanly(&write(scratch.path(), &format!("{name}.ts"), &joined));
    }
}

#[test]
fn a_live_aes128_run_with_a_key_file_decrypts_with_that_key() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("live.key");
    std::fs::write(&file, KEY).unwrap();
    let root = live("hls", &["--encrypt", "aes-128", "--key-file", file.to_str().unwrap()]);
    let relative = pathdiff(&root.path().join("live/180p"), &file);
    assert_aes128_live(&root.path().join("live"), &relative, None);
}

/// The path from folder `from` to `file`, both absolute, as the playlist writes it.
fn pathdiff(from: &Path, file: &Path) -> String {
    let common = from
        .ancestors()
        .find(|a| file.starts_with(a))
        .expect("a common ancestor");
    let ups = from.strip_prefix(common).unwrap().components().count();
    let down = file.strip_prefix(common).unwrap().to_str().unwrap();
    format!("{}{down}", "../".repeat(ups))
}

#[test]
fn a_live_aes128_run_with_key_info_uses_its_uri_key_and_iv() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("operator.bin");
    std::fs::write(&file, KEY).unwrap();
    let info = keys.path().join("key.info");
    let uri = "https://keys.example/live.key";
    std::fs::write(&info, format!("{uri}\n{}\n{}\n", file.display(), aes::hex(IV))).unwrap();
    let root = live("hls", &["--encrypt", "aes-128", "--key-info", info.to_str().unwrap()]);
    assert_aes128_live(&root.path().join("live"), uri, Some(IV));
}

/// `--live --encrypt sample-aes`: every segment's PMT signals the encryption (0xdb for video,
/// 0xcf for audio), and every segment, decrypted with the key and the IV of the playlist's one
/// EXT-X-KEY, joins into streams ffmpeg decodes without a complaint, which the encrypted ones are
/// not. (The playlists are read here: the shared parser knows no KEYFORMAT.)
#[test]
fn a_live_sample_aes_run_signals_and_decrypts_every_segment() {
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("live.key");
    std::fs::write(&file, KEY).unwrap();
    let root = live(
        "hls",
        &["--encrypt", "sample-aes", "--key-file", file.to_str().unwrap()],
    );
    for name in RENDITIONS {
        let dir = root.path().join("live").join(name);
        let playlist = std::fs::read_to_string(dir.join("index.m3u8")).unwrap();
        assert!(playlist.contains("#EXT-X-ENDLIST"), "{name}: the playlist is closed");
        let attributes = key_attributes(&dir.join("index.m3u8"));
        assert_eq!(attributes.plain("METHOD"), Some("SAMPLE-AES"));
        let iv = iv_of(&attributes);
        let (format, stream_type) = if name == "audio" {
            ("adts", 0xcf)
        } else {
            ("h264", 0xdb)
        };
        let (mut encrypted, mut decrypted) = (Vec::new(), Vec::new());
        for uri in playlist
            .lines()
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
        {
            let ts = std::fs::read(dir.join(uri)).unwrap();
            let pmts = pmt_streams(&ts);
            assert!(!pmts.is_empty(), "{name} {uri}: a PMT");
            assert!(
                pmts.iter().all(|pmt| pmt.len() == 1 && pmt[0].0 == stream_type),
                "{pmts:?}"
            );
            let stream = ts_elementary_stream(&ts);
            decrypted.extend(decrypt(format, &stream, &KEY, &iv));
            encrypted.extend(stream);
        }
        let (frames, complaints) = decode(format, &decrypted, keys.path());
        assert!(
            frames > 100 && complaints.is_empty(),
            "{name}: {frames} frames, {complaints}"
        );
        let (_, complaints) = decode(format, &encrypted, keys.path());
        assert!(!complaints.is_empty(), "{name}: the encrypted stream decodes as it is");
    }
}
