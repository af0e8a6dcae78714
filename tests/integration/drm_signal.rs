//! The signalling and licence options of common encryption: FairPlay's `skd://` key tags in HLS
//! (`--drm fairplay --fairplay-uri`, for cbcs CMAF and SAMPLE-AES TS), the licence URLs of
//! ClearKey and PlayReady as `dashif:Laurl` in the MPD, and `--pssh-in-manifest-only`. The MPD is
//! read by the tests' XML reader, the playlists by their attribute-list reader, init segments by
//! their box reader, and FFmpeg 8.1 decrypts what has no pssh box in its init segment.

use std::path::{Path, PathBuf};

use crate::cenc::{boxes_at, framemd5, hex, track, write};
use crate::util::m3u8::Attributes;
use crate::util::mpd::{self, ContentProtection};
use crate::util::{cli, media};

const KID: [u8; 16] = 0x0f3d6b1c_84a2_4c5e_9b7d_2a61c0e4f5a8_u128.to_be_bytes();
const KEY: [u8; 16] = 0x7c2e91d4_0a6b_4f38_b5c1_e9d2063f84a7_u128.to_be_bytes();
const FAIRPLAY_URI: &str = "skd://ksm.example/asset-17";
const FAIRPLAY_FORMAT: &str = "com.apple.streamingkeydelivery";
const FAIRPLAY_DASH: &str = "urn:uuid:94ce86fb-07ff-4f43-adb8-93d2fa968ca2";
const CLEARKEY_DASH: &str = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e";
const PLAYREADY: &str = "urn:uuid:9a04f079-9840-4286-ab92-e65be0885f95";
const WIDEVINE: &str = "urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
const TRACKS: [&str; 2] = ["90p", "audio"];
const COPY: [&str; 3] = ["--copy", "--segment-duration", "1"];

/// `stream-pack COMMAND tiny --copy ARGS`, which must succeed: its temporary parent and output.
fn package(command: &str, args: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let parent = tempfile::tempdir().expect("a temporary folder");
    let out = parent.path().join("out");
    let args = [&COPY[..], args].concat();
    cli::assert_success(&cli::package(command, &media("tiny"), &out, &args));
    (parent, out)
}

