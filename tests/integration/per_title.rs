//! `--ladder-mode per-title`: the ladder chosen for each title by a probe before encoding.
//!
//! The titles are generated here, 7 s of 320x180 (the probe needs 6 s at least): a static slide
//! (easy), `testsrc2` (animation-like) and `testsrc2` under strong temporal noise (hard). The
//! ladder file has two small rungs with a quality target each. What each package reaches is
//! judged by ffmpeg's psnr filter against the source scaled to the rung's size with one
//! reference scaler (bicubic), and its bits by the check helpers' payload rates, measured from
//! the segments; the package passes the HLS checks every package passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

use crate::hls::check::{self, Expect, Package, Segments};
use crate::util::cli;

/// The quality target of both rungs of `LADDER`, dB of Y PSNR.
const TARGET: f64 = 38.0;

/// How far below its target a rung may land: the probe samples 4 windows of the title at a
/// faster preset, and the real run encodes all of it under the rung's VBV bounds.
const TOLERANCE: f64 = 0.5;

const LADDER: &str = r#"
[[rung]]
height = 180
video_bitrate = "400k"
quality_target = 38.0

[[rung]]
height = 120
video_bitrate = "200k"
quality_target = 38.0
"#;

const RUNGS: [(u32, u32); 2] = [(320, 180), (214, 120)];

/// A title of each kind, generated once per test run.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Slides,
    Animation,
    Noise,
}

impl Kind {
    fn filter(self) -> &'static str {
        match self {
            Kind::Slides => "testsrc=s=320x180:r=25:d=1,trim=end_frame=1,loop=loop=-1:size=1,trim=duration=7",
            Kind::Animation => "testsrc2=s=320x180:r=25:d=7",
            Kind::Noise => "testsrc2=s=320x180:r=25:d=7,noise=alls=20:allf=t",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The folder the titles and the ladder file live in, for the whole test run.
fn media_dir() -> &'static Path {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        std::fs::write(dir.path().join("ladder.toml"), LADDER).expect("write the ladder file");
        dir
    })
    .path()
}

fn ladder_file() -> PathBuf {
    media_dir().join("ladder.toml")
}

/// The title of `kind`: H.264 at CRF 12, near enough to lossless for PSNR up to the 40s.
fn title(kind: Kind) -> &'static Path {
    static TITLES: [OnceLock<PathBuf>; 3] = [const { OnceLock::new() }; 3];
    TITLES[kind.index()].get_or_init(|| {
        let path = media_dir().join(format!("title{}.mp4", kind.index()));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i", kind.filter()])
            .args([
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "12",
            ])
            .arg(&path)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg could not make the {} title", kind.index());
        path
    })
}

/// A package and what its run said.
struct Run {
    _dir: TempDir,
    out: PathBuf,
    output: Output,
}

