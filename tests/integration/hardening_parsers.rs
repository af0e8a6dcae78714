//! Issue 20, the parsers: fuzz findings kept under `fixtures/fuzz/` as regression inputs, CMAF
//! media segments and memory that stays flat however many boxes a file has, and the small
//! hand-made inputs of `fixtures/`.

use crate::util::cli;
use std::path::{Path, PathBuf};

/// A file or folder under the repository's `fixtures/`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

/// The files kept under `fixtures/fuzz/<target>/`.
fn fuzz_findings(target: &str) -> Vec<PathBuf> {
    let dir = fixture("fuzz").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// The command that reads what a fuzz target reads: `unframe` for the websocket framing,
/// `inspect` for FLV, AMF0 (inside FLV script tags) and ISO-BMFF.
fn run_finding(target: &str, file: &Path, dir: &Path) -> std::process::Output {
    if target == "framing" {
        let out = dir.join("out.mp4");
        cli::run(["unframe".as_ref(), file.as_os_str(), "-o".as_ref(), out.as_os_str()])
    } else {
        cli::run(["inspect".as_ref(), file.as_os_str()])
    }
}

#[test]
fn item07_every_fuzz_finding_is_an_input_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for target in ["amf0", "bmff_boxes", "flv_tags", "framing", "inspect"] {
        for file in fuzz_findings(target) {
            let output = run_finding(target, &file, dir.path());
            // Bad input is exit 3 with one `error:` line, never a panic (101).
            let error = cli::assert_failure(&output, 3);
            let name = file.file_name().unwrap().to_string_lossy();
            assert!(error.contains(&*name), "{target}/{name}: {error}");
            ran += 1;
        }
    }
    assert!(ran > 0, "fixtures/fuzz holds the findings");
}

#[test]
fn item07_decode_time_overflow_is_a_problem_named_not_a_wrapped_time() {
    let file = fixture("fuzz/inspect/inspect-overflow.mp4");
    let output = cli::run(["inspect".as_ref(), file.as_os_str(), "--problems".as_ref()]);
    cli::assert_failure(&output, 3);
    let problems = String::from_utf8_lossy(&output.stdout);
    assert!(
        problems
            .lines()
            .any(|p| p.contains("passes 2^64") || p.contains("past 64 bits")),
        "the overflow is named: {problems}"
    );
}
