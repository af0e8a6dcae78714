//! `convert`: HLS and DASH presentations made by libav from the `main` source
//! (H.264 + AAC, keyframes every 1.48 s) repackaged as the other without re-encoding, and a VP9
//! one transcoded; judged with the packagers' checks, mp4-atom and ffprobe. Subtitles (which
//! libav's demuxers do not read) are judged with the tests' own WebVTT, playlist and MPD readers.

use crate::copy::expect;
use crate::hls::check::{Segments, check_package as check_hls};
use crate::tracks_text::{self, Expected};
use crate::util::http::{self, Route};
use crate::util::m3u8::read_master;
use crate::util::mpd::read_mpd;
use crate::util::{bmff, cli, ffprobe, file_names, made_by_libav, media, webvtt};
use crate::{tracks_audio, tracks_surround};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn convert(input: &Path, to: &str, out: &Path, extra: &[&str]) -> Output {
    let (input, out) = (input.display().to_string(), out.display().to_string());
    let fixed = ["convert", &input, "--to", to, "-o", &out, "--progress", "none"];
    cli::run([&fixed[..], extra].concat())
}

/// The files of a representation folder of a DASH package: `init.mp4` and the segments.
fn representation(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let segments: Vec<PathBuf> = file_names(dir)
        .into_iter()
        .filter(|name| name.ends_with(".m4s"))
        .map(|name| dir.join(name))
        .collect();
    (dir.join("init.mp4"), segments)
}

/// In MPEG-TS the AAC encoder's priming frame is a packet of its own, so in this input the
/// audio starts 21 ms before the video; the package keeps that, which the DASH check (made for
/// sources whose video starts first) does not allow. What the conversion owns is judged here:
/// the media copied and cut at its keyframes, every fragment well formed and continuous.
#[test]
fn hls_with_ts_segments_becomes_dash_without_reencoding() {
    let dir = tempfile::tempdir().unwrap();
    let source = media("main");
    let playlist = made_by_libav(
        &source,
        dir.path(),
        &["-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"],
        "index.m3u8",
    );
    let out = dir.path().join("dash");
    let output = convert(&playlist, "dash", &out, &["--segment-duration", "2"]);
    cli::assert_success(&output);
    cli::assert_says(&output, &["without re-encoding"], "that the media was copied");
    let (init, segments) = representation(&out.join("360p"));
    assert_eq!(segments.len(), 3, "8 s cut at keyframes into 2.96 + 2.96 + 2.08 s");
    bmff::read_track(&init, &segments);
    let (audio_init, audio_segments) = representation(&out.join("audio"));
    bmff::read_track(&audio_init, &audio_segments);
    let video = ffprobe::concat(&[vec![init], segments].concat());
    ffprobe::assert_same_video_packets(&source, &video, false);
    let manifest = std::path::absolute(out.join("manifest.mpd")).unwrap();
    ffprobe::assert_decodes_cleanly(&manifest);
}

#[test]
fn dash_becomes_hls_without_reencoding() {
    let dir = tempfile::tempdir().unwrap();
    let source = media("main");
    let manifest = made_by_libav(&source, dir.path(), &["-c", "copy", "-f", "dash"], "manifest.mpd");
    let out = dir.path().join("hls");
    let output = convert(&manifest, "hls", &out, &["--segment-duration", "2", "--format", "ts"]);
    cli::assert_success(&output);
    cli::assert_says(&output, &["without re-encoding"], "that the media was copied");
    let package = check_hls(&out, &expect(&source, Segments::TS));
    let segments = package.video[0].segment_files();
    ffprobe::assert_same_video_packets(&source, &ffprobe::concat(&segments), false);
}