impl Run {
    /// The ladder of the `done` progress report, which `--progress json` prints on stderr.
    fn ladder(&self) -> Value {
        let stderr = String::from_utf8_lossy(&self.output.stderr);
        let done = stderr
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|report| report["stage"] == "done")
            .expect("a done report");
        done["ladder"].clone()
    }

    /// The sizes of the rungs the run's report says the package holds (the choice may drop
    /// some, or encode one at the size of the rung above), the top one first, which it must hold.
    fn kept(&self) -> Vec<(u32, u32)> {
        self.kept_candidates().into_iter().map(|(_, size)| size).collect()
    }

    /// `kept` with the name of the ladder's rung each one was chosen for.
    fn kept_candidates(&self) -> Vec<(String, (u32, u32))> {
        let ladder = self.ladder();
        let kept: Vec<(String, (u32, u32))> = ladder["rungs"]
            .as_array()
            .expect("rungs")
            .iter()
            .filter(|rung| rung["decision"]["kind"] != "dropped")
            .map(|rung| {
                let name = rung["name"].as_str().expect("a rung name").to_owned();
                (name, (size_of(&rung["width"]), size_of(&rung["height"])))
            })
            .collect();
        assert_eq!(
            kept.first().map(|(_, size)| size),
            Some(&RUNGS[0]),
            "the top rung is missing"
        );
        kept
    }

    /// The folder of each of `rungs`: named after the size's short side, and when two rungs share
    /// a size, with each one's bitrate after it (`180p_400k`), the costlier first as in `kept`.
    fn folders(&self, rungs: &[(u32, u32)]) -> Vec<String> {
        let mut shared: Vec<(u64, String)> = Vec::new();
        rungs
            .iter()
            .map(|&size| {
                let base = check::rung_dir(size);
                if rungs.iter().filter(|&&other| other == size).count() == 1 {
                    return base;
                }
                if !shared.iter().any(|(_, dir)| dir.starts_with(&format!("{base}_"))) {
                    shared.extend(self.folders_with_bitrates(&base));
                }
                let at = shared
                    .iter()
                    .position(|(_, dir)| dir.starts_with(&format!("{base}_")))
                    .unwrap_or_else(|| panic!("no folder left for a second {base} rung"));
                shared.remove(at).1
            })
            .collect()
    }

    /// The folders `BASE_<kb/s>k` of the package, the costliest first.
    fn folders_with_bitrates(&self, base: &str) -> Vec<(u64, String)> {
        let mut found: Vec<(u64, String)> = std::fs::read_dir(&self.out)
            .expect("list the package")
            .map(|entry| {
                entry
                    .expect("a folder entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter_map(|name| {
                let kbps = name
                    .strip_prefix(&format!("{base}_"))?
                    .strip_suffix('k')?
                    .parse()
                    .ok()?;
                Some((kbps, name))
            })
            .collect();
        found.sort_by(|a, b| b.cmp(a));
        found
    }

    fn checked(&self, kind: Kind, rungs: &[(u32, u32)]) -> Package {
        check::check_package_in(
            &self.out,
            &Expect {
                source: title(kind),
                segment_duration: 2.0,
                rungs,
                audio: false,
                segments: Segments::TS,
            },
            &self.folders(rungs),
        )
    }
}

fn size_of(value: &Value) -> u32 {
    value.as_u64().and_then(|v| u32::try_from(v).ok()).expect("a size")
}

fn package(kind: Kind, extra: &[&str]) -> Run {
    package_with("hls", &ladder_file(), kind, extra)
}

/// `stream-pack COMMAND TITLE --segment-duration 2 --ladder LADDER EXTRA` with `--progress json`.
fn package_with(command: &str, ladder: &Path, kind: Kind, extra: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let out = dir.path().join("out");
    let mut args = vec!["--segment-duration", "2", "--ladder", ladder.to_str().unwrap()];
    args.extend(extra);
    let output = cli::package_showing("json", command, title(kind), &out, &args);
    cli::assert_success(&output);
    Run { _dir: dir, out, output }
}

/// The per-title package of each kind, made once.
fn per_title(kind: Kind) -> &'static Run {
    static RUNS: [OnceLock<Run>; 3] = [const { OnceLock::new() }; 3];
    RUNS[kind.index()].get_or_init(|| package(kind, &["--ladder-mode", "per-title"]))
}

