//! `concat-flv`: FLV chunks cut from the `main` source by libav's segment muxer (H.264 with
//! B-frames, so composition offsets matter, and AAC), once with timestamps restarting at 0 in
//! every chunk and once continuing, joined and judged with ffprobe, ffmpeg and the tests' own
//! FLV walker against the source.

use crate::util::http::{self, Route};
use crate::util::{cli, ffprobe, file_names, flv, media};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Cuts `main` into FLV chunks in `dir` (`chunk0.flv`…) at the first keyframe after every 2 s:
/// 2.96, 4.44 and 7.4 s, four chunks. With `restart`, each chunk's timestamps start at 0.
fn chunks(dir: &Path, restart: bool) -> Vec<PathBuf> {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(media("main"))
        .args(["-map", "0", "-c", "copy", "-f", "segment", "-segment_time", "2"])
        .args(["-reset_timestamps", if restart { "1" } else { "0" }])
        .args(["-segment_format", "flv"])
        .arg(dir.join("chunk%d.flv"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not cut the chunks");
    let parts: Vec<PathBuf> = (0..)
        .map(|i| dir.join(format!("chunk{i}.flv")))
        .take_while(|p| p.exists())
        .collect();
    assert_eq!(parts.len(), 4, "main cuts into four chunks");
    parts
}

fn concat(parts: &[PathBuf], out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["concat-flv".into()];
    args.extend(parts.iter().map(|p| p.display().to_string()));
    args.extend(["-o".into(), out.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    cli::run(args)
}

/// The decode timestamps of each stream of a file, in file order.
fn decode_times(file: &Path) -> Vec<Vec<i64>> {
    let json = ffprobe::probe(&["-show_entries", "packet=stream_index,dts"], file);
    let mut streams: Vec<Vec<i64>> = Vec::new();
    for packet in json["packets"].as_array().expect("packets") {
        let index = packet["stream_index"].as_u64().unwrap() as usize;
        streams.resize(streams.len().max(index + 1), Vec::new());
        streams[index].push(packet["dts"].as_i64().expect("every packet has a dts"));
    }
    streams
}

/// Everything a join of the chunks of `main` must be: the source's every video packet at the
/// source's times and its pictures; every audio packet of the chunks; decode times that only
/// grow; one header, one onMetaData with the real duration, file size and keyframe index; one
/// sequence header per stream; every PreviousTagSize right.
fn assert_joined(out: &Path, parts: &[PathBuf]) {
    let source = media("main");
    ffprobe::assert_same_video_packets(&source, out, true);
    let chunk_audio: usize = parts.iter().map(|p| ffprobe::audio_packets(p)).sum();
    assert_eq!(
        ffprobe::audio_packets(out),
        chunk_audio,
        "every audio packet of the chunks"
    );
    for (index, times) in decode_times(out).iter().enumerate() {
        assert!(
            times.windows(2).all(|w| w[0] < w[1]),
            "stream {index}: decode times must grow: {times:?}"
        );
    }
    let copy = Command::new("ffmpeg")
        .args(["-v", "warning", "-nostdin", "-i"])
        .arg(out)
        .args(["-map", "0", "-c", "copy", "-f", "null", "-"])
        .output()
        .expect("run ffmpeg");
    let warnings = String::from_utf8_lossy(&copy.stderr);
    assert!(
        copy.status.success() && !warnings.to_lowercase().contains("monoton"),
        "libav reports non-monotonic timestamps:\n{warnings}"
    );
    ffprobe::assert_decodes_cleanly(out);

    let file = flv::read(out);
    assert!(
        file.tags.iter().all(|t| t.previous_size_ok),
        "every PreviousTagSize is right"
    );
    assert_eq!(
        file.tags.iter().filter(|t| t.is_metadata()).count(),
        1,
        "one onMetaData"
    );
    assert!(file.tags[0].is_metadata(), "onMetaData comes first");
    for kind in [8, 9] {
        let configs = file.tags.iter().filter(|t| t.kind == kind && t.is_config()).count();
        assert_eq!(configs, 1, "one sequence header of tag type {kind}");
    }
    let frames = ffprobe::video_frames(&source).count as f64;
    let declared = file.metadata_number("duration");
    assert!(
        (declared - frames / 25.0).abs() < 0.1,
        "onMetaData duration {declared} s, the frames last {} s",
        frames / 25.0
    );
    let probed = ffprobe::number(&ffprobe::streams_and_format(out)["format"]["duration"]);
    assert!((probed - declared).abs() < 0.05, "ffprobe's duration {probed} s");
    assert_eq!(file.metadata_number("filesize") as usize, file.bytes.len(), "filesize");
    let keyframes: Vec<&flv::Tag> = file.tags.iter().filter(|t| t.is_video_keyframe()).collect();
    let positions = file.metadata_array("filepositions");
    let times = file.metadata_array("times");
    assert_eq!(positions.len(), keyframes.len(), "one index entry per keyframe");
    for ((position, time), tag) in positions.iter().zip(&times).zip(&keyframes) {
        assert_eq!(*position as usize, tag.offset, "keyframe file position");
        assert_eq!((time * 1000.0).round() as u32, tag.timestamp, "keyframe time");
    }
}

/// Joins `main`'s chunks (`restart`: with timestamps restarting at 0) into one FLV and judges
/// it; the run must say how many chunks restarted.
fn join_and_judge(restart: bool, restarted: &str) {
    let dir = tempfile::tempdir().unwrap();
    let parts = chunks(dir.path(), restart);
    let starts: Vec<i64> = parts.iter().map(|p| decode_times(p)[0][0]).collect();
    if restart {
        assert!(
            starts.iter().all(|s| *s < 100),
            "every chunk restarts near 0: {starts:?}"
        );
    } else {
        assert!(
            starts.windows(2).all(|w| w[0] < w[1]),
            "the chunks continue: {starts:?}"
        );
    }
    let out = dir.path().join("whole.flv");
    let output = concat(&parts, &out, &[]);
    cli::assert_success(&output);
    cli::assert_says(&output, &[restarted], "how many chunks restarted");
    assert_joined(&out, &parts);
}

#[test]
fn chunks_restarting_at_zero_join_into_one_monotonic_file_with_every_frame() {
    join_and_judge(true, "3 restarted");
}

#[test]
fn chunks_whose_timestamps_continue_join_the_same_way() {
    join_and_judge(false, "0 restarted");
}

#[test]
fn mp4_output_is_a_remux_with_the_index_in_front() {
    let dir = tempfile::tempdir().unwrap();
    let parts = chunks(dir.path(), true);
    let out = dir.path().join("whole.mp4");
    cli::assert_success(&concat(&parts, &out, &[]));
    let source = media("main");
    ffprobe::assert_same_video_packets(&source, &out, true);
    assert_eq!(
        ffprobe::audio_packets(&out),
        parts.iter().map(|p| ffprobe::audio_packets(p)).sum::<usize>()
    );
    ffprobe::assert_decodes_cleanly(&out);
    let kinds: Vec<String> = crate::util::bmff::top_level_kinds(&out)
        .iter()
        .map(|k| k.to_string())
        .collect();
    let moov = kinds.iter().position(|k| k == "moov").expect("a moov");
    let mdat = kinds.iter().position(|k| k == "mdat").expect("an mdat");
    assert!(moov < mdat, "the index (moov) comes before the media: {kinds:?}");
    let left = file_names(dir.path());
    assert!(
        left.iter().all(|name| !name.starts_with('.')),
        "no scratch file is left: {left:?}"
    );
}

#[test]
fn a_changed_sequence_header_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let parts = chunks(dir.path(), true);
    // The `tiny` source: 160x90, so its SPS differs from main's 640x360.
    let other = dir.path().join("other.flv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(media("tiny"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let out = dir.path().join("whole.flv");
    let joined = [parts[0].clone(), other.clone(), parts[1].clone()];
    cli::assert_success(&concat(&joined, &out, &[]));
    let file = flv::read(&out);
    let video_configs = file.tags.iter().filter(|t| t.kind == 9 && t.is_config()).count();
    assert_eq!(video_configs, 3, "main's, tiny's, then main's again");
    ffprobe::assert_decodes_cleanly(&out);
    let frames = |f: &Path| ffprobe::video_frames(f).count;
    assert_eq!(
        frames(&out),
        joined.iter().map(|p| frames(p)).sum::<usize>(),
        "every frame of every chunk decodes"
    );
}

#[test]
fn a_quoted_pattern_takes_the_chunks_in_natural_order() {
    let dir = tempfile::tempdir().unwrap();
    let parts = chunks(dir.path(), true);
    // Numbered so that character order (c1, c10, c2, c20) is not the stream's order.
    let named: Vec<PathBuf> = parts
        .iter()
        .zip(["c1", "c2", "c10", "c20"])
        .map(|(part, name)| {
            let renamed = dir.path().join(format!("{name}.flv"));
            std::fs::rename(part, &renamed).unwrap();
            renamed
        })
        .collect();
    let listed = dir.path().join("listed.flv");
    cli::assert_success(&concat(&named, &listed, &[]));
    let pattern = dir.path().join("c*.flv");
    let matched = dir.path().join("matched.flv");
    cli::assert_success(&concat(&[pattern], &matched, &[]));
    assert!(
        std::fs::read(&listed).unwrap() == std::fs::read(&matched).unwrap(),
        "the pattern joins c1, c2, c10, c20 in that order"
    );
    assert_joined(&matched, &named);
}

/// A list file of the chunks served from `server`, with a comment and a blank line.
fn url_list(dir: &Path, base: &str, count: usize) -> PathBuf {
    let mut text = String::from("# chunks of one stream\n\n");
    for i in 0..count {
        text.push_str(&format!("{base}/chunk{i}.flv\n"));
    }
    let list = dir.join("urls.txt");
    std::fs::write(&list, text).unwrap();
    list
}

fn routes(parts: &[PathBuf], special: (usize, Route)) -> HashMap<String, Route> {
    let (index, route) = special;
    let mut routes: HashMap<String, Route> = parts
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("/chunk{i}.flv"), Route::File(std::fs::read(p).unwrap())))
        .collect();
    routes.insert(format!("/chunk{index}.flv"), route);
    routes
}

/// A local server for `main`'s chunks where chunk 1 answers `route`, and `concat-flv --list`
/// run against it into a fresh folder with `extra` options.
struct Download {
    dir: tempfile::TempDir,
    parts: Vec<PathBuf>,
    server: http::Server,
    out_dir: tempfile::TempDir,
    out: PathBuf,
    output: std::process::Output,
}

fn download(route: Route, extra: &[&str]) -> Download {
    let dir = tempfile::tempdir().unwrap();
    let parts = chunks(dir.path(), true);
    let server = http::serve(routes(&parts, (1, route)));
    let list = url_list(dir.path(), &server.base, parts.len());
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("whole.flv");
    let (list, out_text) = (list.display().to_string(), out.display().to_string());
    let args = [&["concat-flv", "--list", list.as_str(), "-o", out_text.as_str()], extra].concat();
    let output = cli::run(args);
    Download {
        dir,
        parts,
        server,
        out_dir,
        out,
        output,
    }
}

#[test]
fn a_list_of_urls_is_downloaded_with_retries_and_joined() {
    let dir = tempfile::tempdir().unwrap();
    let flaky = Route::FailFirst(2, std::fs::read(&chunks(dir.path(), true)[1]).unwrap());
    let run = download(flaky, &["--jobs", "2"]);
    cli::assert_success(&run.output);
    assert_eq!(run.server.hits("/chunk1.flv"), 3, "failed twice, then succeeded");
    let local = run.dir.path().join("local.flv");
    cli::assert_success(&concat(&run.parts, &local, &[]));
    assert!(
        std::fs::read(&run.out).unwrap() == std::fs::read(&local).unwrap(),
        "the downloaded chunks join into what the local ones do"
    );
    assert_eq!(file_names(run.out_dir.path()).len(), 1, "no downloaded chunk is left");
}

/// Runs `concat-flv --list` against a server where chunk 1 answers `route`; asserts it failed
/// with an error naming chunk 1's URL and left nothing beside the output. Returns the server.
fn failing_download(route: Route, retries: &str) -> http::Server {
    let run = download(route, &["--retries", retries]);
    let error = cli::assert_failure(&run.output, 3);
    assert!(error.contains("/chunk1.flv"), "the error names the URL: {error}");
    assert!(
        file_names(run.out_dir.path()).is_empty(),
        "a failed download leaves nothing"
    );
    run.server
}

#[test]
fn a_url_that_never_answers_fails_after_its_retries() {
    let server = failing_download(Route::Status(503), "2");
    assert_eq!(server.hits("/chunk1.flv"), 3, "one attempt and two retries");
}

#[test]
fn a_missing_url_fails_at_once() {
    let server = failing_download(Route::Status(404), "3");
    assert_eq!(server.hits("/chunk1.flv"), 1, "a 404 is not retried");
}

/// Joins `main`'s first chunk and `bad` into a fresh folder; asserts it failed with `code`,
/// named `bad` (or `names`) and left nothing. Returns the error line.
fn refused(bad: &Path, extra: &[&str], code: i32) -> String {
    let dir = tempfile::tempdir().unwrap();
    let parts = chunks(dir.path(), true);
    let out_dir = tempfile::tempdir().unwrap();
    let output = concat(
        &[parts[0].clone(), bad.to_owned()],
        &out_dir.path().join("whole.flv"),
        extra,
    );
    let error = cli::assert_failure(&output, code);
    assert!(file_names(out_dir.path()).is_empty(), "a failed join leaves nothing");
    error
}

fn bad_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn bad_chunks_are_refused_naming_the_file_and_the_problem() {
    let (_missing_dir, missing) = bad_file("unused", b"");
    let missing = missing.with_file_name("missing.flv");
    assert!(refused(&missing, &[], 3).contains("missing.flv: no such file"));
    let (_empty_dir, empty) = bad_file("empty.flv", b"");
    assert!(refused(&empty, &[], 3).contains("empty.flv: the file is empty"));
    let (_mp4_dir, mp4) = bad_file("not.flv", &std::fs::read(media("tiny")).unwrap());
    assert!(refused(&mp4, &[], 3).contains("not an FLV file"));
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(&chunks(dir.path(), true)[1]).unwrap();
    let (_cut_dir, cut) = bad_file("cut.flv", &whole[..whole.len() / 2]);
    let error = refused(&cut, &[], 3);
    assert!(error.contains("cut.flv") && error.contains("truncated"), "{error}");
}

#[test]
fn impossible_options_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let parts = chunks(dir.path(), true);
    let out = dir.path().join("whole.avi");
    let error = cli::assert_failure(&concat(&parts, &out, &[]), 2);
    assert!(error.contains(".flv or .mp4"), "{error}");
    let exists = dir.path().join("exists.flv");
    std::fs::write(&exists, b"mine").unwrap();
    cli::assert_failure(&concat(&parts, &exists, &[]), 4);
    assert_eq!(std::fs::read(&exists).unwrap(), b"mine", "an existing output is kept");
}
