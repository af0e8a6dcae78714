//! Issue 20, items 8–10: every audio codec's output decodes like its source, every output form
//! starts audio and video as the source does, and `--copy` carries the source's channel count
//! and rotation (or refuses with the reason). Judged by FFmpeg's CLI tools and the math here.

use crate::util::{cli, ffprobe, file_names};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The output forms a package's audio can take.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Form {
    HlsTs,
    HlsFmp4,
    Dash,
}

impl Form {
    fn command(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Form::HlsTs => ("hls", &[]),
            Form::HlsFmp4 => ("hls", &["--format", "fmp4"]),
            Form::Dash => ("dash", &[]),
        }
    }
}

/// Runs `ffmpeg -v error -nostdin -y ARGS` and asserts it succeeded.
fn ffmpeg(args: &[&str]) {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A 3 s 160x90 H.264 source, `dir/name`, with the audio that `audio` makes (ffmpeg arguments:
/// its lavfi inputs, which are inputs 1…, and how they are mapped and encoded).
fn small_source(dir: &Path, name: &str, audio: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let video = ["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=3"];
    let encode = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"];
    let output = [path.to_str().expect("UTF-8 path")];
    ffmpeg(&[&video[..], audio, &encode, &output].concat());
    path
}

/// A lavfi input of a 3 s sine at `frequency` Hz, 48 kHz.
fn sine(frequency: u32) -> [String; 4] {
    let source = format!("sine=frequency={frequency}:sample_rate=48000:duration=3");
    ["-f".into(), "lavfi".into(), "-i".into(), source]
}

/// The small source whose AAC audio (48 kHz, 192 kb/s) is a 440 Hz sine on the left and a
/// 1000 Hz sine on the right.
fn two_tone_source(dir: &Path) -> PathBuf {
    let [left, right] = [sine(440), sine(1000)];
    let mix = [
        "-filter_complex",
        "[1:a][2:a]join=inputs=2:channel_layout=stereo[a]",
        "-map",
        "0:v",
        "-map",
        "[a]",
        "-c:a",
        "aac",
        "-b:a",
        "192k",
    ];
    let inputs: Vec<&str> = left.iter().chain(&right).map(String::as_str).collect();
    small_source(dir, "two-tone.mp4", &[&inputs[..], &mix].concat())
}

/// The files of a rendition folder in playback order: `init.mp4` (fMP4) and then the segments.
fn rendition_files(dir: &Path) -> Vec<PathBuf> {
    let names = file_names(dir);
    let init = names.iter().filter(|name| *name == "init.mp4");
    let segments = names.iter().filter(|name| name.starts_with("segment"));
    init.chain(segments).map(|name| dir.join(name)).collect()
}

/// A file decoded by ffmpeg to 48 kHz stereo float samples, interleaved.
fn decode_stereo(file: &Path) -> Vec<f32> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(file)
        .args(["-map", "0:a:0", "-ac", "2", "-ar", "48000", "-f", "f32le", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg could not decode {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    output
        .stdout
        .chunks_exact(4)
        .map(|bytes| f32::from_le_bytes(bytes.try_into().expect("4 bytes")))
        .collect()
}

const RATE: f64 = 48_000.0;
const TONES: [f64; 2] = [440.0, 1000.0];

/// What one second of decoded stereo sound measures, in dB full scale (RMS).
#[derive(Debug, Clone, Copy)]
struct Sound {
    /// Per channel (left, right): the whole signal.
    level: [f64; 2],
    /// Per channel: the RMS level of each of `TONES`.
    tones: [[f64; 2]; 2],
    /// Per channel: what is left once both tones are taken out (noise and distortion).
    residue: [f64; 2],
    /// Left minus right.
    difference: f64,
}

fn db(rms: f64) -> f64 {
    20.0 * rms.max(1e-10).log10()
}

/// The RMS level of a sine of `frequency` in `samples`, which span a whole number of its
/// periods: the magnitude of that one DFT bin.
fn tone_rms(samples: &[f64], frequency: f64) -> f64 {
    let step = 2.0 * std::f64::consts::PI * frequency / RATE;
    let (re, im) = samples.iter().enumerate().fold((0.0, 0.0), |(re, im), (n, x)| {
        let phase = step * n as f64;
        (re + x * phase.cos(), im - x * phase.sin())
    });
    (re * re + im * im).sqrt() * std::f64::consts::SQRT_2 / samples.len() as f64
}

fn rms(samples: &[f64]) -> f64 {
    (samples.iter().map(|x| x * x).sum::<f64>() / samples.len() as f64).sqrt()
}

/// Measures the second from 1 s to 2 s of interleaved stereo samples: well inside a 3 s
/// source, away from encoder priming and padding; both tones fit it a whole number of times.
fn measure(interleaved: &[f32]) -> Sound {
    let window = RATE as usize..2 * RATE as usize;
    assert!(
        interleaved.len() / 2 >= window.end,
        "only {} samples decoded",
        interleaved.len() / 2
    );
    let channel = |c: usize| -> Vec<f64> { window.clone().map(|i| f64::from(interleaved[2 * i + c])).collect() };
    let [left, right] = [channel(0), channel(1)];
    let per_channel = |samples: &[f64]| {
        let total = rms(samples);
        let tones = TONES.map(|f| tone_rms(samples, f));
        let residue = (total.powi(2) - tones.iter().map(|t| t.powi(2)).sum::<f64>())
            .max(0.0)
            .sqrt();
        (db(total), tones.map(db), db(residue))
    };
    let (l, r) = (per_channel(&left), per_channel(&right));
    let difference: Vec<f64> = left.iter().zip(&right).map(|(a, b)| a - b).collect();
    Sound {
        level: [l.0, r.0],
        tones: [l.1, r.1],
        residue: [l.2, r.2],
        difference: db(rms(&difference)),
    }
}

/// The package's audio sounds like the source's: levels within 1 dB per channel, each tone on
/// its own channel within 1 dB, at least 30 dB above the other tone and 25 dB above whatever
/// else the channel holds (a lossy codec's noise: AAC at 128 kb/s leaves about 30 dB), and the
/// same channel difference within 1 dB.
fn assert_sounds_like(what: &str, sound: &Sound, source: &Sound) {
    let close = |ours: f64, theirs: f64, name: &str| {
        assert!(
            (ours - theirs).abs() <= 1.0,
            "{what}: {name} {ours:.1} dB, the source's {theirs:.1} dB\nours: {sound:?}\nsource: {source:?}"
        );
    };
    for (c, side) in ["left", "right"].iter().enumerate() {
        close(sound.level[c], source.level[c], &format!("{side} level"));
        let own = sound.tones[c][c];
        close(own, source.tones[c][c], &format!("{side} {} Hz", TONES[c]));
        let other = sound.tones[c][1 - c];
        assert!(
            own - other >= 30.0,
            "{what}: {} Hz leaks into the {side} channel at {other:.1} dB (its own tone {own:.1} dB)\n{sound:?}",
            TONES[1 - c]
        );
        assert!(
            own - sound.residue[c] >= 25.0,
            "{what}: the {side} channel holds {:.1} dB besides its tone ({own:.1} dB): noise or distortion\n{sound:?}",
            sound.residue[c]
        );
    }
    close(sound.difference, source.difference, "left − right");
}

/// Packages the two-tone source `runs` times in every form `codec` goes in, and checks that
/// each package's audio rendition decodes like the source.
fn check_audio_codec(codec: &str, forms: &[Form], runs: usize) {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let source = two_tone_source(dir.path());
    let reference = measure(&decode_stereo(&source));
    for form in forms {
        for run in 0..runs {
            let (command, format) = form.command();
            let out = dir.path().join(format!("{form:?}-{run}"));
            let args = [
                &["--reps", "90", "--segment-duration", "1", "--audio-codec", codec][..],
                format,
                &cli::FAST,
            ]
            .concat();
            cli::assert_success(&cli::package(command, &source, &out, &args));
            let audio = ffprobe::concat(&rendition_files(&out.join("audio")));
            let sound = measure(&decode_stereo(&audio));
            assert_sounds_like(&format!("{codec} in {form:?}, run {}", run + 1), &sound, &reference);
        }
    }
}

#[test]
fn item08_opus_stereo_decodes_like_the_source_in_every_run() {
    check_audio_codec("opus", &[Form::HlsFmp4, Form::Dash], 3);
}

#[test]
fn item08_aac_decodes_like_the_source_in_every_output_form() {
    check_audio_codec("aac", &[Form::HlsTs, Form::HlsFmp4, Form::Dash], 3);
}

/// How much later the first video packet is presented than the first audio packet, in seconds,
/// as ffprobe reads `file` (a media file, a master playlist or an MPD).
fn video_lead_over_audio(file: &Path) -> f64 {
    let json = ffprobe::probe(
        &["-show_entries", "stream=index,codec_type:packet=stream_index,pts_time"],
        file,
    );
    let kind_of = |index: &serde_json::Value| {
        json["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .find(|stream| &stream["index"] == index)
            .and_then(|stream| stream["codec_type"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let first = |kind: &str| {
        json["packets"]
            .as_array()
            .expect("packets")
            .iter()
            .filter(|packet| kind_of(&packet["stream_index"]) == kind && !packet["pts_time"].is_null())
            .map(|packet| ffprobe::number(&packet["pts_time"]))
            .fold(f64::INFINITY, f64::min)
    };
    let (video, audio) = (first("video"), first("audio"));
    assert!(
        video.is_finite() && audio.is_finite(),
        "{}: ffprobe sees no video or no audio",
        file.display()
    );
    video - audio
}

#[test]
fn item09_every_output_form_starts_audio_and_video_as_the_source_does() {
    let source = crate::util::media("main");
    let frame = 1.0 / 25.0;
    let expected = video_lead_over_audio(&source);
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let encoded = [
        "--reps",
        "360",
        "--segment-duration",
        "2",
        "--encoder-preset",
        "veryfast",
    ];
    let copied = ["--copy", "--segment-duration", "2"];
    let forms: [(&str, &str, &[&str]); 5] = [
        ("hls ts", "hls", &encoded),
        ("hls fmp4", "hls", &[&encoded[..], &["--format", "fmp4"]].concat()),
        ("dash", "dash", &encoded),
        ("dash --copy", "dash", &copied),
        ("hls --copy", "hls", &copied),
    ];
    let mut offsets = Vec::new();
    for (name, command, args) in forms {
        let out = dir.path().join(name.replace([' ', '-'], "_"));
        cli::assert_success(&cli::package(command, &source, &out, args));
        let entry = out.join(if command == "hls" {
            "master.m3u8"
        } else {
            "manifest.mpd"
        });
        offsets.push((name, video_lead_over_audio(&entry)));
    }
    for (name, offset) in &offsets {
        assert!(
            (offset - expected).abs() < frame,
            "{name}: video starts {:.1} ms after audio, the source {:.1} ms (more than a frame apart)\nall forms: {offsets:?}",
            offset * 1e3,
            expected * 1e3
        );
    }
}

/// The small source with 5.1 AAC (six channels, 48 kHz).
fn surround_source(dir: &Path) -> PathBuf {
    let tone = sine(440);
    let inputs: Vec<&str> = tone.iter().map(String::as_str).collect();
    small_source(
        dir,
        "surround.mp4",
        &[&inputs[..], &["-c:a", "aac", "-ac", "6"]].concat(),
    )
}

/// The channel count ffprobe reads from the first audio stream of `file`.
fn probed_channels(file: &Path) -> u64 {
    let json = ffprobe::probe(&["-select_streams", "a:0", "-show_entries", "stream=channels"], file);
    json["streams"][0]["channels"]
        .as_u64()
        .expect("an audio stream with channels")
}

#[test]
fn item10_copy_of_surround_aac_declares_the_sources_channel_count() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let source = surround_source(dir.path());
    assert_eq!(probed_channels(&source), 6, "the source is 5.1");
    let out = dir.path().join("copy");
    cli::assert_success(&cli::package("dash", &source, &out, &["--copy", "--hls"]));
    let audio = ffprobe::concat(&rendition_files(&out.join("audio")));
    assert_eq!(probed_channels(&audio), 6, "the copied audio rendition");
    let master = crate::util::m3u8::read_master(&out.join("master.m3u8"));
    let channels: Vec<Option<&str>> = master.media.iter().map(|media| media.quoted("CHANNELS")).collect();
    assert_eq!(channels, [Some("6")], "EXT-X-MEDIA CHANNELS");
    let mpd = crate::util::mpd::read_mpd(&out.join("manifest.mpd"));
    let configurations: Vec<Option<&str>> = mpd
        .adaptation_sets
        .iter()
        .flat_map(|set| &set.representations)
        .filter_map(|representation| representation.audio_channel_configuration.as_ref())
        .map(|configuration| configuration.get("value"))
        .collect();
    assert_eq!(configurations, [Some("6")], "AudioChannelConfiguration@value");
}

/// The rotation of the display matrix ffprobe finds on the first video stream (0 without one).
fn probed_rotation(file: &Path) -> f64 {
    let json = ffprobe::probe(&["-select_streams", "v:0", "-show_streams"], file);
    json["streams"][0]["side_data_list"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|side_data| side_data["side_data_type"] == "Display Matrix")
        .map_or(0.0, |matrix| ffprobe::number(&matrix["rotation"]))
}

#[test]
fn item10_copy_keeps_the_rotation_in_fmp4_and_refuses_ts() {
    let source = crate::util::media("portrait");
    let rotation = probed_rotation(&source);
    assert_eq!(rotation.abs(), 90.0, "the source is shown rotated");
    let dir = tempfile::tempdir().expect("create a temporary folder");
    for (command, extra) in [("dash", &[][..]), ("hls", &["--format", "fmp4"][..])] {
        let out = dir.path().join(format!("{command}-fmp4"));
        let args = [&["--copy", "--segment-duration", "2"][..], extra].concat();
        cli::assert_success(&cli::package(command, &source, &out, &args));
        let rendition = out.join("360p");
        let video = ffprobe::concat(&rendition_files(&rendition));
        assert_eq!(
            probed_rotation(&video),
            rotation,
            "{command} --copy: the display matrix"
        );
    }
    let out = dir.path().join("hls-ts");
    let output = cli::package("hls", &source, &out, &["--copy"]);
    let line = cli::assert_failure(&output, 2);
    assert!(
        line.contains("rotat") && line.contains("fmp4"),
        "the refusal says why and what to do instead: {line}"
    );
    assert!(!out.exists(), "a refused run leaves no output");
}
