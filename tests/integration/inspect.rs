//! `inspect`: files made by libav, clean and with problems put in by hand (bytes edited at
//! places found with mp4-atom and the tests' FLV walker), listed and diagnosed.

use crate::util::{bmff, capture, cli, ffprobe, flv, media};
use mp4_atom::FourCC;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// `stream-pack inspect FILE --json`: the run and its parsed report.
fn inspect(file: &Path) -> (Output, Value) {
    let output = cli::run(["inspect".as_ref(), file.as_os_str(), "--json".as_ref()]);
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("inspect prints JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    (output, report)
}

fn names<'a>(report: &'a Value, name: &str) -> Vec<&'a Value> {
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == name)
        .collect()
}

fn problems(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// Asserts the run found problems: exit 3, one `error:` line; and that one of them has every
/// word of each of `expected`.
fn assert_problems(output: &Output, report: &Value, expected: &[&[&str]]) {
    let error = cli::assert_failure(output, 3);
    assert!(error.contains("problem"), "{error}");
    let found = problems(report);
    for words in expected {
        assert!(
            found.iter().any(|p| words.iter().all(|w| p.contains(w))),
            "no problem says {words:?}: {found:?}"
        );
    }
}

#[test]
fn a_clean_fragmented_mp4_lists_its_boxes_and_no_problem() {
    let source = capture::fragmented_source();
    let (output, report) = inspect(&source);
    cli::assert_success(&output);
    assert_eq!(report["format"], "mp4");
    assert!(problems(&report).is_empty());
    let moofs = bmff::top_level_kinds(&source)
        .iter()
        .filter(|k| **k == FourCC::new(b"moof"))
        .count();
    assert_eq!(names(&report, "moof").len(), moofs);
    assert_eq!(names(&report, "tfdt").len(), 2 * moofs, "a tfdt per track per fragment");
    assert!(names(&report, "moof").iter().all(|e| e["depth"] == 0));
    assert!(names(&report, "mfhd").iter().all(|e| e["depth"] == 1));
}

/// The file offset of the first `kind` box inside the `n`th top-level box of type `parent`.
fn offset_in(file: &Path, parent: &[u8; 4], n: usize, kind: &[u8; 4]) -> usize {
    let boxes = bmff::split(file);
    let mut at = 0;
    let mut seen = 0;
    for (box_kind, bytes) in &boxes {
        if *box_kind == FourCC::new(parent) {
            if seen == n {
                let inside = bytes.windows(4).position(|w| w == kind).expect("the box inside") - 4;
                return at + inside;
            }
            seen += 1;
        }
        at += bytes.len();
    }
    panic!("no {n}th box");
}

#[test]
fn sequence_gaps_missing_tfdt_and_time_jumps_are_found() {
    let source = capture::fragmented_source();
    let mut bytes = std::fs::read(&source).unwrap();
    // The second fragment's mfhd sequence number (after size, type, version and flags) to 9.
    let mfhd = offset_in(&source, b"moof", 1, b"mfhd");
    bytes[mfhd + 12..mfhd + 16].copy_from_slice(&9u32.to_be_bytes());
    // The third fragment's first tfdt renamed: its traf has none.
    let tfdt = offset_in(&source, b"moof", 2, b"tfdt");
    bytes[tfdt + 4..tfdt + 8].copy_from_slice(b"free");
    // The fifth fragment's first tfdt (version 1: a 64-bit time) moved on by 12800 ticks.
    let tfdt = offset_in(&source, b"moof", 4, b"tfdt");
    assert_eq!(bytes[tfdt + 8], 1, "a version 1 tfdt");
    let time = u64::from_be_bytes(bytes[tfdt + 12..tfdt + 20].try_into().unwrap()) + 12800;
    bytes[tfdt + 12..tfdt + 20].copy_from_slice(&time.to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("edited.mp4");
    std::fs::write(&edited, bytes).unwrap();
    let (output, report) = inspect(&edited);
    assert_problems(
        &output,
        &report,
        &[&["mfhd sequence 9 after 1"], &["has no tfdt"], &["jump of 1.000 s"]],
    );
}

#[test]
fn a_truncated_mp4_is_reported() {
    let source = capture::fragmented_source();
    let bytes = std::fs::read(&source).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() - 1000]).unwrap();
    let (output, report) = inspect(&cut);
    assert_problems(&output, &report, &[&["mdat", "truncated"]]);
}

/// `main` as one FLV made by libav.
fn flv_of_main(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("main.flv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(media("main"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    path
}

#[test]
fn a_clean_flv_lists_its_tags_and_no_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = flv_of_main(dir.path());
    let (output, report) = inspect(&file);
    cli::assert_success(&output);
    assert_eq!(report["format"], "flv");
    let packets = ffprobe::tracks(&file);
    let video_packets = packets
        .iter()
        .find(|t| t.stream["codec_type"] == "video")
        .unwrap()
        .packets
        .len();
    // Each packet, plus the sequence header and libav's end-of-sequence tag.
    assert_eq!(names(&report, "video").len(), video_packets + 2);
    assert_eq!(names(&report, "script").len(), 1);
}

#[test]
fn previous_tag_size_mismatches_and_naive_joins_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let file = flv_of_main(dir.path());
    let mut bytes = std::fs::read(&file).unwrap();
    let tags = flv::read(&file).tags;
    let fifth = &tags[4];
    let after = fifth.offset + 11 + fifth.payload.len();
    bytes[after + 3] ^= 0x55;
    let edited = dir.path().join("edited.flv");
    std::fs::write(&edited, &bytes).unwrap();
    let (output, report) = inspect(&edited);
    assert_problems(
        &output,
        &report,
        &[&[&format!("tag at byte {}: PreviousTagSize", fifth.offset)]],
    );

    // The ustream-dl way: the second file's header dropped, its tags appended as they are.
    let original = std::fs::read(&file).unwrap();
    let naive = dir.path().join("naive.flv");
    std::fs::write(&naive, [&original[..], &original[13..]].concat()).unwrap();
    let (output, report) = inspect(&naive);
    assert_problems(
        &output,
        &report,
        &[
            &["video timestamp goes back"],
            &["audio timestamp goes back"],
            &["2 onMetaData tags"],
        ],
    );
}

#[test]
fn a_file_that_is_neither_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello, world\n").unwrap();
    let output = cli::run(["inspect".as_ref(), text.as_os_str()]);
    let error = cli::assert_failure(&output, 3);
    assert!(error.contains("notes.txt") && error.contains("neither"), "{error}");
}