/// `--encrypt SCHEME` with the test's key and key ID, signalling `drm`.
fn given_key(scheme: &str, drm: &str) -> Vec<String> {
    let (kid, key) = (hex(&KID), hex(&KEY));
    ["--encrypt", scheme, "--key-id", &kid, "--key", &key, "--drm", drm]
        .map(String::from)
        .to_vec()
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The attribute lists of a playlist's lines starting with `tag`, and where each starts.
fn tags(text: &str, tag: &str) -> Vec<(usize, Attributes)> {
    text.match_indices(tag)
        .map(|(at, _)| {
            let line = text[at + tag.len()..].lines().next().unwrap_or_default();
            (at, Attributes::parse(line).expect("an attribute list"))
        })
        .collect()
}

/// The ContentProtection elements of every AdaptationSet of the package's MPD.
fn content_protection(out: &Path) -> Vec<Vec<ContentProtection>> {
    let mpd = mpd::read_mpd(&out.join("manifest.mpd"));
    mpd.adaptation_sets
        .into_iter()
        .map(|set| set.content_protection)
        .collect()
}

fn scheme_uri(protection: &ContentProtection) -> &str {
    protection.attributes.get("schemeIdUri").expect("a schemeIdUri")
}

/// `dash --hls --encrypt cbcs --drm clearkey,fairplay`: each media playlist gives ClearKey's key,
/// then FairPlay's (SAMPLE-AES, the skd:// URI, Apple's key format, version 1), both before
/// EXT-X-MAP; the master gives the same as session keys. The MPD has no FairPlay element: DASH
/// has no FairPlay signalling.
#[test]
fn fairplay_is_signalled_in_the_playlists_and_not_in_the_mpd() {
    let key = given_key("cbcs", "clearkey,fairplay");
    let args = [&["--hls"][..], &strs(&key), &["--fairplay-uri", FAIRPLAY_URI]].concat();
    let (_dir, out) = package("dash", &args);
    for name in TRACKS {
        let text = std::fs::read_to_string(out.join(name).join("index.m3u8")).expect("a media playlist");
        let map_at = text.find("#EXT-X-MAP:").expect("an EXT-X-MAP");
        let keys = tags(&text, "#EXT-X-KEY:");
        assert!(keys.iter().all(|(at, _)| *at < map_at), "{name}: keys before EXT-X-MAP");
        let formats: Vec<_> = keys.iter().map(|(_, k)| k.quoted("KEYFORMAT")).collect();
        assert_eq!(formats, [Some("org.w3.clearkey"), Some(FAIRPLAY_FORMAT)], "{name}");
        let fairplay = &keys[1].1;
        assert_eq!(fairplay.plain("METHOD"), Some("SAMPLE-AES"));
        assert_eq!(fairplay.quoted("URI"), Some(FAIRPLAY_URI));
        assert_eq!(fairplay.quoted("KEYFORMATVERSIONS"), Some("1"));
    }
    let master = std::fs::read_to_string(out.join("master.m3u8")).expect("the master playlist");
    let session: Vec<_> = tags(&master, "#EXT-X-SESSION-KEY:")
        .into_iter()
        .map(|(_, k)| {
            (
                k.quoted("KEYFORMAT").map(str::to_owned),
                k.quoted("URI").map(str::to_owned),
            )
        })
        .collect();
    assert!(
        session.contains(&(Some(FAIRPLAY_FORMAT.into()), Some(FAIRPLAY_URI.into()))),
        "{session:?}"
    );
    for set in content_protection(&out) {
        let uris: Vec<&str> = set.iter().map(scheme_uri).collect();
        assert!(!uris.contains(&FAIRPLAY_DASH), "{uris:?}");
        assert!(uris.contains(&CLEARKEY_DASH), "{uris:?}");
    }
}

/// `hls --encrypt sample-aes --drm fairplay`: every SAMPLE-AES identity key of the TS playlists
/// is followed by FairPlay's, with the same IV.
#[test]
fn sample_aes_segments_name_fairplay_beside_each_key() {
    let args = [
        "--encrypt",
        "sample-aes",
        "--drm",
        "fairplay",
        "--fairplay-uri",
        FAIRPLAY_URI,
    ];
    let (_dir, out) = package("hls", &args);
    for name in TRACKS {
        let text = std::fs::read_to_string(out.join(name).join("index.m3u8")).expect("a media playlist");
        let keys: Vec<Attributes> = tags(&text, "#EXT-X-KEY:").into_iter().map(|(_, k)| k).collect();
        assert_eq!(keys.len(), 2, "{name}: one key, named twice");
        assert_eq!(keys[0].quoted("KEYFORMAT"), Some("identity"));
        assert_eq!(keys[1].quoted("KEYFORMAT"), Some(FAIRPLAY_FORMAT));
        assert_eq!(keys[1].quoted("URI"), Some(FAIRPLAY_URI));
        for key in &keys {
            assert_eq!(key.plain("METHOD"), Some("SAMPLE-AES"));
        }
        assert!(keys[0].plain("IV").is_some_and(|iv| iv.len() == 34));
        assert_eq!(keys[0].plain("IV"), keys[1].plain("IV"), "{name}: one IV");
    }
}

/// `--clearkey-la-url` and `--playready-la-url`: ClearKey's and PlayReady's ContentProtection
/// each carry their URL as `dashif:Laurl` of licence type EME-1.0, XML-escaped; Widevine none.
#[test]
fn licence_urls_are_dashif_laurl_elements() {
    let clearkey = "https://licence.example/ck?a=1&b=<2>";
    let playready = "https://licence.example/pr?c=3";
    let key = given_key("cenc", "clearkey,widevine,playready");
    let urls = ["--clearkey-la-url", clearkey, "--playready-la-url", playready];
    let (_dir, out) = package("dash", &[&strs(&key), &urls[..]].concat());
    let text = std::fs::read_to_string(out.join("manifest.mpd")).expect("the MPD");
    assert!(text.contains("ck?a=1&amp;b=&lt;2&gt;"), "escaped: {text}");
    for set in content_protection(&out) {
        let laurl = |uri: &str| {
            let found = set.iter().find(|p| scheme_uri(p) == uri);
            found.unwrap_or_else(|| panic!("no {uri}")).laurl.clone()
        };
        assert_eq!(laurl(CLEARKEY_DASH), [(Some("EME-1.0".into()), clearkey.into())]);
        assert_eq!(laurl(PLAYREADY), [(Some("EME-1.0".into()), playready.into())]);
        assert_eq!(laurl(WIDEVINE), []);
    }
}

/// `--pssh-in-manifest-only`: no init segment has a pssh box (with the flag left out they have
/// three), the MPD still gives each system's, and FFmpeg 8.1 decrypts every track to the samples
/// of the same package made clear.
#[test]
fn pssh_in_manifest_only_leaves_the_init_segments_without_pssh() {
    let (dir, clear) = package("dash", &[]);
    let key = given_key("cbcs", "clearkey,widevine,playready");
    let (_with, with_pssh) = package("dash", &strs(&key));
    let (_keep, out) = package("dash", &[&strs(&key)[..], &["--pssh-in-manifest-only"]].concat());
    for name in TRACKS {
        let psshs = |package: &Path| boxes_at(&track(package, name).0, &[b"moov", b"pssh"]).len();
        assert_eq!(psshs(&with_pssh), 3, "{name}: pssh boxes without the flag");
        assert_eq!(psshs(&out), 0, "{name}: no pssh box in the init segment");
        let file = |package: &Path, label: &str| {
            let (init, segments) = track(package, name);
            write(
                dir.path(),
                &format!("{name}-{label}.mp4"),
                &[init, segments.concat()].concat(),
            )
        };
        let (clear_file, encrypted) = (file(&clear, "clear"), file(&out, "manifest-only"));
        assert_ne!(std::fs::read(&clear_file).unwrap(), std::fs::read(&encrypted).unwrap());
        assert_eq!(
            framemd5(&encrypted, Some(KEY), true),
            framemd5(&clear_file, None, true),
            "{name}: decrypted frames"
        );
    }
    for set in content_protection(&out) {
        let with_box: Vec<&str> = set.iter().filter(|p| p.pssh.len() == 1).map(scheme_uri).collect();
        assert_eq!(with_box, [CLEARKEY_DASH, WIDEVINE, PLAYREADY]);
    }
}

/// What cannot be signalled is refused in one line naming the option, before any package.
#[test]
fn unfit_signalling_is_refused() {
    let refused = |command: &str, args: &[&str], words: &[&str]| {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("out");
        let args = [&COPY[..], args].concat();
        let line = cli::assert_failure(&cli::package(command, &media("tiny"), &out, &args), 2);
        for word in words {
            assert!(line.contains(word), "{line:?} does not say {word}");
        }
        assert!(!out.exists(), "no package");
    };
    let cbcs = ["--encrypt", "cbcs", "--drm", "fairplay"];
    refused("dash", &[&cbcs[..], &["--hls"]].concat(), &["--fairplay-uri", "skd://"]);
    for bad in ["https://ksm.example/a", "skd://", "skd://a\"b", "skd://a b"] {
        refused(
            "dash",
            &[&cbcs[..], &["--hls", "--fairplay-uri", bad]].concat(),
            &["--fairplay-uri", "skd://"],
        );
    }
    let fairplay = ["--drm", "fairplay", "--fairplay-uri", FAIRPLAY_URI];
    refused(
        "dash",
        &[&["--encrypt", "cenc", "--hls"][..], &fairplay].concat(),
        &["--drm", "cbcs"],
    );
    refused(
        "dash",
        &[&["--encrypt", "cbcs"][..], &fairplay].concat(),
        &["--drm", "HLS"],
    );
    refused(
        "hls",
        &[&["--encrypt", "aes-128"][..], &fairplay].concat(),
        &["--drm", "sample-aes"],
    );
    refused(
        "hls",
        &[&["--encrypt", "sample-aes", "--key-rotation", "2"][..], &fairplay].concat(),
        &["--key-rotation", "one key"],
    );
    let uri_alone = ["--encrypt", "cbcs", "--hls", "--fairplay-uri", FAIRPLAY_URI];
    refused("dash", &uri_alone, &["--fairplay-uri", "fairplay"]);
    refused(
        "dash",
        &["--encrypt", "cenc", "--clearkey-la-url", "ftp://x"],
        &["--clearkey-la-url", "http"],
    );
    refused(
        "dash",
        &[
            "--encrypt",
            "cenc",
            "--drm",
            "widevine",
            "--clearkey-la-url",
            "https://l.example/",
        ],
        &["--clearkey-la-url", "clearkey"],
    );
    refused(
        "hls",
        &[
            "--format",
            "fmp4",
            "--encrypt",
            "cbcs",
            "--clearkey-la-url",
            "https://l.example/",
        ],
        &["--clearkey-la-url", "MPD"],
    );
    refused(
        "hls",
        &["--encrypt", "--pssh-in-manifest-only"],
        &["--pssh-in-manifest-only", "cenc"],
    );
}

/// `dash --copy tiny -o OUT --encrypt cbcs --key-destination DEST` (with `env`): the run's
/// stderr, which names the key info where it went, and the parent of OUT.
fn package_with_key_destination(
    destination: &str,
    env: &[(&str, String)],
    extra: &[&str],
) -> (String, tempfile::TempDir) {
    let parent = tempfile::tempdir().expect("a temporary folder");
    let out = parent.path().join("out");
    let out_arg = out.to_str().expect("UTF-8 path");
    let tiny = media("tiny");
    let args = [
        &["dash", tiny.to_str().unwrap(), "-o", out_arg, "--progress", "none"][..],
        &COPY,
    ]
    .concat();
    let args = [
        &args[..],
        &["--encrypt", "cbcs", "--key-destination", destination],
        extra,
    ]
    .concat();
    let output = cli::run_with_env(args, env);
    cli::assert_success(&output);
    (String::from_utf8_lossy(&output.stderr).into_owned(), parent)
}

/// The key info's URL the run's notes name.
fn key_info_url(said: &str) -> String {
    let line = said
        .lines()
        .find_map(|l| l.strip_prefix("note: key info for operators: "));
    line.unwrap_or_else(|| panic!("no key info named in {said}")).to_owned()
}

/// What a key destination received, fetched with `fetch`: the key info names one key, whose key
/// ID the MPD signals and which decrypts the package at `out` to the clear package's frames; no
/// key or key info is under `clean`.
fn assert_keys_arrived(info_url: &str, out: &Path, clean: &Path, fetch: impl Fn(&str) -> Vec<u8>) {
    let info: serde_json::Value = serde_json::from_slice(&fetch(info_url)).expect("key info JSON");
    let keys = info["keys"].as_array().expect("a list of keys");
    let [record] = &keys[..] else {
        panic!("one key in {info}")
    };
    let file = record["file"].as_str().expect("the key's file");
    let key: [u8; 16] = fetch(file).try_into().expect("16 raw bytes");
    let signalled = content_protection(out)[0][0].default_kid.clone();
    assert_eq!(
        signalled.as_deref(),
        record["kid"].as_str(),
        "the key info's key ID is signalled"
    );
    let (clear_parent, clear) = package("dash", &[]);
    let (init, segments) = track(out, "90p");
    let encrypted = write(
        clear_parent.path(),
        "encrypted.mp4",
        &[init, segments.concat()].concat(),
    );
    let (init, segments) = track(&clear, "90p");
    let clear_file = write(clear_parent.path(), "video.mp4", &[init, segments.concat()].concat());
    assert_eq!(framemd5(&encrypted, Some(key), true), framemd5(&clear_file, None, true));
    let local = crate::encrypt::files_under(clean);
    let leaked: Vec<_> = local
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".key") || p.to_string_lossy().ends_with(".keyinfo.json"))
        .collect();
    assert!(leaked.is_empty(), "keys kept locally: {leaked:?}");
}