#[test]
fn vp9_that_ts_cannot_carry_is_transcoded() {
    let dir = tempfile::tempdir().unwrap();
    let source = media("tiny");
    let manifest = made_by_libav(
        &source,
        dir.path(),
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-c:a",
            "copy",
            "-f",
            "dash",
        ],
        "manifest.mpd",
    );
    let out = dir.path().join("hls");
    let output = convert(&manifest, "hls", &out, &["--segment-duration", "1", "--format", "ts"]);
    cli::assert_success(&output);
    cli::assert_says(&output, &["transcoded", "vp9"], "why the video was transcoded");
    let master = out.join("master.m3u8");
    let streams = ffprobe::streams_and_format(&master);
    let codecs: Vec<&str> = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap())
        .collect();
    assert!(codecs.contains(&"h264") && codecs.contains(&"aac"), "{codecs:?}");
    assert_eq!(
        ffprobe::video_frames(&master).count,
        ffprobe::video_frames(&manifest).count,
        "every frame, transcoded"
    );
    ffprobe::assert_decodes_cleanly(&master);
}

#[test]
fn a_missing_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for gone in ["gone.m3u8", "gone.mpd"] {
        let output = convert(&dir.path().join(gone), "dash", &dir.path().join("out"), &[]);
        let error = cli::assert_failure(&output, 3);
        assert!(error.ends_with(&format!("{gone}: no such file")), "{error}");
        assert!(file_names(dir.path()).is_empty());
    }
}

