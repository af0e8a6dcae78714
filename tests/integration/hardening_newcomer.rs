//! Issue 20, items 11, 13, 14, 15, 16 and 18: the ladder at its edges, small truths of the CLI's
//! output, the mission's own command without `-o`, what the scripts install, and completions
//! and the manual page. Packages are judged with ffprobe and the tests' own playlist parser.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::cli::{self, FAST};
use crate::util::{ffprobe, file_names, http, m3u8, made_by_libav, media};

/// `ffmpeg -f lavfi -i testsrc2… -f lavfi -i sine… ARGS DIR/NAME`: a short H.264 + AAC source.
fn source(dir: &Path, name: &str, size: &str, seconds: u32, video_args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .args(video_args)
        .args(["-c:a", "aac"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {name}");
    path
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The frame size of the first video frame of a file, as ffprobe reads it.
fn frame_size(file: &Path) -> (u64, u64) {
    let probe = ffprobe::probe(
        &["-select_streams", "v:0", "-show_entries", "stream=width,height"],
        file,
    );
    let stream = &probe["streams"][0];
    (
        stream["width"].as_u64().expect("a width"),
        stream["height"].as_u64().expect("a height"),
    )
}

/// The first media segment of an HLS rendition folder.
fn first_segment(rendition: &Path) -> PathBuf {
    let name = file_names(rendition)
        .into_iter()
        .find(|name| name.ends_with(".ts"))
        .unwrap_or_else(|| panic!("no segment in {}", rendition.display()));
    rendition.join(name)
}

#[test]
fn item11_auto_ladder_on_a_source_between_rungs_adds_a_rung_at_the_source_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = source(dir.path(), "wide.mp4", "640x272", 2, &[]);
    let out = dir.path().join("out");
    let output = cli::hls(
        &input,
        &out,
        &[&FAST[..], &["--reps", "auto", "--segment-duration", "1"]].concat(),
    );
    cli::assert_success(&output);
    let master = m3u8::read_master(&out.join("master.m3u8"));
    let mut sizes: Vec<(u64, u64)> = master
        .variants
        .iter()
        .map(|variant| frame_size(&first_segment(&out.join(variant.uri.trim_end_matches("/index.m3u8")))))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    assert_eq!(
        sizes,
        [(550, 234), (640, 272)],
        "the 234p rung and one at the source's own size, nothing above it"
    );
}

#[test]
fn item11_two_pixel_rungs_are_made_or_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    for size in ["2x2", "16x9000"] {
        let input = source(dir.path(), &format!("{size}.mp4"), size, 1, &[]);
        let out = dir.path().join(format!("out-{size}"));
        let output = cli::hls(&input, &out, &[&FAST[..], &["--reps", "2"]].concat());
        if output.status.success() {
            let master = m3u8::read_master(&out.join("master.m3u8"));
            let rendition = master.variants[0].uri.trim_end_matches("/index.m3u8").to_owned();
            let (width, height) = frame_size(&first_segment(&out.join(rendition)));
            assert_eq!(width.min(height), 2, "{size}: the rung's short side is 2");
        } else {
            let error = cli::assert_failure(&output, 5);
            assert!(!error.contains("external library"), "{size}: {error}");
        }
    }
}

#[test]
fn item11_huge_rungs_and_bitrates_are_refused_with_the_usage_or_ladder_code() {
    let dir = tempfile::tempdir().unwrap();
    let input = media("main");
    let out = dir.path().join("out");
    for (reps, code) in [
        (&["--reps", "100000"][..], 2),
        (&["--reps", "100000", "--allow-upscale"][..], 2),
        (&["--reps", "1280x720@999999999k"][..], 2),
        (&["--reps", "8000", "--allow-upscale"][..], 5),
    ] {
        let error = cli::assert_failure(&cli::hls(&input, &out, reps), code);
        assert!(error.contains("8192") || error.contains("bitrate"), "{reps:?}: {error}");
        assert!(!out.exists(), "{reps:?} left {}", out.display());
    }
}

#[test]
fn item13_copy_of_a_source_with_one_keyframe_says_the_keyframes_decide() {
    let dir = tempfile::tempdir().unwrap();
    let input = source(
        dir.path(),
        "one-key.mp4",
        "320x180",
        4,
        &["-g", "1000", "-sc_threshold", "0"],
    );
    let out = dir.path().join("out");
    let output = cli::hls(&input, &out, &["--copy", "--segment-duration", "1"]);
    cli::assert_success(&output);
    cli::assert_says(
        &output,
        &["keyframes cannot honour --segment-duration"],
        "that one keyframe makes one segment",
    );
}

#[test]
fn item13_progress_json_counts_the_segments_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = [&FAST[..], &["--reps", "360", "--segment-duration", "1"]].concat();
    let output = cli::package_showing("json", "hls", &media("main"), &out, &args);
    cli::assert_success(&output);
    let reports: Vec<serde_json::Value> = text(&output.stderr)
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let last = reports.last().expect("progress lines on stderr");
    let written = ["360p", "audio"]
        .iter()
        .flat_map(|rendition| file_names(&out.join(rendition)))
        .filter(|name| name.ends_with(".ts"))
        .count();
    assert_eq!(last["stage"], "done");
    assert_eq!(last["segments"].as_u64(), Some(written as u64), "{last}");
}

