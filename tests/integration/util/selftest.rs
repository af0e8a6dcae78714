//! The judges judged: the helpers checked on input whose answer is known, so a failing
//! product test can be trusted to be about the product.

use super::aes;
use super::bmff;
use super::codecs::codec_string;
use super::ffprobe::{self, number};
use super::h264::avc1_codec;
use super::m3u8::{Attributes, Key, parse_master, parse_media, read_media};
use super::media;
use super::webvtt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn attribute_lists_keep_commas_inside_quotes() {
    let attributes = Attributes::parse(r#"BANDWIDTH=1280000,CODECS="avc1.64001E,mp4a.40.2",RESOLUTION=640x360"#)
        .expect("a valid attribute list");
    assert_eq!(attributes.plain("BANDWIDTH"), Some("1280000"));
    assert_eq!(attributes.quoted("CODECS"), Some("avc1.64001E,mp4a.40.2"));
    assert_eq!(attributes.plain("RESOLUTION"), Some("640x360"));
    assert_eq!(attributes.plain("AUDIO"), None);
    for bad in ["A=1,", "A=1,A=2", r#"A="open"#, "a=1", "A=", r#"A="x"y"#] {
        assert!(Attributes::parse(bad).is_err(), "{bad:?} was accepted");
    }
}

const MASTER: &str = r#"#EXTM3U
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",URI="audio/index.m3u8"
# a comment
#EXT-X-STREAM-INF:BANDWIDTH=900000,CODECS="avc1.64001E,mp4a.40.2",AUDIO="audio"
360p/index.m3u8
"#;

#[test]
fn master_playlist_is_parsed() {
    let master = parse_master(MASTER).expect("a valid master playlist");
    assert!(master.independent_segments);
    assert_eq!(master.media.len(), 1);
    assert_eq!(master.media[0].quoted("URI"), Some("audio/index.m3u8"));
    assert_eq!(master.variants.len(), 1);
    assert_eq!(master.variants[0].uri, "360p/index.m3u8");
    assert_eq!(master.variants[0].attributes.quoted("AUDIO"), Some("audio"));
}

#[test]
fn master_playlist_parser_is_strict() {
    let stray = MASTER.replacen("#EXTM3U", "junk\n#EXTM3U", 1);
    let unknown = MASTER.replace("#EXT-X-INDEPENDENT-SEGMENTS", "#EXT-X-INDEPENDENT-SEGMENT");
    let orphan = MASTER.replace("360p/index.m3u8\n", "");
    let twice = MASTER.replace("#EXTM3U\n", "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for bad in [stray, unknown, orphan, twice] {
        assert!(parse_master(&bad).is_err(), "accepted:\n{bad}");
    }
}

const MEDIA: &str = "#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:2.000,
segment00000.ts
#EXTINF:1.5,title
segment00001.ts
#EXT-X-ENDLIST
";

#[test]
fn media_playlist_is_parsed() {
    let playlist = parse_media(MEDIA).expect("a valid media playlist");
    assert_eq!(playlist.version, Some(3));
    assert_eq!(playlist.target_duration, 2);
    assert_eq!(playlist.media_sequence, 0);
    assert_eq!(playlist.playlist_type.as_deref(), Some("VOD"));
    assert!(playlist.endlist);
    let segments: Vec<(f64, &str)> = playlist.segments.iter().map(|s| (s.duration, s.uri.as_str())).collect();
    assert_eq!(segments, [(2.0, "segment00000.ts"), (1.5, "segment00001.ts")]);
}

#[test]
fn media_playlist_parser_is_strict() {
    let cases = [
        MEDIA.replacen("#EXTM3U\n", "", 1),
        MEDIA.replace("#EXT-X-TARGETDURATION:2\n", ""),
        MEDIA.replace("#EXT-X-TARGETDURATION:2", "#EXT-X-TARGETDURATION:2.5"),
        MEDIA.replace("#EXT-X-VERSION:3", "#EXT-X-VERSION:3\n#EXT-X-VERSION:3"),
        MEDIA.replace("#EXTINF:1.5,title", "#EXTINF:1.5"),
        MEDIA.replace("segment00001.ts\n", ""),
        MEDIA.replace("#EXT-X-ENDLIST", "#EXT-X-ENDLIST\nsegment00002.ts"),
        MEDIA.replace("#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-PLAYLIST-TYPE:vod"),
        MEDIA.replace("#EXT-X-ENDLIST", "#EXT-X-END-LIST"),
    ];
    for bad in cases {
        assert!(parse_media(&bad).is_err(), "accepted:\n{bad}");
    }
}

const FMP4_MEDIA: &str = r#"#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000,
segment00000.m4s
#EXT-X-ENDLIST
"#;

#[test]
fn init_segment_of_a_media_playlist_is_parsed() {
    let playlist = parse_media(FMP4_MEDIA).expect("a valid media playlist");
    assert_eq!(playlist.map.as_deref(), Some("init.mp4"));
    assert_eq!(parse_media(MEDIA).expect("a valid media playlist").map, None);
    let map = "#EXT-X-MAP:URI=\"init.mp4\"\n";
    let cases = [
        FMP4_MEDIA.replace("segment00000.m4s\n", &format!("segment00000.m4s\n{map}")),
        FMP4_MEDIA.replace(map, &format!("{map}{map}")),
        FMP4_MEDIA.replace(r#"URI="init.mp4""#, "URI=init.mp4"),
        FMP4_MEDIA.replace(r#"URI="init.mp4""#, r#"URI="init.mp4",BYTERANGE="100@0""#),
    ];
    for bad in cases {
        assert!(parse_media(&bad).is_err(), "accepted:\n{bad}");
    }
}

const ENCRYPTED_MEDIA: &str = r#"#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-MAP:URI="init.mp4"
#EXT-X-KEY:METHOD=AES-128,URI="../keys/k0.key",IV=0x000102030405060708090A0B0C0D0E0F
#EXTINF:2.000,
segment00000.m4s
#EXTINF:2.000,
segment00001.m4s
#EXT-X-KEY:METHOD=AES-128,URI="https://keys.example.com/k1.key"
#EXTINF:2.000,
segment00002.m4s
#EXT-X-KEY:METHOD=NONE
#EXTINF:2.000,
segment00003.m4s
#EXT-X-ENDLIST
"#;

#[test]
fn keys_of_a_media_playlist_are_parsed() {
    let playlist = parse_media(ENCRYPTED_MEDIA).expect("a valid media playlist");
    assert_eq!(playlist.key_tags, [0, 2, 3]);
    assert_eq!(playlist.map_key, None, "EXT-X-MAP comes before the first EXT-X-KEY");
    let first = Key {
        uri: "../keys/k0.key".into(),
        iv: Some(0x0001_0203_0405_0607_0809_0a0b_0c0d_0e0f),
    };
    let second = Key {
        uri: "https://keys.example.com/k1.key".into(),
        iv: None,
    };
    let keys: Vec<Option<&Key>> = playlist.segments.iter().map(|s| s.key.as_ref()).collect();
    assert_eq!(keys, [Some(&first), Some(&first), Some(&second), None]);
    let map = "#EXT-X-MAP:URI=\"init.mp4\"\n";
    let map_under_key = ENCRYPTED_MEDIA.replace(map, "").replace(
        "#EXTINF:2.000,\nsegment00000",
        &format!("{map}#EXTINF:2.000,\nsegment00000"),
    );
    let playlist = parse_media(&map_under_key).expect("a valid media playlist");
    assert_eq!(playlist.map_key, Some(first));
}

#[test]
fn key_tags_are_parsed_strictly() {
    let key = r#"#EXT-X-KEY:METHOD=AES-128,URI="../keys/k0.key",IV=0x000102030405060708090A0B0C0D0E0F"#;
    let with = |replacement: &str| ENCRYPTED_MEDIA.replace(key, replacement);
    let cases = [
        with(r#"#EXT-X-KEY:METHOD=AES-128,URI="k.key",IV=0x000102030405060708090A0B0C0D0E"#),
        with(r#"#EXT-X-KEY:METHOD=AES-128,URI="k.key",IV="0x000102030405060708090A0B0C0D0E0F""#),
        with(r#"#EXT-X-KEY:METHOD=AES-128,URI="k.key",IV=000102030405060708090A0B0C0D0E0F"#),
        with(r#"#EXT-X-KEY:METHOD=AES-128,URI="k.key",IV=0x0001020304050607-8090A0B0C0D0E0F"#),
        with(r#"#EXT-X-KEY:METHOD=AES-128,URI=k.key"#),
        with("#EXT-X-KEY:METHOD=AES-128"),
        with(r#"#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k.key""#),
        with(r#"#EXT-X-KEY:METHOD=NONE,URI="k.key""#),
        with(r#"#EXT-X-KEY:METHOD=AES-128,URI="k.key",KEYFORMAT="identity""#),
        with(&format!("{key}\n#EXT-X-KEY:METHOD=NONE")),
        ENCRYPTED_MEDIA.replace("#EXT-X-ENDLIST", "#EXT-X-KEY:METHOD=NONE\n#EXT-X-ENDLIST"),
    ];
    for bad in cases {
        assert!(parse_media(&bad).is_err(), "accepted:\n{bad}");
    }
}

#[test]
fn generated_sources_are_what_they_claim() {
    let json = ffprobe::streams_and_format(&media("portrait"));
    let video = &json["streams"][0];
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360))
    );
    let rotation = number(&video["side_data_list"][0]["rotation"]);
    assert_eq!(rotation.abs(), 90.0);
    let json = ffprobe::streams_and_format(&media("sar"));
    assert_eq!(json["streams"][0]["sample_aspect_ratio"], "4:3");
    assert_eq!(json["streams"][0]["display_aspect_ratio"], "16:9");
    let frames = ffprobe::video_frames(&media("ntsc"));
    assert_eq!(frames.count, 210, "7 s at 29.97 fps");
}

#[test]
fn sps_reader_agrees_with_ffprobe() {
    let source = media("main");
    let video = &ffprobe::streams_and_format(&source)["streams"][0];
    assert_eq!((&video["profile"], &video["level"]), (&"High".into(), &30.into()));
    assert_eq!(
        avc1_codec(&source),
        "avc1.64001E",
        "High (100 = 0x64), level 3.0 (0x1E)"
    );
}

/// ffmpeg's own HLS muxer cuts at source keyframes and writes EXTINF from timestamps:
/// the parser reads its playlist, and the durations ffprobe measures match it.
#[test]
fn ffmpeg_hls_output_is_parsed_and_measured() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(media("main"))
        .args(["-c", "copy", "-map", "0:v", "-f", "hls", "-hls_time", "2"])
        .args(["-hls_playlist_type", "vod", "-hls_segment_filename"])
        .arg(dir.path().join("segment%05d.ts"))
        .arg(dir.path().join("index.m3u8"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    let playlist = read_media(&dir.path().join("index.m3u8"));
    assert!(playlist.endlist && playlist.segments.len() > 1);
    let starts: Vec<i64> = playlist
        .segments
        .iter()
        .map(|segment| {
            let tracks = ffprobe::tracks(&dir.path().join(&segment.uri));
            assert!(tracks[0].packets[0].keyframe, "{} starts with a keyframe", segment.uri);
            tracks[0]
                .packets
                .iter()
                .map(|packet| packet.pts)
                .min()
                .expect("packets")
        })
        .collect();
    for (pair, segment) in starts.windows(2).zip(&playlist.segments) {
        let measured = (pair[1] - pair[0]) as f64 / 90_000.0;
        assert!(
            (measured - segment.duration).abs() < 1e-3,
            "{}: {measured}",
            segment.uri
        );
    }
    let frames = ffprobe::video_frames(&dir.path().join("index.m3u8"));
    assert_eq!(frames.count, 200, "8 s at 25 fps");
    assert!((frames.span - 7.96).abs() < 1e-6, "frames span {} s", frames.span);
}

/// `out/name.m3u8` made by ffmpeg's HLS muxer from `source` with `args` (segments in `out`,
/// named `name0.extension`…).
fn ffmpeg_hls(source: &Path, out: &Path, name: &str, extension: &str, args: &[&str]) -> PathBuf {
    let playlist = out.join(format!("{name}.m3u8"));
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(source)
        .args(["-map", "0:v"])
        .args(args)
        .args(["-f", "hls", "-hls_playlist_type", "vod", "-hls_segment_filename"])
        .arg(out.join(format!("{name}%d.{extension}")))
        .arg(&playlist)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg made no {name} package");
    playlist
}

/// ffmpeg's HLS muxer encrypting with a key-info file: the parser reads its EXT-X-KEY; openssl
/// decrypts every segment with that key and IV into MPEG-TS that starts with a keyframe, and
/// not with another key; libav plays the playlist through the key file.
#[test]
fn ffmpeg_encrypted_hls_output_is_parsed_and_decrypted() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let key: aes::Key = *b"0123456789abcdef";
    let iv = 0x0011_2233_4455_6677_8899_aabb_ccdd_eeff;
    let key_file = dir.path().join("secret.key");
    std::fs::write(&key_file, key).expect("write the key");
    let key_info = dir.path().join("key.info");
    let lines = format!("secret.key\n{}\n{}\n", key_file.display(), aes::hex(iv));
    std::fs::write(&key_info, lines).expect("write the key info");
    let key_info = key_info.to_str().expect("UTF-8 path");
    let args = ["-c", "copy", "-hls_time", "1", "-hls_key_info_file", key_info];
    let playlist_path = ffmpeg_hls(&media("tiny"), dir.path(), "encrypted", "ts", &args);
    let playlist = read_media(&playlist_path);
    assert_eq!(playlist.key_tags, [0]);
    let wrong = key.map(|byte| byte ^ 0x80);
    for segment in &playlist.segments {
        let expected = Key {
            uri: "secret.key".into(),
            iv: Some(iv),
        };
        assert_eq!(segment.key.as_ref(), Some(&expected), "{}", segment.uri);
        let (encrypted, clear) = (dir.path().join(&segment.uri), dir.path().join("clear.ts"));
        aes::decrypt(&key, iv, &encrypted, &clear).expect("openssl decrypts ffmpeg's segment");
        assert!(
            ffprobe::tracks(&clear)[0].packets[0].keyframe,
            "{} starts with a keyframe",
            segment.uri
        );
        assert!(aes::decrypts_to_ts(&key, iv, &encrypted));
        assert!(
            !aes::decrypts_to_ts(&wrong, iv, &encrypted),
            "{} decrypts with another key",
            segment.uri
        );
    }
    ffprobe::assert_decodes_cleanly(&playlist_path);
    assert_eq!(ffprobe::video_frames(&playlist_path).count, 75, "3 s at 25 fps");
}

/// ffmpeg's own stream copies keep the source's packets, in TS (as decoded pictures and
/// times) and in fMP4 (sizes too); a new encoding of the same pictures does not.
#[test]
fn stream_copies_are_told_from_encodings() {
    let source = media("tiny");
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let ts = ffmpeg_hls(&source, dir.path(), "ts", "ts", &["-c", "copy"]);
    ffprobe::assert_same_video_packets(&source, &ts, false);
    let fmp4 = [
        "-c",
        "copy",
        "-hls_segment_type",
        "fmp4",
        "-hls_fmp4_init_filename",
        "init.mp4",
    ];
    let fmp4 = ffmpeg_hls(&source, dir.path(), "fmp4", "m4s", &fmp4);
    ffprobe::assert_same_video_packets(&source, &fmp4, true);
    let encoded = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "37"];
    let encoded = ffmpeg_hls(&source, dir.path(), "encoded", "ts", &encoded);
    let judged = std::panic::catch_unwind(|| ffprobe::assert_same_video_packets(&source, &encoded, false)).err();
    let message = judged.and_then(|panic| panic.downcast::<String>().ok());
    assert!(
        message.is_some_and(|message| message.contains("the video packets of")),
        "a new encoding must be told from a copy"
    );
}

/// A copy of a media segment from its moof on: ffmpeg writes styp and sidx boxes before it
/// (trun data offsets count from the moof, so the copy stays valid).
fn from_moof(segment: &Path) -> PathBuf {
    let bytes = std::fs::read(segment).expect("read a segment");
    let mut at = 0;
    while &bytes[at + 4..at + 8] != b"moof" {
        at += u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
    }
    let copy = segment.with_extension("moof.m4s");
    std::fs::write(&copy, &bytes[at..]).expect("write a segment");
    copy
}

/// ffmpeg's DASH muxer copying `tiny` into 1 s fragments: per stream `id` (0 video, 1 audio),
/// `init-<id>.mp4` and `seg-<id>-00001.m4s`… (cut down to moof + mdat).
fn ffmpeg_dash(out: &Path) -> impl Fn(u32) -> (PathBuf, Vec<PathBuf>) + '_ {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(media("tiny"))
        .args(["-map", "0", "-c", "copy", "-f", "dash", "-seg_duration", "1"])
        .args(["-init_seg_name", "init-$RepresentationID$.mp4"])
        .args(["-media_seg_name", "seg-$RepresentationID$-$Number%05d$.m4s"])
        .arg(out.join("manifest.mpd"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg made no DASH package");
    move |id| {
        let segments: Vec<PathBuf> = (1..)
            .map(|number| out.join(format!("seg-{id}-{number:05}.m4s")))
            .take_while(|path| path.exists())
            .map(|path| from_moof(&path))
            .collect();
        (out.join(format!("init-{id}.mp4")), segments)
    }
}

/// ffmpeg's DASH fragments meet every rule of the box reader: its video delays presentation with
/// positive composition offsets and an edit list that takes them off again (the layout stream-pack
/// writes too), so each fragment is presented from its tfdt; the avcC gives the SPS's codec string.
#[test]
fn box_reader_judges_ffmpeg_dash_fragments() {
    let dir = tempfile::tempdir().expect("create a temporary folder");
    let files = ffmpeg_dash(dir.path());
    let (init, segments) = files(1);
    let audio = bmff::read_track(&init, &segments);
    assert_eq!(audio.fragments.len(), 4, "3 s of audio in 1 s fragments (and a tail)");
    assert_eq!(codec_string(&audio.init.codec), "mp4a.40.2");
    let (init, segments) = files(0);
    let video = bmff::read_track(&init, &segments);
    assert_eq!(codec_string(&video.init.codec), avc1_codec(&media("tiny")));
    assert!(
        video.init.edit_start > 0,
        "ffmpeg's video has an edit list that starts after 0"
    );
    let first = &video.fragments[0];
    assert_eq!(
        first.samples[0].composition_offset, video.init.edit_start as i64,
        "the edit list takes exactly the first sample's composition offset off"
    );
}

#[test]
fn the_webvtt_reader_is_strict() {
    let good = "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:126000,LOCAL:00:00:00.000\n\n1\n00:00:01.500 --> 00:01:02.000 line:0\nHi\nthere\n";
    let file = webvtt::parse(good).unwrap();
    assert_eq!(file.timestamp_map, Some((126_000, 0.0)));
    assert_eq!(file.cues[0].text, "Hi\nthere");
    let (start, end) = file.media_times(&file.cues[0]);
    assert!((start - 2.9).abs() < 1e-9 && (end - 63.4).abs() < 1e-9, "{start} {end}");
    assert!(webvtt::parse("WEBVTTX\n\n").is_err());
    assert!(webvtt::parse("WEBVTT\n\n00:01,500 --> 00:02.000\nx\n").is_err());
    assert!(webvtt::parse("WEBVTT\n\n00:02.000 --> 00:01.000\nx\n").is_err());
    assert!(webvtt::parse("WEBVTT\n\n00:03.000 --> 00:04.000\nx\n\n00:01.000 --> 00:02.000\ny\n").is_err());
}

/// The test cluster runs a throttled array job, then the job that depends on it.
#[test]
fn the_test_slurm_runs_an_array_and_then_its_dependent_job() {
    let slurm = super::slurm::Slurm::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().display();
    let sbatch = |args: &[&str]| {
        let output = slurm
            .command("sbatch")
            .arg("--parsable")
            .args(args)
            .output()
            .expect("run sbatch");
        assert!(
            output.status.success(),
            "sbatch: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let array = sbatch(&[
        "--array=0-3%2",
        &format!("--output={out}/task-%a.log"),
        "--wrap",
        &format!("echo $SLURM_ARRAY_TASK_ID > {out}/task-$SLURM_ARRAY_TASK_ID"),
    ]);
    let after = sbatch(&[
        &format!("--dependency=afterok:{array}"),
        &format!("--output={out}/after.log"),
        "--wrap",
        &format!("cat {out}/task-? > {out}/all"),
    ]);
    let states = slurm.wait_for_job(&after, std::time::Duration::from_secs(60));
    assert_eq!(states, ["COMPLETED"], "{}", slurm.logs());
    let all = std::fs::read_to_string(dir.path().join("all")).unwrap();
    assert_eq!(all, "0\n1\n2\n3\n", "every task ran before the dependent job");
}
