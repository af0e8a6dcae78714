//! `hls --encrypt sample-aes`: Apple's SAMPLE-AES for MPEG-2 transport streams, judged by a
//! decryptor written here from Apple's "MPEG-2 Stream Encryption Format for HTTP Live Streaming"
//! (the layout hls.js decrypts): the test demuxes each track's segments into its elementary stream
//! (H.222.0's PAT, PMT and PES), decrypts it, and it must equal that of the same package made clear.
//! The decryptor is itself checked on Shaka Packager's SAMPLE-AES, and the PMTs are compared with
//! the ones Shaka writes.

use std::path::{Path, PathBuf};

use aes::Aes128;
use cbc::cipher::{BlockModeDecrypt, KeyIvInit, array::Array};

use crate::cenc::tool;
use crate::util::m3u8::Attributes;
use crate::util::{cli, media};

const KEY: [u8; 16] = 0x2b7e1516_28aed2a6_abf71588_09cf4f3c_u128.to_be_bytes();
const WRONG_KEY: [u8; 16] = 0x2b7e1516_28aed2a6_abf71588_09cf4f3d_u128.to_be_bytes();
const COPY: [&str; 3] = ["--copy", "--segment-duration", "1"];
/// The tiny source's `--copy` tracks and their elementary streams' formats.
const TRACKS: [(&str, &str); 2] = [("90p", "h264"), ("audio", "adts")];

/// `stream-pack hls tiny --copy ARGS` into PARENT/NAME, which must succeed.
fn package(parent: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = parent.join(name);
    let args = [&COPY[..], args].concat();
    let output = cli::package_showing("json", "hls", &media("tiny"), &out, &args);
    cli::assert_success(&output);
    out
}

/// A temporary folder holding the key file `video.key`, and the file's path.
fn key_in_temp() -> (tempfile::TempDir, String) {
    let parent = tempfile::tempdir().expect("a temporary folder");
    let key_file = parent.path().join("video.key");
    std::fs::write(&key_file, KEY).expect("write the key");
    let path = key_file.to_str().expect("UTF-8 path").to_owned();
    (parent, path)
}

/// The track's segments, in order, demuxed into its elementary stream.
fn elementary_stream(track: &Path) -> Vec<u8> {
    segments_of(track, "segment")
        .iter()
        .flat_map(|segment| ts_elementary_stream(&std::fs::read(segment).expect("read a segment")))
        .collect()
}

/// The PES payloads of the one elementary stream of a transport stream (ISO/IEC 13818-1): the
/// PMT's PID from the PAT, the stream's PID from the PMT, each PES packet's header skipped.
pub(crate) fn ts_elementary_stream(ts: &[u8]) -> Vec<u8> {
    assert_eq!(ts.len() % 188, 0, "whole 188-byte packets");
    let packets: Vec<(u16, bool, &[u8])> = ts.chunks(188).map(ts_payload).collect();
    let section = |pid: u16| {
        let (_, _, payload) = packets
            .iter()
            .find(|(p, start, _)| *p == pid && *start)
            .expect("a table");
        &payload[1 + usize::from(payload[0])..]
    };
    let pat = section(0);
    let pmt_pid = u16::from_be_bytes([pat[10], pat[11]]) & 0x1fff;
    let pmt = section(pmt_pid);
    let info_len = usize::from(u16::from_be_bytes([pmt[10], pmt[11]]) & 0xfff);
    let es_pid = u16::from_be_bytes([pmt[13 + info_len], pmt[14 + info_len]]) & 0x1fff;
    let mut stream = Vec::new();
    for (_, start, payload) in packets.iter().filter(|(pid, _, _)| *pid == es_pid) {
        let skip = if *start { 9 + usize::from(payload[8]) } else { 0 };
        stream.extend_from_slice(&payload[skip..]);
    }
    stream
}

/// A TS packet's PID, payload_unit_start_indicator and payload (after any adaptation field).
fn ts_payload(packet: &[u8]) -> (u16, bool, &[u8]) {
    assert_eq!(packet[0], 0x47, "a TS sync byte");
    let pid = u16::from_be_bytes([packet[1], packet[2]]) & 0x1fff;
    let start = packet[1] & 0x40 != 0;
    let control = (packet[3] >> 4) & 3;
    let offset = match control {
        1 => 4,
        3 => 5 + usize::from(packet[4]),
        _ => 188,
    };
    (pid, start, &packet[offset.min(188)..])
}