#[test]
fn item13_an_error_says_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let output = cli::hls(&media("tiny"), &blocker.join("out"), &["--reps", "90"]);
    let error = cli::assert_failure(&output, 4);
    assert_eq!(error.matches("(os error").count(), 1, "{error}");
}

#[test]
fn item13_a_fifo_input_is_not_called_empty() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("input.mp4");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(made.success());
    let output = cli::run([Path::new("probe"), fifo.as_path()]);
    let error = cli::assert_failure(&output, 3);
    assert!(error.contains("FIFO") && !error.contains("empty"), "{error}");
}

#[test]
fn item13_warnings_and_notes_go_to_stderr_and_the_result_to_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let key_dir = out.join("keys");
    let key_dir = key_dir.to_str().unwrap();
    let output = cli::hls(
        &media("tiny"),
        &out,
        &["--reps", "90", "--encrypt", "--key-dir", key_dir],
    );
    cli::assert_success(&output);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        stderr.lines().any(|line| line.starts_with("warning:")),
        "no warning on stderr:\n{stderr}"
    );
    assert!(
        !stdout
            .lines()
            .any(|line| line.starts_with("warning:") || line.starts_with("note:")),
        "warnings or notes on stdout:\n{stdout}"
    );
    assert!(stdout.contains("package:"), "{stdout}");
}

#[test]
fn item13_convert_reads_a_url_input_as_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    std::fs::create_dir(&served).unwrap();
    made_by_libav(
        &media("short"),
        &served,
        &["-c", "copy", "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"],
        "index.m3u8",
    );
    let server = http::serve_dir(&served);
    let url = format!("{}/index.m3u8", server.base);
    let out = dir.path().join("out");
    let output = cli::run([
        "convert",
        &url,
        "--to",
        "dash",
        "-o",
        out.to_str().unwrap(),
        "--progress",
        "none",
    ]);
    cli::assert_success(&output);
    assert!(out.join("manifest.mpd").is_file());
}

/// `stream-pack COMMAND DIR/input.mp4 ARGS` with no `-o`.
fn without_output(command: &str, input: &Path, args: &[&str]) -> Output {
    let fixed = [command, input.to_str().unwrap(), "--progress", "none"];
    cli::run([&fixed[..], &FAST[..], args].concat())
}

#[test]
fn item14_hls_and_dash_without_output_write_beside_the_input_and_never_over_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.mp4");
    std::fs::copy(media("short"), &input).unwrap();
    let args = ["--reps", "360", "--segment-duration", "1"];
    for (command, folder, manifest) in [("hls", "input", "master.m3u8"), ("dash", "input-dash", "manifest.mpd")] {
        let output = without_output(command, &input, &args);
        cli::assert_success(&output);
        let made = dir.path().join(folder).join(manifest);
        assert!(made.is_file(), "{command}: no {}", made.display());
        assert!(
            text(&output.stdout).contains(&made.display().to_string()),
            "{command} does not say where the package is:\n{}",
            text(&output.stdout)
        );
        let before = std::fs::read(&made).unwrap();
        let again = without_output(command, &input, &args);
        let error = cli::assert_failure(&again, 4);
        assert!(error.contains("--force"), "{error}");
        assert_eq!(std::fs::read(&made).unwrap(), before, "{command}: the package changed");
    }
}

#[test]
fn item14_a_url_input_without_output_is_refused_naming_o() {
    for input in ["http://127.0.0.1:9/input.mp4", "s3://bucket/input.mp4"] {
        let output = cli::run(["hls", input, "--reps", "360", "--progress", "none"]);
        let error = cli::assert_failure(&output, 2);
        assert!(error.contains("-o") && error.contains(input), "{error}");
    }
}

