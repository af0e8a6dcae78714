//! The table of hostile cases in docs/hostile-cases.md, run as written: each row's command,
//! its exit status and a phrase of its one-line error. The document is the test's data, so
//! the table cannot drift from what the binary does.
//!
//! Placeholders in a command: `$DIR` is a fresh folder for the row (its OUT's parent), `$OUT`
//! is `$DIR/out`, `$TINY` and `$MAIN` are test sources, `$FIXTURES` is the repository's
//! fixtures/ folder, and `$EMPTY`, `$TEXT`, `$NOISE`, `$TRUNC` and `$COPY` are hostile
//! inputs made in `$DIR` (see `prepare`); the message may name them too. A failing row must also leave `$DIR` as it found it:
//! no package, no staging folder, no key file, and its inputs untouched.

use crate::util::{cli, file_names, media};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TABLE: &str = include_str!("../../docs/hostile-cases.md");

/// One row of the table.
struct Case {
    number: String,
    what: String,
    command: String,
    exit: i32,
    says: String,
}

fn cases() -> Vec<Case> {
    TABLE
        .lines()
        .filter(|line| line.starts_with("| ") && line.contains("| `stream-pack "))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
            let [number, what, command, exit, says] = cells[..] else {
                panic!("a row of docs/hostile-cases.md has not five cells: {line}");
            };
            Case {
                number: number.to_owned(),
                what: what.to_owned(),
                command: command.trim_matches('`').to_owned(),
                exit: exit
                    .parse()
                    .unwrap_or_else(|_| panic!("row {number}: exit `{exit}` is not a number")),
                says: says.trim_matches('`').to_owned(),
            }
        })
        .collect()
}

/// The hostile inputs a row may name, made in the row's own folder.
fn prepare(dir: &Path) -> BTreeMap<&'static str, PathBuf> {
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write a hostile input");
        path
    };
    let main = std::fs::read(media("main")).expect("read the main source");
    let noise: Vec<u8> = (0u32..65536)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    BTreeMap::from([
        ("$EMPTY", write("empty.mp4", b"")),
        ("$TEXT", write("text.mp4", b"this is not media\n")),
        ("$NOISE", write("noise.mp4", &noise)),
        ("$TRUNC", write("trunc.mp4", &main[..main.len() / 2])),
        ("$COPY", {
            let copy = dir.join("tiny.mp4");
            std::fs::copy(media("tiny"), &copy).expect("copy the tiny source");
            copy
        }),
        ("$TINY", media("tiny")),
        ("$MAIN", media("main")),
        ("$FIXTURES", Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")),
    ])
}

/// `text` with its placeholders filled in.
fn filled(text: &str, dir: &Path, inputs: &BTreeMap<&str, PathBuf>) -> String {
    let mut text = text.replace("$OUT", &dir.join("out").to_string_lossy());
    text = text.replace("$DIR", &dir.to_string_lossy());
    for (name, path) in inputs {
        text = text.replace(name, &path.to_string_lossy());
    }
    text
}

#[test]
fn every_hostile_case_of_the_table_exits_as_documented() {
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "the table has {} cases; the issue asks for 40",
        cases.len()
    );
    let mut wrong = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().expect("create a temporary folder");
        let inputs = prepare(dir.path());
        let before = file_names(dir.path());
        let command = filled(&case.command, dir.path(), &inputs);
        let output = cli::run(command.split_whitespace().skip(1));
        let says = filled(&case.says, dir.path(), &inputs).to_lowercase();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        let code = output.status.code();
        let one_line = stderr.lines().count() == 1 && stderr.starts_with("error:");
        let left = file_names(dir.path());
        let problem = if code != Some(case.exit) {
            Some(format!("exit {code:?}, documented {}", case.exit))
        } else if case.exit != 0 && !one_line {
            Some("stderr is not one `error:` line".to_owned())
        } else if !stderr.to_lowercase().contains(&says) {
            Some(format!("the message does not say `{says}`"))
        } else if case.exit != 0 && left != before {
            Some(format!("left {left:?} where there was {before:?}"))
        } else if std::fs::read(&inputs["$COPY"]).ok() != std::fs::read(media("tiny")).ok() {
            Some("the copy of the input in $DIR was changed".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            wrong.push(format!(
                "#{} {}: {problem}; stderr: {}",
                case.number,
                case.what,
                stderr.trim()
            ));
        }
    }
    assert!(wrong.is_empty(), "rows that do not hold:\n{}", wrong.join("\n"));
}