/// Y PSNR of a rendition against the source, both scaled to `size` by ffmpeg's bicubic scaler
/// (a rendition of that size is left as it is; a smaller one is upscaled as a player would).
fn psnr(rendition: &Path, source: &Path, (width, height): (u32, u32)) -> f64 {
    let graph = format!(
        "[0:v]setpts=PTS-STARTPTS,scale={width}:{height}:flags=bicubic[coded];\
         [1:v]setpts=PTS-STARTPTS,scale={width}:{height}:flags=bicubic[reference];[coded][reference]psnr"
    );
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-i"])
        .arg(rendition)
        .arg("-i")
        .arg(source)
        .args(["-lavfi", &graph, "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let y = stderr
        .rsplit(" y:")
        .next()
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok());
    y.unwrap_or_else(|| panic!("no PSNR from ffmpeg:\n{stderr}"))
}

fn total_payload_bitrate(package: &Package) -> f64 {
    package.video.iter().map(|rendition| rendition.payload_bitrate()).sum()
}

#[test]
fn an_easy_title_gets_fewer_bits_than_the_fixed_ladder_and_still_reaches_its_targets() {
    let chosen = per_title(Kind::Slides);
    let kept = chosen.kept();
    let per_title = chosen.checked(Kind::Slides, &kept);
    let fixed = package(Kind::Slides, &["--no-passthrough-top"]).checked(Kind::Slides, &RUNGS);
    let (chosen_bits, fixed_bits) = (total_payload_bitrate(&per_title), total_payload_bitrate(&fixed));
    assert!(
        chosen_bits < 0.7 * fixed_bits,
        "per-title spends {chosen_bits:.0} b/s on the slides, the fixed ladder {fixed_bits:.0}: not 30% fewer"
    );
    for (size, folder) in kept.iter().zip(chosen.folders(&kept)) {
        let size = *size;
        let rendition = chosen.out.join(folder).join("index.m3u8");
        let quality = psnr(&rendition, title(Kind::Slides), size);
        assert!(
            quality >= TARGET - TOLERANCE,
            "the {size:?} rung reaches {quality:.2} dB, below its {TARGET} dB target"
        );
    }
}

#[test]
fn a_hard_title_gets_more_bits_than_an_easy_one_at_each_rung() {
    let easy = payload_bitrates(per_title(Kind::Slides), Kind::Slides);
    let hard = payload_bitrates(per_title(Kind::Noise), Kind::Noise);
    let mut compared = 0;
    for (rung, easy_bits) in &easy {
        let Some((_, hard_bits)) = hard.iter().find(|(other, _)| other == rung) else {
            continue;
        };
        assert!(
            *hard_bits > 2.0 * easy_bits,
            "{rung}: the noisy title gets {hard_bits:.0} b/s, the slide {easy_bits:.0}"
        );
        compared += 1;
    }
    assert!(compared >= 1, "no rung kept in both ladders: {easy:?} {hard:?}");
}

#[test]
fn a_rung_the_larger_picture_beats_at_its_rate_is_encoded_at_that_size() {
    // Under heavy noise the probe finds 120p upscaled worse than 180p at 120p's 200 kb/s (and
    // the top rung raised to its maxrate), so that rate is spent on a 180p picture.
    let run = per_title(Kind::Noise);
    let resized = &run.ladder()["rungs"][1];
    assert_eq!(resized["name"], "120p", "{resized}");
    assert_eq!(resized["decision"]["kind"], "resized", "{resized}");
    assert_eq!(resized["decision"]["to"], "180p", "{resized}");
    let sizes = run.kept();
    assert_eq!(sizes, [RUNGS[0], RUNGS[0]]);
    let folders = run.folders(&sizes);
    let bits = payload_bitrates(run, Kind::Noise);
    let fixed = package(Kind::Noise, &["--no-passthrough-top"]);
    let fixed_120p = &fixed.checked(Kind::Noise, &RUNGS).video[1];
    let source = title(Kind::Noise);
    let mine = psnr(&run.out.join(&folders[1]).join("index.m3u8"), source, RUNGS[0]);
    let theirs = psnr(&fixed.out.join(&fixed_120p.dir).join("index.m3u8"), source, RUNGS[0]);
    assert!(
        bits[1].1 <= 1.15 * fixed_120p.payload_bitrate(),
        "the resized rung spends {:.0} b/s, the fixed 120p {:.0}",
        bits[1].1,
        fixed_120p.payload_bitrate()
    );
    assert!(
        mine > theirs,
        "at 320x180 the resized rung gives {mine:.2} dB, the fixed 120p upscaled {theirs:.2}"
    );
}

/// The payload bitrate of each kept rung of a checked package, by the ladder rung it was chosen
/// for (a rung encoded at the size of the one above is still the smaller rung's choice).
fn payload_bitrates(run: &Run, kind: Kind) -> Vec<(String, f64)> {
    let candidates = run.kept_candidates();
    let sizes: Vec<(u32, u32)> = candidates.iter().map(|(_, size)| *size).collect();
    let package = run.checked(kind, &sizes);
    candidates
        .into_iter()
        .zip(run.folders(&sizes))
        .map(|((name, _), folder)| {
            let rendition = package
                .video
                .iter()
                .find(|r| r.dir == folder)
                .expect("a checked rendition");
            (name, rendition.payload_bitrate())
        })
        .collect()
}

#[test]
fn the_chosen_ladder_is_the_same_from_run_to_run() {
    let chosen = |run: &Run| -> Vec<(Value, Value, Value)> {
        let ladder = run.ladder();
        let rungs = ladder["rungs"].as_array().expect("rungs").clone();
        rungs
            .iter()
            .map(|rung| {
                (
                    rung["name"].clone(),
                    rung["chosen_bitrate"].clone(),
                    rung["crf"].clone(),
                )
            })
            .collect()
    };
    let first = chosen(per_title(Kind::Animation));
    let second = chosen(&package(Kind::Animation, &["--ladder-mode", "per-title"]));
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first.iter().all(|(_, bitrate, crf)| bitrate.is_u64() && crf.is_f64()),
        "{first:?}"
    );
    assert_eq!(first, second);
}