/// The text of a script in scripts/ and of the scripts it runs with `source`, itself first.
fn sourced(script: &str) -> Vec<String> {
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut texts = vec![std::fs::read_to_string(scripts.join(script)).unwrap()];
    let mut next = 0;
    while next < texts.len() {
        let included: Vec<String> = texts[next]
            .lines()
            .filter_map(|line| line.trim().strip_prefix("source "))
            .map(|path| {
                let name = path.trim_matches('"').rsplit('/').next().unwrap_or_default();
                std::fs::read_to_string(scripts.join(name)).unwrap()
            })
            .collect();
        texts.extend(included);
        next += 1;
    }
    texts
}

#[test]
fn item15_the_demo_installs_only_what_it_runs() {
    let demo = sourced("demo.sh").concat();
    for unused in ["chromium", "nginx", "npm", "garage"] {
        assert!(
            !demo.contains(unused),
            "scripts/demo.sh (or what it sources) installs {unused}"
        );
    }
    let test = sourced("test.sh").concat();
    for needed in ["chromium", "nginx", "npm ci", "garage"] {
        assert!(test.contains(needed), "scripts/test.sh no longer installs {needed}");
    }
}

#[test]
fn item16_garage_is_built_with_only_what_the_tests_use() {
    let test = sourced("test.sh").concat();
    let install = test
        .lines()
        .find(|line| line.contains("cargo install garage"))
        .expect("scripts/test.sh installs Garage");
    assert!(
        install.contains("--no-default-features") && install.contains("sqlite"),
        "Garage is built with every default feature: {install}"
    );
    assert!(
        include_str!("util/garage.rs").contains(r#"db_engine = "sqlite""#),
        "the tests' Garage must use the one database engine it is built with"
    );
}

#[test]
fn item18_bash_completion_is_valid_and_completes_subcommands() {
    let output = cli::run(["completions", "bash"]);
    cli::assert_success(&output);
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("stream-pack.bash");
    std::fs::write(&script, &output.stdout).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&script).status().unwrap();
    assert!(syntax.success(), "bash -n refuses the completion script");
    let complete = |line: &str| -> String {
        let words: Vec<&str> = line.split(' ').collect();
        let program = format!(
            r#"source {script}
function=$(complete -p stream-pack | sed -E 's/.*-F ([^ ]+).*/\1/')
COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT={point}
"$function" stream-pack '{current}' '{previous}'
printf '%s\n' "${{COMPREPLY[@]}}""#,
            script = script.display(),
            words = words.iter().map(|w| format!("'{w}'")).collect::<Vec<_>>().join(" "),
            cword = words.len() - 1,
            point = line.len(),
            current = words[words.len() - 1],
            previous = words[words.len() - 2],
        );
        let run = Command::new("bash").arg("-c").arg(program).output().unwrap();
        assert!(run.status.success(), "{}", text(&run.stderr));
        text(&run.stdout)
    };
    let commands = complete("stream-pack ");
    for command in [
        "hls",
        "dash",
        "probe",
        "convert",
        "remux",
        "inspect",
        "record",
        "completions",
        "man",
    ] {
        assert!(commands.lines().any(|w| w == command), "no {command} in:\n{commands}");
    }
    let options = complete("stream-pack hls --");
    assert!(options.lines().any(|w| w == "--reps"), "no --reps in:\n{options}");
}

#[test]
fn item18_man_page_renders_and_names_every_subcommand() {
    let output = cli::run(["man"]);
    cli::assert_success(&output);
    let page = text(&output.stdout).replace("\\-", "-");
    assert!(page.contains(".TH"), "no .TH in the page");
    let help = text(&cli::run(["--help"]).stdout);
    let subcommands: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(subcommands.len() >= 10, "{help}");
    for name in subcommands {
        assert!(page.contains(name), "the page does not name {name}");
    }
    // As `man -l -` renders it: groff on stdin, every warning on.
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run groff (scripts/setup-tests.sh installs it)");
    groff.stdin.take().unwrap().write_all(&output.stdout).unwrap();
    let rendered = groff.wait_with_output().unwrap();
    assert!(
        rendered.status.success() && rendered.stderr.is_empty(),
        "groff: {}",
        text(&rendered.stderr)
    );
}