/// `--key-destination http://…/keys/`: the key and key info are PUT to the WebDAV server, and
/// nothing of them is local.
#[test]
fn keys_go_to_an_http_key_destination() {
    let dav = crate::util::dav::Dav::start();
    let (said, parent) = package_with_key_destination(&dav.url("keys/"), &[], &[]);
    let info_url = key_info_url(&said);
    assert!(info_url.starts_with(&dav.url("keys/")), "{info_url}");
    let received = crate::encrypt::files_under(&dav.root.join("keys"));
    assert_eq!(received.len(), 2, "a key and its key info: {received:?}");
    let out = parent.path().join("out");
    assert_keys_arrived(&info_url, &out, parent.path(), |url| {
        crate::util::download::run_curl(std::iter::empty::<&str>(), url)
    });
}

/// `--key-destination s3://media/keys/`: the key and key info are in the bucket.
#[test]
fn keys_go_to_an_s3_key_destination() {
    let garage = crate::util::garage::Garage::start();
    let endpoint = ["--s3-endpoint", garage.endpoint.as_str()];
    let (said, parent) = package_with_key_destination(&garage.s3_url("keys/"), &garage.env(), &endpoint);
    let info_url = key_info_url(&said);
    assert!(info_url.starts_with(&garage.s3_url("keys/")), "{info_url}");
    let out = parent.path().join("out");
    assert_keys_arrived(&info_url, &out, parent.path(), |url| {
        let key = url.strip_prefix("s3://media/").expect("an object of the bucket");
        crate::util::download::run_curl(garage.curl_args(), &garage.http_url(key))
    });
}

