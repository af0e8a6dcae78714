//! CEA-608 captions carried in the source's H.264 (A/53 SEI): kept in every encoded rung, as
//! ffprobe's frame side data and ffmpeg's caption decoder show, and signalled in the manifests;
//! a source without them says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::cli::{assert_success, package};
use crate::util::ffprobe::probe;
use crate::util::m3u8::read_master;

/// What ffprobe calls the A/53 side data of a frame.
const CAPTIONS_SIDE_DATA: &str = "ATSC A53 Part 4 Closed Captions";
const REPS: &str = "180,144";

/// `fixtures/captions/cea608.mp4`: 50 frames, each with captions; "HELLO" on CC1 (fixtures/README.md).
fn captioned() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captions/cea608.mp4")
}

/// 2 s of H.264 without captions.
fn plain(dir: &Path) -> PathBuf {
    let path = dir.join("plain.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=320x180:rate=25:duration=2"])
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make the plain source");
    path
}

/// How many of the video frames of `media` carry A/53 captions, and how many frames there are.
pub(crate) fn frames_with_captions(media: &Path) -> (usize, usize) {
    let frames = probe(
        &[
            "-select_streams",
            "v",
            "-show_frames",
            "-show_entries",
            "frame=side_data_list",
        ],
        media,
    );
    let frames = frames["frames"].as_array().expect("frames");
    let with = frames
        .iter()
        .filter(|frame| {
            frame["side_data_list"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|side| side["side_data_type"] == CAPTIONS_SIDE_DATA)
        })
        .count();
    (with, frames.len())
}

/// The captions ffmpeg's own 608 decoder reads from the video of `media`, as SubRip.
fn caption_text(media: &Path) -> String {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-f", "lavfi", "-i"])
        .arg(format!("movie={}[out0+subcc]", media.display()))
        .args(["-map", "0:s", "-f", "srt", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("SubRip is UTF-8")
}

/// Every frame of `media` still carries its captions, and they still say HELLO.
fn assert_keeps_captions(media: &Path, what: &str) {
    let (with, frames) = frames_with_captions(media);
    assert!(
        frames >= 50 && with == frames,
        "{what}: {with} of {frames} frames carry captions"
    );
    let text = caption_text(media);
    assert!(text.contains("HELLO"), "{what}: the captions read {text:?}");
}

/// The rung's segments, in order, joined into one file beside its folder (the init segment first
/// for fMP4): what a player reads, and a file ffmpeg's `movie` filter can open.
fn rung_media(rung: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(rung)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "ts" || e == "m4s" || e == "mp4"))
        .collect();
    // init.mp4 sorts before segment*.m4s.
    files.sort();
    let extension = if files[0].extension().is_some_and(|e| e == "ts") {
        "ts"
    } else {
        "mp4"
    };
    let joined = rung.with_extension(extension);
    let bytes: Vec<u8> = files.iter().flat_map(|file| std::fs::read(file).unwrap()).collect();
    std::fs::write(&joined, bytes).unwrap();
    joined
}

#[test]
fn the_fixture_carries_captions() {
    assert_keeps_captions(&captioned(), "the fixture");
}

#[test]
fn hls_rungs_keep_the_captions_and_every_variant_names_the_cc1_rendition() {
    for format in ["ts", "fmp4"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let args = ["--reps", REPS, "--segment-duration", "1", "--format", format];
        assert_success(&package("hls", &captioned(), &out, &args));
        let master = read_master(&out.join("master.m3u8"));
        assert_eq!(master.variants.len(), 2, "{format}: a variant per rung");
        for variant in &master.variants {
            assert_eq!(variant.attributes.quoted("CLOSED-CAPTIONS"), Some("cc"), "{format}");
            let rung = out.join(&variant.uri).parent().unwrap().to_owned();
            assert_keeps_captions(&rung_media(&rung), &format!("{format} {}", variant.uri));
        }
        let captions: Vec<_> = master
            .media
            .iter()
            .filter(|m| m.plain("TYPE") == Some("CLOSED-CAPTIONS"))
            .collect();
        assert_eq!(captions.len(), 1, "{format}: one captions rendition");
        let rendition = captions[0];
        assert_eq!(rendition.quoted("GROUP-ID"), Some("cc"));
        assert_eq!(rendition.quoted("INSTREAM-ID"), Some("CC1"));
        assert_eq!(rendition.quoted("LANGUAGE"), Some("en"));
        assert_eq!(rendition.quoted("NAME"), Some("English"));
        assert_eq!(rendition.quoted("URI"), None, "{format}: captions have no URI");
    }
}

#[test]
fn dash_rungs_keep_the_captions_and_the_video_set_has_the_cea608_accessibility() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert_success(&package(
        "dash",
        &captioned(),
        &out,
        &["--reps", REPS, "--segment-duration", "1"],
    ));
    for rung in ["180p", "144p"] {
        assert_keeps_captions(&rung_media(&out.join(rung)), rung);
    }
    assert_eq!(cea608_accessibility(&out), vec!["CC1=eng".to_owned()]);
}

/// The values of the video AdaptationSet's CEA-608 Accessibility descriptors.
fn cea608_accessibility(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("manifest.mpd")).unwrap();
    let document = roxmltree::Document::parse(&text).unwrap();
    let video = document
        .descendants()
        .find(|n| n.has_tag_name("AdaptationSet") && n.attribute("contentType") == Some("video"))
        .expect("a video AdaptationSet");
    video
        .children()
        .filter(|n| n.has_tag_name("Accessibility"))
        .filter(|n| n.attribute("schemeIdUri") == Some("urn:scte:dash:cc:cea-608:2015"))
        .map(|n| n.attribute("value").unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn a_source_without_captions_says_none_on_every_variant() {
    let dir = tempfile::tempdir().unwrap();
    let source = plain(dir.path());
    let out = dir.path().join("out");
    let args = ["--reps", REPS, "--segment-duration", "1", "--hls"];
    assert_success(&package("dash", &source, &out, &args));
    let master = read_master(&out.join("master.m3u8"));
    assert_eq!(master.variants.len(), 2);
    for variant in &master.variants {
        assert_eq!(
            variant.attributes.plain("CLOSED-CAPTIONS"),
            Some("NONE"),
            "{}",
            variant.uri
        );
    }
    assert!(master.media.iter().all(|m| m.plain("TYPE") != Some("CLOSED-CAPTIONS")));
    assert!(cea608_accessibility(&out).is_empty(), "the MPD claims captions");
}