/// An HLS presentation of the three-audio title (English, Japanese, English commentary) made by
/// libav, with `var_stream_map` as given and `master.m3u8` as its master playlist.
fn hls_by_libav(dir: &Path, var_stream_map: &str, maps: &[&str]) -> PathBuf {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(tracks_audio::title())
        .args(maps)
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "300k",
            "-c:a",
            "aac",
            "-b:a",
            "96k",
        ])
        .args(["-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod"])
        .args(["-var_stream_map", var_stream_map, "-master_pl_name", "master.m3u8"])
        .arg(dir.join("out_%v.m3u8"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the HLS presentation");
    dir.join("master.m3u8")
}

/// The audio AdaptationSets of a manifest: each one's @lang, Role and audioSamplingRate.
fn audio_sets(manifest: &Path) -> Vec<(String, String, String)> {
    let mpd = read_mpd(manifest);
    mpd.adaptation_sets
        .iter()
        .filter(|set| set.attributes.get("contentType") == Some("audio"))
        .map(|set| {
            let text = |value: Option<&str>| value.unwrap_or_default().to_owned();
            let role = set.roles.first().and_then(|r| r.get("value"));
            let rate = set.representations[0].attributes.get("audioSamplingRate");
            (text(set.attributes.get("lang")), text(role), text(rate))
        })
        .collect()
}

#[test]
fn every_rendition_of_an_hls_audio_group_is_carried_into_dash() {
    let dir = tempfile::tempdir().unwrap();
    let streams = "v:0,agroup:aud a:0,agroup:aud,language:eng,default:yes a:1,agroup:aud,language:jpn \
                   a:2,agroup:aud,language:eng";
    let maps = ["-map", "0:v", "-map", "0:a:0", "-map", "0:a:1", "-map", "0:a:2"];
    let master = hls_by_libav(dir.path(), streams, &maps);
    let out = dir.path().join("dash");
    cli::assert_success(&convert(&master, "dash", &out, &["--segment-duration", "1"]));
    let manifest = std::path::absolute(out.join("manifest.mpd")).unwrap();
    let owned = |(lang, role, rate): (&str, &str, &str)| (lang.to_owned(), role.to_owned(), rate.to_owned());
    assert_eq!(
        audio_sets(&manifest),
        [
            ("en", "main", "48000"),
            ("ja", "alternate", "44100"),
            ("en", "alternate", "48000")
        ]
        .map(owned),
        "each language and rate, the group's DEFAULT the main one"
    );
    ffprobe::assert_decodes_cleanly(&manifest);
}

#[test]
fn rungs_that_each_carry_the_same_audio_give_one_audio_rendition() {
    let dir = tempfile::tempdir().unwrap();
    let maps = [
        "-map", "0:v", "-map", "0:v", "-map", "0:a:0", "-map", "0:a:0", "-s:v:1", "160x90",
    ];
    let master = hls_by_libav(dir.path(), "v:0,a:0 v:1,a:1", &maps);
    let out = dir.path().join("dash");
    cli::assert_success(&convert(&master, "dash", &out, &["--segment-duration", "1"]));
    let manifest = std::path::absolute(out.join("manifest.mpd")).unwrap();
    let sets = audio_sets(&manifest);
    assert_eq!(
        sets.len(),
        1,
        "the top rung's audio alone, not a copy per rung: {sets:?}"
    );
    ffprobe::assert_decodes_cleanly(&manifest);
}

/// The sizes of the packets of stream `selector` (`a:0`) as ffprobe reads them.
fn packet_sizes(file: &Path, selector: &str) -> Vec<u64> {
    let packets = ffprobe::probe(&["-select_streams", selector, "-show_entries", "packet=size"], file);
    let packets = packets["packets"].as_array().expect("packets");
    packets.iter().map(|p| ffprobe::number(&p["size"]) as u64).collect()
}

#[test]
fn a_dash_adaptation_set_at_two_bit_rates_gives_one_rendition_of_the_better_from_a_file_or_http() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(tracks_audio::title())
        .args(["-map", "0:v", "-map", "0:a:0", "-map", "0:a:0", "-map", "0:a:1"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
        .args(["-b:a:0", "128k", "-b:a:1", "64k", "-b:a:2", "96k", "-f", "dash"])
        .args(["-adaptation_sets", "id=0,streams=v id=1,streams=1,2 id=2,streams=3"])
        .arg(dir.path().join("manifest.mpd"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the DASH presentation");
    let manifest = dir.path().join("manifest.mpd");
    let server = serve_tree(dir.path());
    let url = PathBuf::from(format!("{}/manifest.mpd", server.base));
    for (input, out) in [(&manifest, "hls"), (&url, "hls-from-http")] {
        let out = dir.path().join(out);
        cli::assert_success(&convert(input, "hls", &out, &["--segment-duration", "1"]));
        let master = read_master(&out.join("master.m3u8"));
        let languages: Vec<Option<&str>> = master
            .media
            .iter()
            .filter(|m| m.plain("TYPE") == Some("AUDIO"))
            .map(|m| m.quoted("LANGUAGE"))
            .collect();
        assert_eq!(languages, [Some("en"), Some("ja")], "one rendition per AdaptationSet");
        assert_eq!(
            packet_sizes(&out.join("audio-en/index.m3u8"), "a:0"),
            packet_sizes(&manifest, "a:0"),
            "the English rendition is the 128 kb/s Representation, copied"
        );
    }
}

#[test]
fn a_rendition_in_several_hls_audio_groups_is_carried_once_beside_the_5_1_one() {
    // stream-pack's own HLS of a 5.1 English and a stereo Japanese stream: the groups
    // audio-stereo (English stereo, Japanese) and audio-5.1 (English 5.1, the same Japanese).
    let dir = tempfile::tempdir().unwrap();
    let hls = dir.path().join("hls");
    let args = [&tracks_audio::FAST[..], &["--format", "fmp4"]].concat();
    cli::assert_success(&cli::package("hls", tracks_surround::title(), &hls, &args));
    let out = dir.path().join("dash");
    cli::assert_success(&convert(
        &hls.join("master.m3u8"),
        "dash",
        &out,
        &["--segment-duration", "1"],
    ));
    let manifest = std::path::absolute(out.join("manifest.mpd")).unwrap();
    assert_eq!(
        tracks_surround::languages_and_channels(&read_mpd(&manifest)),
        [
            (Some("en"), Some("2")),
            (Some("ja"), Some("2")),
            (Some("en"), Some("6"))
        ],
        "each rendition once, the 5.1 one too"
    );
    ffprobe::assert_decodes_cleanly(&manifest);
}

/// The subtitled title of the text tests (English SDH and forced French SubRip streams, a
/// Japanese sidecar) packaged by stream-pack with `command` and `extra` into `dir/command`: the
/// source, the package, and each subtitle track as the source stores it.
fn packaged_with_subtitles(dir: &Path, command: &str, extra: &[&str]) -> (PathBuf, PathBuf, Vec<Expected>) {
    let title = tracks_text::title_mkv(dir);
    let sidecar = tracks_text::japanese_sidecar(dir);
    let out = dir.join(command);
    tracks_text::package_small(command, &title, &out, &[extra, &["--subtitles", &sidecar]].concat());
    let expected = vec![
        tracks_text::as_stored(&title, 0, tracks_text::english().0),
        tracks_text::as_stored(&title, 1, tracks_text::french().0),
        tracks_text::japanese(),
    ];
    (title, out, expected)
}

/// The MPD at `out` has a text AdaptationSet for each of `expected`, no other, each cue where the
/// source has it on the period's timeline.
fn judge_dash_subtitles(out: &Path, title: &Path, expected: &[Expected]) {
    let mpd = read_mpd(&out.join("manifest.mpd"));
    let texts = mpd.adaptation_sets.iter();
    let count = texts
        .filter(|set| set.attributes.get("contentType") == Some("text"))
        .count();
    assert_eq!(count, expected.len(), "a text AdaptationSet per subtitle track");
    for track in expected {
        assert_no_cue_twice(&tracks_text::judge_dash(out, title, track));
    }
}

/// No WebVTT file of `files` holds a cue twice (one the input repeats in each segment it spans
/// is one cue).
fn assert_no_cue_twice(files: &[PathBuf]) {
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let cues = webvtt::parse(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .cues;
        for (index, cue) in cues.iter().enumerate() {
            assert!(!cues[..index].contains(cue), "{}: {cue:?} twice", file.display());
        }
    }
}

#[test]
fn subtitles_of_hls_in_ts_and_fmp4_are_carried_into_dash() {
    for format in ["ts", "fmp4"] {
        let dir = tempfile::tempdir().unwrap();
        let (title, hls, expected) = packaged_with_subtitles(dir.path(), "hls", &["--format", format]);
        let out = dir.path().join("dash");
        let output = convert(&hls.join("master.m3u8"), "dash", &out, &["--segment-duration", "1.5"]);
        cli::assert_success(&output);
        judge_dash_subtitles(&out, &title, &expected);
    }
}

/// From a file into HLS with TS segments, over HTTP into HLS with CMAF segments.
#[test]
fn subtitles_of_dash_are_carried_into_hls() {
    let dir = tempfile::tempdir().unwrap();
    let (title, dash, expected) = packaged_with_subtitles(dir.path(), "dash", &[]);
    let server = serve_tree(&dash);
    let url = format!("{}/manifest.mpd", server.base);
    for (input, format) in [(dash.join("manifest.mpd"), "ts"), (PathBuf::from(url), "fmp4")] {
        let out = dir.path().join(format!("hls-{format}"));
        let extra = ["--segment-duration", "1.5", "--format", format];
        cli::assert_success(&convert(&input, "hls", &out, &extra));
        let master = read_master(&out.join("master.m3u8"));
        let subtitles = master.media.iter().filter(|m| m.plain("TYPE") == Some("SUBTITLES"));
        assert_eq!(subtitles.count(), expected.len(), "a SUBTITLES rendition per track");
        for track in &expected {
            assert_no_cue_twice(&tracks_text::judge(&out, &title, track));
        }
    }
}

/// Serves every file under `dir` at its path below it.
fn serve_tree(dir: &Path) -> http::Server {
    let files = crate::publish::package_files(dir);
    http::serve(
        files
            .into_iter()
            .map(|(name, bytes)| (format!("/{name}"), Route::File(bytes)))
            .collect(),
    )
}

#[test]
fn subtitles_of_hls_over_http_are_carried_into_dash() {
    let dir = tempfile::tempdir().unwrap();
    let (title, hls, expected) = packaged_with_subtitles(dir.path(), "hls", &[]);
    let server = serve_tree(&hls);
    let out = dir.path().join("dash");
    let url = format!("{}/master.m3u8", server.base);
    let output = convert(Path::new(&url), "dash", &out, &["--segment-duration", "1.5"]);
    cli::assert_success(&output);
    assert_eq!(
        server.hits("/subtitles-ja/index.m3u8"),
        1,
        "the Japanese playlist, read once"
    );
    judge_dash_subtitles(&out, &title, &expected);
}

#[test]
fn a_subtitle_rendition_not_in_webvtt_is_a_note_and_a_missing_or_endless_segment_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (title, hls, expected) = packaged_with_subtitles(dir.path(), "hls", &[]);
    let imsc = hls.join("imsc");
    std::fs::create_dir(&imsc).unwrap();
    let ttml = "<?xml version=\"1.0\"?><tt xmlns=\"http://www.w3.org/ns/ttml\" xml:lang=\"de\"/>";
    std::fs::write(imsc.join("segment0.ttml"), ttml).unwrap();
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nsegment0.ttml\n#EXT-X-ENDLIST\n";
    std::fs::write(imsc.join("index.m3u8"), playlist).unwrap();
    let master = hls.join("master.m3u8");
    let text = std::fs::read_to_string(&master).unwrap().replacen(
        "#EXTM3U\n",
        "#EXTM3U\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"Untertitel\",LANGUAGE=\"de\",URI=\"imsc/index.m3u8\"\n",
        1,
    );
    std::fs::write(&master, text).unwrap();
    let out = dir.path().join("dash");
    let output = convert(&master, "dash", &out, &["--segment-duration", "1.5"]);
    cli::assert_success(&output);
    cli::assert_says(
        &output,
        &["\"Untertitel\"", "left out", "not WebVTT"],
        "the rendition left out",
    );
    judge_dash_subtitles(&out, &title, &expected);
    let segment = hls.join("subtitles-ja/segment00001.vtt");
    std::fs::remove_file(&segment).unwrap();
    let broken = dir.path().join("broken");
    let output = convert(&master, "dash", &broken, &["--segment-duration", "1.5"]);
    let error = cli::assert_failure(&output, 3);
    assert!(error.contains("subtitles-ja/segment00001.vtt"), "{error}");
    assert!(!broken.exists(), "nothing left behind");
    std::os::unix::fs::symlink("/dev/zero", &segment).unwrap();
    let output = convert(&master, "dash", &broken, &["--segment-duration", "1.5"]);
    let error = cli::assert_failure(&output, 3);
    assert!(
        error.contains("segment00001.vtt") && error.contains("limit of 4 MiB"),
        "{error}"
    );
    assert!(!broken.exists(), "nothing left behind");
}

#[test]
fn a_dash_text_set_not_in_webvtt_is_a_note_a_bad_language_und_and_a_missing_segment_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (title, dash, mut expected) = packaged_with_subtitles(dir.path(), "dash", &[]);
    let manifest = dash.join("manifest.mpd");
    let imsc = "<AdaptationSet contentType=\"text\" lang=\"de\" mimeType=\"application/ttml+xml\">\
                <Label>Untertitel</Label><Representation id=\"imsc\" bandwidth=\"1000\">\
                <BaseURL>imsc.ttml</BaseURL></Representation></AdaptationSet></Period>";
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replace("</Period>", imsc).replace("lang=\"ja\"", "lang=\"ja_JP\"");
    std::fs::write(&manifest, text).unwrap();
    let out = dir.path().join("hls");
    let output = convert(&manifest, "hls", &out, &["--segment-duration", "1.5"]);
    cli::assert_success(&output);
    cli::assert_says(&output, &["\"Untertitel\"", "left out"], "the set left out");
    cli::assert_says(
        &output,
        &["\"ja_JP\" is not a language tag", "und"],
        "the language replaced",
    );
    expected[2].language = "und";
    for track in &expected {
        tracks_text::judge(&out, &title, track);
    }
    std::fs::remove_file(dash.join("180p/segment00001.m4s")).unwrap();
    let broken = dir.path().join("broken");
    let error = cli::assert_failure(&convert(&manifest, "hls", &broken, &["--segment-duration", "1.5"]), 3);
    assert!(
        error.starts_with(&format!("error: {}: incomplete", manifest.display())),
        "the line names the manifest given, not libav's copy of it: {error}"
    );
    assert!(!broken.exists(), "nothing left behind");
}