#[test]
fn a_dropped_rung_is_explained_and_left_out() {
    // 176p asks for far more quality than 180p: it would need more bits than the larger rung.
    let ladder = media_dir().join("dropping.toml");
    std::fs::write(
        &ladder,
        "[[rung]]\nheight = 180\nvideo_bitrate = \"400k\"\nquality_target = 34.0\n\
         [[rung]]\nheight = 176\nvideo_bitrate = \"2M\"\nquality_target = 46.0\n",
    )
    .expect("write the ladder file");
    let run = package_with("hls", &ladder, Kind::Animation, &["--ladder-mode", "per-title"]);
    cli::assert_says(
        &run.output,
        &["176p", "dropped", "not less than the 180p"],
        "why 176p was dropped",
    );
    let dropped = &run.ladder()["rungs"][1];
    assert_eq!(dropped["name"], "176p");
    assert_eq!(dropped["decision"]["kind"], "dropped");
    run.checked(Kind::Animation, &[(320, 180)]);
    assert!(!run.out.join("176p").exists(), "the dropped rung was written");
}

#[test]
fn a_title_too_short_to_sample_keeps_the_fixed_ladder_with_a_note() {
    let short = crate::util::media("short");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let output = cli::hls(
        &short,
        &dir.path().join("out"),
        &["--ladder-mode", "per-title", "--reps", "auto"],
    );
    cli::assert_success(&output);
    cli::assert_says(
        &output,
        &["per-title", "too short to sample"],
        "that the probe was skipped",
    );
}

#[test]
fn per_title_is_refused_where_it_cannot_choose_the_ladder() {
    let source = title(Kind::Animation);
    let cases: [(&[&str], &str); 5] = [
        (&["--reps", "180"], "list of reps"),
        (&["--copy"], "copy"),
        (&["--passthrough-top"], "passthrough_top"),
        (&["--live"], "live"),
        (&["--format", "fmp4", "--codec", "vp9"], "h264"),
    ];
    for (extra, named) in cases {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let mut args = vec!["--ladder-mode", "per-title"];
        args.extend(extra);
        let output = cli::hls(source, &dir.path().join("out"), &args);
        let line = cli::assert_failure(&output, 2);
        assert!(line.contains("per-title") && line.contains(named), "{extra:?}: {line}");
        assert!(!dir.path().join("out").exists(), "{extra:?} wrote a package");
    }
}

#[test]
fn a_per_title_dash_package_passes_the_dash_checks() {
    // Animation keeps its rungs' sizes; under noise the 120p rung is encoded at 180p, beside
    // the top rung of that size.
    for kind in [Kind::Animation, Kind::Noise] {
        let run = package_with("dash", &ladder_file(), kind, &["--ladder-mode", "per-title"]);
        let kept = run.kept();
        let expect = Expect {
            source: title(kind),
            segment_duration: 2.0,
            rungs: &kept,
            audio: false,
            segments: Segments::FMP4,
        };
        crate::dash::check::check_package_in(&run.out, &expect, false, &run.folders(&kept));
    }
}