/// A key destination equal to or inside -o, local or remote, is refused before anything is
/// written; so is one beside --key-dir.
#[test]
fn a_key_destination_next_to_the_content_is_refused() {
    let dav = crate::util::dav::Dav::start();
    let parent = tempfile::tempdir().unwrap();
    let out = parent.path().join("out");
    let inside = out.join("keys");
    let out_arg = out.to_str().unwrap();
    let tiny = media("tiny");
    let refused = |output: &str, destination: &str, words: &[&str]| {
        let args = [
            &["dash", tiny.to_str().unwrap(), "-o", output, "--encrypt", "cbcs"][..],
            &["--key-destination", destination],
            &COPY,
        ]
        .concat();
        let line = cli::assert_failure(&cli::run(args), 2);
        for word in words {
            assert!(line.contains(word), "{line:?} does not say {word}");
        }
    };
    refused(
        out_arg,
        inside.to_str().unwrap(),
        &["--key-destination", "next to the content"],
    );
    refused(out_arg, out_arg, &["--key-destination", "next to the content"]);
    refused(
        &dav.url("pkg/"),
        &dav.url("pkg/keys/"),
        &["--key-destination", "next to the content"],
    );
    refused(
        &dav.url("pkg/"),
        &dav.url("pkg/"),
        &["--key-destination", "next to the content"],
    );
    refused(
        "s3://media/pkg/",
        "s3://media/pkg/k/",
        &["--key-destination", "next to the content"],
    );
    assert!(!out.exists(), "no package");
    assert!(crate::encrypt::files_under(&dav.root).is_empty(), "nothing published");
    let with_key_dir = [
        &["dash", tiny.to_str().unwrap(), "-o", out_arg, "--encrypt", "cbcs"][..],
        &COPY,
    ]
    .concat();
    let both = [&with_key_dir[..], &["--key-dir", "k", "--key-destination", "j"]].concat();
    let line = cli::assert_failure(&cli::run(both), 2);
    assert!(
        line.contains("--key-dir") && line.contains("--key-destination"),
        "{line}"
    );
    let ftp = [&with_key_dir[..], &["--key-destination", "ftp://keys.example/k/"]].concat();
    let line = cli::assert_failure(&cli::run(ftp), 2);
    assert!(line.contains("--key-destination") && line.contains("ftp://"), "{line}");
    let keys_url = dav.url("keys/");
    let aes = [
        &["hls", tiny.to_str().unwrap(), "-o", out_arg, "--encrypt"][..],
        &["--key-destination", &keys_url],
        &COPY,
    ]
    .concat();
    let line = cli::assert_failure(&cli::run(aes), 2);
    assert!(line.contains("--key-url"), "{line}");
}