/// The EXT-X-KEY attributes of a media playlist: one tag, before the first segment.
pub(crate) fn key_attributes(playlist: &Path) -> Attributes {
    let text = std::fs::read_to_string(playlist).expect("read the playlist");
    let tags: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("#EXT-X-KEY:")).collect();
    assert_eq!(tags.len(), 1, "one EXT-X-KEY in {text}");
    Attributes::parse(tags[0]).expect("EXT-X-KEY attributes")
}

pub(crate) fn iv_of(attributes: &Attributes) -> [u8; 16] {
    let digits = attributes
        .plain("IV")
        .and_then(|iv| iv.strip_prefix("0x"))
        .expect("an IV of 0x…");
    u128::from_str_radix(digits, 16).expect("a hex IV").to_be_bytes()
}

/// Decrypts the encrypted blocks of `data` in one CBC chain from `iv`: `blocks` gives where each
/// encrypted block starts.
fn decrypt_blocks(data: &mut [u8], blocks: impl Iterator<Item = usize>, key: &[u8; 16], iv: &[u8; 16]) {
    let mut chain = cbc::Decryptor::<Aes128>::new(&Array(*key), &Array(*iv));
    for at in blocks {
        let block: &mut Array<u8, _> = (&mut data[at..at + 16]).try_into().expect("a block");
        chain.decrypt_block(block);
    }
}

/// The spec's encrypted_nal_unit(): the NAL header byte and 31 bytes clear, then, while more
/// than 16 bytes remain, one encrypted block and up to 144 clear bytes. Emulation prevention was
/// applied to the encrypted unit: removed first, as hls.js does, it leaves the encrypted unit.
fn decrypt_nal(nal: &[u8], key: &[u8; 16], iv: &[u8; 16]) -> Vec<u8> {
    if !matches!(nal[0] & 0x1f, 1 | 5) {
        return nal.to_vec();
    }
    let mut unit = without_emulation_prevention(nal);
    let len = unit.len();
    decrypt_blocks(
        &mut unit,
        (32..).step_by(160).take_while(|at| len - at.min(&len) > 16),
        key,
        iv,
    );
    unit
}

