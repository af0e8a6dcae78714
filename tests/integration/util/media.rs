//! Test sources, generated once with the ffmpeg CLI into `target/tmp/test-media/`.
//!
//! Every source is H.264 yuv420p (+ AAC stereo) made from `testsrc2` and `sine`. The
//! source GOP is 37 frames with scene-cut detection left on, so source keyframes do not
//! fall on any segment grid: the product has to place its own IDRs.
//!
//! A file's name carries a hash of its recipe: a changed recipe makes a new file, and an
//! unchanged one is reused across runs. Files are written under a temporary name and
//! renamed, so concurrent test threads or processes never see a partial file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const NAMES: [&str; 10] = [
    "main",
    "ntsc",
    "odd",
    "sar",
    "silent",
    "audio_only",
    "portrait",
    "tiny",
    "short",
    "small",
];

static READY: [OnceLock<PathBuf>; NAMES.len()] = [const { OnceLock::new() }; NAMES.len()];

/// Path of the named test source, generating it on first use:
///
/// - `main`: 640x360 25 fps 8 s, AAC 48 kHz stereo
/// - `ntsc`: 640x360 30000/1001 fps 7 s, AAC 44.1 kHz stereo
/// - `odd`: 638x358 square pixels 25 fps 4 s, AAC 48 kHz
/// - `sar`: 480x360 with SAR 4:3 (displayed 640x360) 25 fps 4 s, AAC 48 kHz
/// - `silent`: 640x360 25 fps 4 s, no audio
/// - `audio_only`: AAC 44.1 kHz stereo 5 s in .m4a
/// - `portrait`: 640x360 frames with a 90° display rotation (shown 360x640) 25 fps 4 s, AAC 48 kHz
/// - `tiny`: 160x90 25 fps 3 s, AAC 48 kHz
/// - `short`: 640x360 25 fps 2 s, AAC 44.1 kHz with the language tag `eng`
/// - `small`: 320x180 25 fps 8 s, AAC 48 kHz
pub fn media(name: &str) -> PathBuf {
    let index = NAMES
        .iter()
        .position(|known| *known == name)
        .unwrap_or_else(|| panic!("unknown test media {name:?}; known: {NAMES:?}"));
    READY[index].get_or_init(|| generate(name)).clone()
}

/// ffmpeg invocations making one source: the first from lavfi, each later one remuxing
/// the previous step's output (given to it as its input).
struct Recipe {
    extension: &'static str,
    steps: Vec<Vec<String>>,
}

fn recipe(name: &str) -> Recipe {
    let (extension, first) = match name {
        "main" => ("mp4", av("640x360", "25", "", 48000, 8)),
        "ntsc" => ("mp4", av("640x360", "30000/1001", "", 44100, 7)),
        "odd" => ("mp4", av("638x358", "25", ",setsar=1", 48000, 4)),
        "sar" => ("mp4", av("480x360", "25", ",setsar=4/3", 48000, 4)),
        "silent" => ("mp4", video("640x360", "25", "", 4)),
        "audio_only" => ("m4a", audio(44100, 5)),
        "portrait" => ("mp4", av("640x360", "25", "", 48000, 4)),
        "tiny" => ("mp4", av("160x90", "25", "", 48000, 3)),
        "small" => ("mp4", av("320x180", "25", "", 48000, 8)),
        "short" => {
            let english = strings(&["-metadata:s:a:0", "language=eng"]);
            ("mp4", [av("640x360", "25", "", 44100, 2), english].concat())
        }
        _ => unreachable!("{name} is in NAMES but has no recipe"),
    };
    let mut steps = vec![first];
    if name == "portrait" {
        // FFmpeg 5.1 turns a `rotate` tag into a display matrix only when stream-copying.
        steps.push(strings(&["-c", "copy", "-metadata:s:v:0", "rotate=90"]));
    }
    Recipe { extension, steps }
}

fn av(size: &str, rate: &str, filters: &str, sample_rate: u32, seconds: u32) -> Vec<String> {
    [
        testsrc(size, rate, filters, seconds),
        sine(sample_rate, seconds),
        x264(),
        aac(),
    ]
    .concat()
}

fn video(size: &str, rate: &str, filters: &str, seconds: u32) -> Vec<String> {
    [testsrc(size, rate, filters, seconds), x264()].concat()
}

fn audio(sample_rate: u32, seconds: u32) -> Vec<String> {
    [sine(sample_rate, seconds), aac()].concat()
}

fn testsrc(size: &str, rate: &str, filters: &str, seconds: u32) -> Vec<String> {
    let source = format!("testsrc2=size={size}:rate={rate}:duration={seconds}{filters}");
    strings(&["-f", "lavfi", "-i", &source])
}

fn sine(sample_rate: u32, seconds: u32) -> Vec<String> {
    let source = format!("sine=frequency=440:sample_rate={sample_rate}:duration={seconds}");
    strings(&["-f", "lavfi", "-i", &source])
}

fn x264() -> Vec<String> {
    strings(&[
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "37",
    ])
}

fn aac() -> Vec<String> {
    strings(&["-c:a", "aac", "-ac", "2", "-b:a", "96k"])
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

fn generate(name: &str) -> PathBuf {
    let recipe = recipe(name);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-media");
    std::fs::create_dir_all(&dir).expect("create the test media folder");
    let stem = format!("{name}-{:016x}", fnv1a(&format!("{:?}", recipe.steps)));
    let path = dir.join(format!("{stem}.{}", recipe.extension));
    if path.exists() {
        return path;
    }
    let mut previous: Option<PathBuf> = None;
    for (number, step) in recipe.steps.iter().enumerate() {
        let part = dir.join(format!(".{stem}.{}.{number}.part", std::process::id()));
        ffmpeg(previous.as_deref(), step, &part);
        if let Some(previous) = previous {
            std::fs::remove_file(previous).expect("remove an intermediate test media file");
        }
        previous = Some(part);
    }
    let made = previous.expect("a recipe has at least one step");
    std::fs::rename(made, &path).expect("publish the test media file");
    path
}

fn ffmpeg(input: Option<&Path>, args: &[String], output: &Path) {
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-nostdin", "-y"]);
    if let Some(input) = input {
        command.arg("-i").arg(input);
    }
    command.args(args);
    command.args(["-movflags", "+faststart", "-f", "mp4"]).arg(output);
    let result = command.output().expect("run ffmpeg (is it installed?)");
    assert!(
        result.status.success(),
        "ffmpeg failed making {}: {}",
        output.display(),
        String::from_utf8_lossy(&result.stderr)
    );
}

/// FNV-1a: a hash that stays the same across Rust releases, unlike `DefaultHasher`.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