/// A job that fails after its key went to the key destination (its content's server refuses
/// connections) deletes the key and leaves the key destination empty.
#[test]
fn a_failed_job_withdraws_its_uploaded_keys() {
    let dav = crate::util::dav::Dav::start();
    let closed = format!("http://127.0.0.1:{}/pkg/", crate::util::daemon::free_port());
    let tiny = media("tiny");
    let keys = dav.url("keys/");
    let args = [
        &["dash", tiny.to_str().unwrap(), "-o", &closed, "--encrypt", "cbcs"][..],
        &["--key-destination", &keys],
        &COPY,
    ]
    .concat();
    cli::assert_failure(&cli::run(args), 4);
    let puts = dav
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with("/keys/"))
        .count();
    assert!(puts >= 1, "the key was uploaded before the failure");
    assert_eq!(
        crate::encrypt::files_under(&dav.root.join("keys")),
        Vec::<PathBuf>::new()
    );
}

/// `-o http://…/pkg/ --key-destination http://…/keys/`, nothing local: the package is under
/// pkg/ without any key, the key and key info under keys/, and the package decrypts with the key.
#[test]
fn remote_content_and_remote_keys_stay_apart() {
    let dav = crate::util::dav::Dav::start();
    let tiny = media("tiny");
    let (content, keys) = (dav.url("pkg/"), dav.url("keys/"));
    let args = [
        &["dash", tiny.to_str().unwrap(), "-o", &content, "--encrypt", "cbcs"][..],
        &["--key-destination", &keys],
        &COPY,
    ]
    .concat();
    let output = cli::run(args);
    cli::assert_success(&output);
    let info_url = key_info_url(&String::from_utf8_lossy(&output.stderr));
    assert!(info_url.starts_with(&keys), "{info_url}");
    let published = dav.root.join("pkg");
    assert_keys_arrived(&info_url, &published, &published, |url| {
        crate::util::download::run_curl(std::iter::empty::<&str>(), url)
    });
}