/// The unit without the 0x03 that follows each pair of zero bytes (H.264 §7.4.1).
fn without_emulation_prevention(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &byte in nal {
        if zeros >= 2 && byte == 3 {
            zeros = 0;
            continue;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

/// An Annex B stream with every slice NAL unit decrypted; start codes and the zero bytes before
/// them kept as they are.
fn decrypt_h264(stream: &[u8], key: &[u8; 16], iv: &[u8; 16]) -> Vec<u8> {
    let codes: Vec<usize> = (0..stream.len().saturating_sub(2))
        .filter(|&i| stream[i..i + 3] == [0, 0, 1])
        .collect();
    let mut out = stream[..codes.first().map_or(stream.len(), |c| c + 3)].to_vec();
    for (n, &code) in codes.iter().enumerate() {
        let start = code + 3;
        let next = codes.get(n + 1).copied().unwrap_or(stream.len());
        let mut end = next;
        while n + 1 < codes.len() && end > start && stream[end - 1] == 0 {
            end -= 1;
        }
        out.extend(decrypt_nal(&stream[start..end], key, iv));
        out.extend_from_slice(&stream[end..(next + 3).min(stream.len())]);
    }
    out
}

/// An ADTS stream with every frame decrypted: its header and the first 16 bytes of its payload
/// clear, then its whole blocks in one CBC chain from the IV.
fn decrypt_adts(stream: &[u8], key: &[u8; 16], iv: &[u8; 16]) -> Vec<u8> {
    let mut out = stream.to_vec();
    let mut at = 0;
    while at + 7 <= out.len() {
        assert_eq!(out[at..at + 2][0], 0xff, "an ADTS sync word at {at}");
        let frame_len =
            (usize::from(out[at + 3] & 3) << 11) | (usize::from(out[at + 4]) << 3) | usize::from(out[at + 5] >> 5);
        let header = if out[at + 1] & 1 == 1 { 7 } else { 9 };
        let payload = at + header..at + frame_len;
        let whole = (payload.len().saturating_sub(16)) / 16;
        decrypt_blocks(&mut out, (0..whole).map(|b| payload.start + 16 + 16 * b), key, iv);
        at += frame_len;
    }
    out
}

pub(crate) fn decrypt(format: &str, stream: &[u8], key: &[u8; 16], iv: &[u8; 16]) -> Vec<u8> {
    match format {
        "h264" => decrypt_h264(stream, key, iv),
        _ => decrypt_adts(stream, key, iv),
    }
}

/// Every track decrypts, with the spec's SAMPLE-AES and the key and IV its EXT-X-KEY names, to the
/// elementary stream of the clear package; encrypted, or with a wrong key, it differs from it.
#[test]
fn sample_aes_ts_decrypts_to_the_clear_streams() {
    let (parent, key_arg) = key_in_temp();
    let key_arg = key_arg.as_str();
    let clear = package(parent.path(), "clear", &[]);
    let encrypted = package(
        parent.path(),
        "encrypted",
        &["--encrypt", "sample-aes", "--key-file", key_arg],
    );
    for (track, format) in TRACKS {
        let attributes = key_attributes(&encrypted.join(track).join("index.m3u8"));
        assert_eq!(attributes.plain("METHOD"), Some("SAMPLE-AES"));
        assert_eq!(attributes.quoted("KEYFORMAT"), Some("identity"));
        let iv = iv_of(&attributes);
        let clear_stream = elementary_stream(&clear.join(track));
        let encrypted_stream = elementary_stream(&encrypted.join(track));
        assert!(encrypted_stream != clear_stream, "{track} is encrypted");
        assert!(
            decrypt(format, &encrypted_stream, &KEY, &iv) == clear_stream,
            "{track} decrypts to the clear stream"
        );
        assert!(
            decrypt(format, &encrypted_stream, &WRONG_KEY, &iv) != clear_stream,
            "{track} does not decrypt with a wrong key"
        );
    }
}

/// FFmpeg's decoding of an elementary stream in `format` (`h264`, `adts`): the frames it
/// decoded and what it complained of.
pub(crate) fn decode(format: &str, stream: &[u8], folder: &Path) -> (usize, String) {
    let path = folder.join(format!("decrypted.{format}"));
    std::fs::write(&path, stream).expect("write the stream");
    let demuxer = if format == "h264" { "h264" } else { "aac" };
    let output = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", demuxer, "-i"])
        .arg(&path)
        .args(["-f", "framemd5", "-"])
        .output()
        .expect("run ffmpeg");
    let frames = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.starts_with('#'))
        .count();
    (frames, String::from_utf8_lossy(&output.stderr).into_owned())
}

/// An encoded (not copied) rendition, whose slices come from the encoder in Annex B, decrypts to
/// a stream FFmpeg decodes to every frame without a complaint; undecrypted, it does not decode
/// cleanly. (Encodes are not byte-reproducible, so there is no clear package to equal.)
#[test]
fn sample_aes_of_an_encoded_rendition_decrypts_to_a_clean_stream() {
    let (parent, key_arg) = key_in_temp();
    let key_arg = key_arg.as_str();
    let out = parent.path().join("encoded");
    let args = [
        "--reps",
        "90",
        "--segment-duration",
        "1",
        "--encrypt",
        "sample-aes",
        "--key-file",
        key_arg,
    ];
    cli::assert_success(&cli::package_showing("json", "hls", &media("tiny"), &out, &args));
    let iv = iv_of(&key_attributes(&out.join("90p").join("index.m3u8")));
    let encrypted = elementary_stream(&out.join("90p"));
    let (frames, complaints) = decode("h264", &decrypt_h264(&encrypted, &KEY, &iv), parent.path());
    assert_eq!((frames, complaints.as_str()), (75, ""), "3 s at 25 fps decode cleanly");
    let (_, complaints) = decode("h264", &encrypted, parent.path());
    assert!(!complaints.is_empty(), "the encrypted slices do not decode as they are");
}

/// `--clear-lead` is for cenc and cbcs: with SAMPLE-AES it is refused, never silently ignored.
#[test]
fn sample_aes_with_a_clear_lead_is_refused() {
    let parent = tempfile::tempdir().expect("a temporary folder");
    let out = parent.path().join("out");
    let args = ["--encrypt", "sample-aes", "--clear-lead", "1"];
    let line = cli::assert_failure(&cli::package("hls", &media("tiny"), &out, &args), 2);
    assert!(line.contains("clear") && line.contains("SAMPLE-AES"), "{line}");
    assert!(!out.exists(), "no package left");
}

/// SAMPLE-AES is for TS: fMP4 and DASH are refused with one line that says why.
#[test]
fn sample_aes_outside_ts_is_refused() {
    for (command, extra) in [("hls", &["--format", "fmp4"][..]), ("dash", &[][..])] {
        let parent = tempfile::tempdir().expect("a temporary folder");
        let args = [extra, &["--encrypt", "sample-aes"]].concat();
        let output = cli::package(command, &media("tiny"), &parent.path().join("out"), &args);
        let line = cli::assert_failure(&output, 2);
        assert!(line.contains("sample-aes") && line.contains("ts"), "{command}: {line}");
        assert!(!parent.path().join("out").exists(), "{command}: no package left");
    }
}

/// The segments of a track folder, in order.
fn segments_of(track: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(track)
        .expect("read the track folder")
        .map(|entry| entry.expect("folder entry").path())
        .filter(|path| {
            let name = path.file_name().expect("a file name").to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".ts")
        })
        .collect();
    segments.sort();
    segments
}

/// Each PMT section of a transport stream (H.222.0 §2.4.4.8) as its elementary streams'
/// stream_type and ES_info descriptors: what a SAMPLE-AES packager chooses, PIDs and CRC aside.
pub(crate) fn pmt_streams(ts: &[u8]) -> Vec<Vec<(u8, Vec<u8>)>> {
    ts.chunks(188)
        .map(ts_payload)
        .filter(|(pid, start, payload)| *pid != 0 && *start && payload[1 + usize::from(payload[0])] == 2)
        .map(|(_, _, payload)| {
            let pmt = &payload[1 + usize::from(payload[0])..];
            let end = 3 + usize::from(u16::from_be_bytes([pmt[1], pmt[2]]) & 0xfff) - 4;
            let mut at = 12 + usize::from(u16::from_be_bytes([pmt[10], pmt[11]]) & 0xfff);
            let mut streams = Vec::new();
            while at < end {
                let info_len = usize::from(u16::from_be_bytes([pmt[at + 3], pmt[at + 4]]) & 0xfff);
                streams.push((pmt[at], pmt[at + 5..at + 5 + info_len].to_vec()));
                at += 5 + info_len;
            }
            streams
        })
        .collect()
}

/// `ffprobe` (a path) on one file: the codec names and tags of its streams (listed under the
/// program too, once each here).
fn probe_codec(ffprobe: &Path, file: &Path) -> Vec<String> {
    let output = std::process::Command::new(ffprobe)
        .args([
            "-v",
            "quiet",
            "-show_entries",
            "stream=codec_name,codec_tag_string",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .expect("run ffprobe");
    let mut lines: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    lines.dedup();
    lines
}

/// Shaka Packager 3.8's transport streams of `source`'s video and audio, segment files v_N.ts and
/// a_N.ts in `dir` (made here), with `protection`'s options.
fn shaka_ts(source: &Path, dir: &Path, protection: &[&str]) {
    std::fs::create_dir(dir).expect("a folder for Shaka Packager");
    let streams = [("video", "v"), ("audio", "a")].map(|(stream, prefix)| {
        let template = dir.join(format!("{prefix}_$Number$.ts"));
        format!(
            "in={},stream={stream},segment_template={}",
            source.display(),
            template.display()
        )
    });
    let run = std::process::Command::new(tool("packager"))
        .args(streams)
        .args(protection)
        .args(["--segment_duration", "1"])
        .output()
        .expect("run Shaka Packager");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

/// Shaka Packager's SAMPLE-AES (`--protection_scheme cbcs` with TS output) under KEY and `iv`.
fn shaka_sample_aes(source: &Path, dir: &Path, iv: &[u8; 16]) {
    let key = crate::cenc::hex(&KEY);
    let keys = format!("label=:key_id={key}:key={key}");
    let iv = crate::cenc::hex(iv);
    let protection = [
        "--protection_scheme",
        "cbcs",
        "--enable_raw_key_encryption",
        "--keys",
        &keys,
    ];
    shaka_ts(
        source,
        dir,
        &[&protection[..], &["--iv", &iv, "--clear_lead", "0"]].concat(),
    );
}

/// The judge is sound: Shaka Packager's SAMPLE-AES segments, which this test's decryptor did not
/// see made, decrypt with it to the elementary streams of Shaka's clear segments of the same source.
#[test]
fn the_test_decryptor_turns_shaka_packagers_sample_aes_into_its_clear_streams() {
    let parent = tempfile::tempdir().expect("a temporary folder");
    let iv = [0x5a; 16];
    let (encrypted, clear) = (parent.path().join("encrypted"), parent.path().join("clear"));
    shaka_sample_aes(&media("tiny"), &encrypted, &iv);
    shaka_ts(&media("tiny"), &clear, &[]);
    for (prefix, format) in [("v_", "h264"), ("a_", "adts")] {
        let stream = |dir: &Path| -> Vec<Vec<u8>> {
            segments_of(dir, prefix)
                .iter()
                .map(|segment| ts_elementary_stream(&std::fs::read(segment).expect("read a segment")))
                .collect()
        };
        let (encrypted, clear) = (stream(&encrypted), stream(&clear));
        assert!(
            encrypted.len() >= 2 && encrypted.len() == clear.len(),
            "{format}: segments"
        );
        for (n, (encrypted, clear)) in encrypted.iter().zip(&clear).enumerate() {
            assert!(encrypted != clear, "{format} {n}: encrypted");
            assert!(
                decrypt(format, encrypted, &KEY, &iv) == *clear,
                "{format} {n}: decrypts to Shaka's clear stream"
            );
        }
    }
}

/// Every PMT of every segment signals the encrypted streams as Apple's spec does (0xdb with
/// 'zavc'; 0xcf with 'aacd' and the 'apad' audio setup information): the same stream types and
/// descriptors, byte for byte, as Shaka Packager writes for the same source; Debian's ffprobe and
/// FFmpeg 8.1's read them (a PMT whose CRC is wrong is dropped) as H.264 and AAC.
#[test]
fn sample_aes_pmts_signal_the_encryption_as_shaka_packager_does() {
    let (parent, key_arg) = key_in_temp();
    let key_arg = key_arg.as_str();
    let ours = package(
        parent.path(),
        "ours",
        &["--encrypt", "sample-aes", "--key-file", key_arg],
    );
    let shaka = parent.path().join("shaka");
    shaka_sample_aes(&media("tiny"), &shaka, &[0; 16]);
    let ffprobes = [PathBuf::from("ffprobe"), tool("ffprobe")];
    for ((track, _), (prefix, probed)) in TRACKS.iter().zip([("v_", "h264,[219][0][0][0]"), ("a_", "aac,apad")]) {
        let theirs = &pmt_streams(&std::fs::read(&segments_of(&shaka, prefix)[0]).expect("Shaka's segment"))[0];
        assert_eq!(theirs.len(), 1, "{track}: Shaka's PMT has one stream");
        for segment in segments_of(&ours.join(track), "segment") {
            let pmts = pmt_streams(&std::fs::read(&segment).expect("read a segment"));
            assert!(!pmts.is_empty(), "{}: a PMT", segment.display());
            assert!(
                pmts.iter().all(|pmt| pmt == theirs),
                "{}: {pmts:?} against {theirs:?}",
                segment.display()
            );
            for ffprobe in &ffprobes {
                assert_eq!(
                    probe_codec(ffprobe, &segment),
                    [probed],
                    "{}: {}",
                    ffprobe.display(),
                    segment.display()
                );
            }
        }
    }
}
