//! Issue 20, data loss and security: keys of other packages, playlist injection from the
//! input, `-o` over the inputs, side files without end. Each test is named after its item.

use crate::util::aes::{self, Key};
use crate::util::cli::{self, FAST};
use crate::util::m3u8;
use crate::util::media;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stream-pack");

/// One 90p rung of the 3 s `tiny` source in 1 s segments.
const TINY: [&str; 4] = ["--reps", "90", "--segment-duration", "1"];

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Every file in `dir` and its bytes (files that vanish while read are left out).
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .filter_map(|entry| {
            let path = entry.expect("folder entry").path();
            let bytes = std::fs::read(&path).ok()?;
            Some((path.file_name()?.to_string_lossy().into_owned(), bytes))
        })
        .collect()
}

/// `stream-pack hls tiny -o OUT --encrypt --key-dir KEYS`, which must succeed.
fn encrypted_tiny(out: &Path, keys: &Path) {
    let args = [&TINY[..], &FAST, &["--encrypt", "--key-dir", path_str(keys)]].concat();
    cli::assert_success(&cli::hls(&media("tiny"), out, &args));
}

/// Every segment of the 90p and audio playlists of `out` decrypts with the key file its
/// EXT-X-KEY names (a relative URI) and the IV it gives.
fn assert_package_decrypts(out: &Path) {
    for dir in ["90p", "audio"] {
        let folder = out.join(dir);
        let playlist = m3u8::read_media(&folder.join("index.m3u8"));
        for segment in &playlist.segments {
            let tag = segment.key.as_ref().expect("an encrypted segment");
            let key: Key = aes::read_key(&folder.join(&tag.uri));
            let iv = tag.iv.expect("an explicit IV");
            assert!(
                aes::decrypts_to_ts(&key, iv, &folder.join(&segment.uri)),
                "{}/{dir}/{} does not decrypt with {}",
                out.display(),
                segment.uri,
                tag.uri
            );
        }
    }
}

/// A source long enough to interrupt: 320x180, 25 fps, with audio, `seconds` long.
fn long_source(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join("long.mp4");
    let video = format!("testsrc2=size=320x180:rate=25:duration={seconds}");
    let audio = format!("sine=frequency=440:sample_rate=48000:duration={seconds}");
    let status = Command::new("ffmpeg")
        .args([
            "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", &video, "-f", "lavfi", "-i", &audio,
        ])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
    path
}

/// Sends SIGINT to a running stream-pack once `ready` holds, and returns its exit status.
fn interrupt_when(args: &[&str], ready: impl Fn() -> bool) -> std::process::ExitStatus {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start stream-pack");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ready() {
        if let Some(status) = child.try_wait().expect("wait for stream-pack") {
            panic!("stream-pack ended ({status}) before it could be interrupted");
        }
        assert!(Instant::now() < deadline, "stream-pack never got ready to interrupt");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    child.wait().expect("reap stream-pack")
}

/// Two packages named `show` share a key dir: the second writes keys of its own and leaves
/// the first's untouched, and a third one interrupted by Ctrl-C removes only what it wrote.
#[test]
fn item01_shared_key_dir_keeps_other_packages_keys() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let keys = parent.path().join("K");
    let (a, b) = (parent.path().join("a/show"), parent.path().join("b/show"));
    encrypted_tiny(&a, &keys);
    let first = contents(&keys);
    encrypted_tiny(&b, &keys);
    let both = contents(&keys);
    for (name, bytes) in &first {
        assert_eq!(
            both.get(name),
            Some(bytes),
            "K/{name} of the first package was replaced or removed by the second"
        );
    }
    assert!(
        both.len() > first.len(),
        "the second package wrote no key files of its own"
    );
    assert_package_decrypts(&a);
    assert_package_decrypts(&b);

    let source = long_source(parent.path(), 20);
    let c = parent.path().join("c/show");
    let args = [
        "hls",
        path_str(&source),
        "-o",
        path_str(&c),
        "--progress",
        "none",
        "--reps",
        "180",
        "--segment-duration",
        "1",
        "--encrypt",
        "--key-rotation",
        "1",
        "--key-dir",
        path_str(&keys),
    ];
    let known: Vec<&String> = both.keys().collect();
    let status = interrupt_when(&args, || {
        let names = crate::util::file_names(&keys);
        names
            .iter()
            .any(|name| name.ends_with(".key") && !known.contains(&name))
    });
    assert_eq!(status.code(), Some(130), "Ctrl-C cancels the job");
    assert_eq!(
        contents(&keys),
        both,
        "the cancelled job must remove its own keys and nothing else"
    );
    assert!(!c.exists(), "the cancelled package appeared");
}

/// A language tag a hostile source or manifest carries: it closes the quoted-string and adds
/// a variant of its own on the lines after it.
const HOSTILE_LANGUAGE: &str = "en\"><x\n#EXT-X-STREAM-INF:BANDWIDTH=1\nrogue.m3u8";

/// Whether `tag` has the syntax of a BCP 47 language tag.
fn is_language_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let primary = subtags.next().unwrap_or_default();
    (2..=8).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The master playlist of `out` is strict HLS with `variants` variants, each a rendition of the
/// package; every line is a tag or a playlist of the package; any LANGUAGE is a language tag.
fn assert_master_is_clean(out: &Path, variants: usize) {
    let path = out.join("master.m3u8");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let master = m3u8::parse_master(&text).unwrap_or_else(|error| panic!("master.m3u8: {error}\n{text}"));
    assert_eq!(master.variants.len(), variants, "variants of master.m3u8:\n{text}");
    for line in text.lines().filter(|line| !line.is_empty()) {
        assert!(
            line.starts_with("#EXT") || line.ends_with("/index.m3u8"),
            "a line of master.m3u8 is neither a tag nor a playlist of the package: {line:?}"
        );
        assert!(!line.contains("rogue"), "the input's text became a line: {line:?}");
    }
    for media in &master.media {
        if let Some(language) = media.quoted("LANGUAGE") {
            assert!(is_language_tag(language), "LANGUAGE={language:?}");
        }
    }
}

/// `tiny`'s picture and sound in Matroska, whose audio language tag is `language`.
fn source_with_language(dir: &Path, language: &str) -> PathBuf {
    let path = dir.join("hostile.mkv");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(media("tiny"))
        .args(["-map", "0", "-c", "copy", "-metadata:s:a:0"])
        .arg(format!("language={language}"))
        .arg(&path)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {}", path.display());
    path
}

/// A DASH presentation made by ffmpeg from `tiny`, its audio AdaptationSet's `lang` set to
/// `language` (XML-escaped, as a hostile server would write it). Returns the MPD.
fn mpd_with_language(dir: &Path, language: &str) -> PathBuf {
    let folder = dir.join("dash");
    std::fs::create_dir_all(&folder).expect("create the DASH folder");
    let mpd = folder.join("manifest.mpd");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(media("tiny"))
        .args([
            "-map",
            "0",
            "-c",
            "copy",
            "-metadata:s:a:0",
            "language=eng",
            "-f",
            "dash",
        ])
        .arg(&mpd)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {}", mpd.display());
    let escaped = language
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\n', "&#10;");
    let text = std::fs::read_to_string(&mpd).expect("read the MPD");
    assert!(text.contains("lang=\"eng\""), "ffmpeg wrote no lang:\n{text}");
    std::fs::write(&mpd, text.replace("lang=\"eng\"", &format!("lang=\"{escaped}\""))).expect("write the MPD");
    mpd
}

/// A language tag with a quote and line breaks, from the source's metadata or from a converted
/// MPD, never reaches master.m3u8 as it is; nor does a `--key-url` with a space and a quote.
#[test]
fn item02_input_text_cannot_inject_into_playlists() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let source = source_with_language(parent.path(), HOSTILE_LANGUAGE);
    let out = parent.path().join("from-source");
    cli::assert_success(&cli::hls(&source, &out, &[&TINY[..], &FAST].concat()));
    assert_master_is_clean(&out, 1);
    let dash = parent.path().join("dash-from-source");
    cli::assert_success(&cli::package("dash", &source, &dash, &[&TINY[..], &FAST].concat()));
    let manifest = crate::util::mpd::read_mpd(&dash.join("manifest.mpd"));
    for set in &manifest.adaptation_sets {
        if let Some(lang) = set.attributes.get("lang") {
            assert!(is_language_tag(lang), "@lang={lang:?}");
        }
    }

    let mpd = mpd_with_language(parent.path(), HOSTILE_LANGUAGE);
    let converted = parent.path().join("converted");
    let output = cli::run([
        OsStr::new("convert"),
        mpd.as_os_str(),
        OsStr::new("--to"),
        OsStr::new("hls"),
        OsStr::new("-o"),
        converted.as_os_str(),
        OsStr::new("--progress"),
        OsStr::new("none"),
    ]);
    cli::assert_success(&output);
    assert_master_is_clean(&converted, 1);

    let keyed = parent.path().join("keyed");
    let key_url = "https://keys.example/a b\"c/";
    let args = [&TINY[..], &FAST, &["--encrypt", "--key-url", key_url]].concat();
    cli::assert_success(&cli::hls(&media("tiny"), &keyed, &args));
    let playlist = keyed.join("90p/index.m3u8");
    let text = std::fs::read_to_string(&playlist).expect("read the media playlist");
    let parsed = m3u8::parse_media(&text).unwrap_or_else(|error| panic!("90p/index.m3u8: {error}\n{text}"));
    let uri = &parsed.segments[0].key.as_ref().expect("an encrypted segment").uri;
    assert!(
        uri.starts_with("https://keys.example/a%20b%22c/"),
        "the key URI is not the percent-encoded --key-url: {uri:?}"
    );
}

/// A folder `in/` holding `tiny` as `a.mp4`, its FLV copy `a.flv`, a ladder, a key, a folder of
/// keys, a DASH presentation and a file that is none of these.
fn input_folder(parent: &Path) -> PathBuf {
    let dir = parent.join("in");
    std::fs::create_dir_all(dir.join("keys")).expect("create in/keys");
    std::fs::copy(media("tiny"), dir.join("a.mp4")).expect("copy tiny");
    crate::util::made_by_libav(&media("tiny"), &dir, &["-c", "copy"], "a.flv");
    std::fs::write(
        dir.join("ladder.toml"),
        "[[rung]]\nheight = 90\nvideo_bitrate = \"100k\"\nmaxrate = \"150k\"\nbufsize = \"200k\"\n",
    )
    .expect("write");
    std::fs::write(dir.join("secret.key"), [7u8; 16]).expect("write the key");
    std::fs::write(dir.join("keys/other.key"), [9u8; 16]).expect("write the key");
    std::fs::write(dir.join("beside.txt"), "not ours").expect("write");
    mpd_with_language(&dir, "en");
    dir
}

/// Every file under `dir` and its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display())) {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            files.extend(tree(&path));
        } else {
            let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            files.insert(path, bytes);
        }
    }
    files
}

/// `-o` equal to, or a folder holding, an input, a key file, a key dir or a ladder file is
/// refused with `--force` (exit 2, one line naming it), by path as given, through `..` and
/// through a symbolic link, in every command that writes; nothing of the inputs' folder changes.
#[test]
fn item03_force_never_replaces_the_inputs() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let dir = input_folder(parent.path());
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&dir, &link).expect("make a symbolic link");
    let info = parent.path().join("key.info");
    std::fs::write(
        &info,
        format!("https://k.example/k.key\n{}\n", dir.join("secret.key").display()),
    )
    .expect("write");
    let before = tree(&dir);
    let s = |path: &Path| path.to_str().expect("UTF-8 path").to_owned();
    let (input, flv, mpd) = (
        s(&dir.join("a.mp4")),
        s(&dir.join("a.flv")),
        s(&dir.join("dash/manifest.mpd")),
    );
    let (out, tiny) = (s(&dir), s(&media("tiny")));
    // Packages of a source elsewhere, so only the side file named lies in OUT.
    let package = |source: &str, extra: &[&str]| -> Vec<String> {
        let fixed = ["hls", source, "-o", out.as_str(), "--force", "--progress", "none"];
        fixed
            .iter()
            .chain(&TINY)
            .chain(&FAST)
            .chain(extra)
            .map(|a| a.to_string())
            .collect()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (package(&input, &[]), "a.mp4"),
        (
            [
                "hls",
                &s(&link.join("a.mp4")),
                "-o",
                &s(&dir.join("..").join("in")),
                "--force",
                "--progress",
                "none",
            ]
            .map(String::from)
            .to_vec(),
            "a.mp4",
        ),
        (
            package(&tiny, &["--ladder", &s(&dir.join("ladder.toml"))]),
            "ladder.toml",
        ),
        (
            package(&tiny, &["--encrypt", "--key-file", &s(&dir.join("secret.key"))]),
            "secret.key",
        ),
        (
            package(&tiny, &["--encrypt", "--key-dir", &s(&dir.join("keys"))]),
            "keys",
        ),
        (package(&tiny, &["--encrypt", "--key-info", &s(&info)]), "secret.key"),
        (
            ["dash", &input, "-o", &out, "--force", "--progress", "none"]
                .map(String::from)
                .to_vec(),
            "a.mp4",
        ),
        (
            [
                "convert",
                &mpd,
                "--to",
                "hls",
                "-o",
                &out,
                "--force",
                "--progress",
                "none",
            ]
            .map(String::from)
            .to_vec(),
            "manifest.mpd",
        ),
        (
            ["remux", &input, "-o", &input, "--force"].map(String::from).to_vec(),
            "a.mp4",
        ),
        (
            ["concat-flv", &flv, "-o", &flv, "--force"].map(String::from).to_vec(),
            "a.flv",
        ),
        (
            ["unframe", &input, "-o", &input, "--force"].map(String::from).to_vec(),
            "a.mp4",
        ),
        (
            ["record", &flv, "-o", &flv, "--force"].map(String::from).to_vec(),
            "a.flv",
        ),
    ];
    for (args, named) in &cases {
        let output = cli::run(args);
        let line = cli::assert_failure(&output, 2);
        assert!(
            line.contains(named),
            "`{}` does not name {named}: {line}",
            args.join(" ")
        );
        assert_eq!(tree(&dir), before, "`{}` changed the inputs' folder", args.join(" "));
    }
}

/// Runs stream-pack with `args` under a 4 GB address-space limit (so an unbounded read fails
/// instead of taking the machine) and a 30 s deadline; returns its output and how long it ran.
fn run_bounded(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let child = Command::new("sh")
        .args(["-c", "ulimit -v 4194304; exec \"$0\" \"$@\"", BIN])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stream-pack");
    let pid = child.id().to_string();
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output().expect("wait for stream-pack")));
    let output = waited.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!("stream-pack {} ran longer than 30 s", args.join(" "));
    });
    (output, started.elapsed())
}

/// Side files are read up to a limit: `/dev/zero` as a ladder, a key file, a key-info file, a
/// list of chunk URLs or a recording schedule ends within seconds with one line naming the
/// file and the limit, and the documented exit code.
#[test]
fn item05_side_files_are_read_with_a_limit() {
    let parent = tempfile::tempdir().expect("create a temporary folder");
    let (out, joined) = (parent.path().join("out"), parent.path().join("joined.flv"));
    let (tiny, out) = (media("tiny"), out.to_str().expect("UTF-8 path").to_owned());
    let joined = joined.to_str().expect("UTF-8 path");
    let tiny = tiny.to_str().expect("UTF-8 path");
    let package = |extra: &[&'static str]| -> Vec<&str> {
        let fixed = ["hls", tiny, "-o", &out, "--progress", "none"];
        fixed.iter().copied().chain(extra.iter().copied()).collect()
    };
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (package(&["--ladder", "/dev/zero"]), 5),
        (package(&["--encrypt", "--key-file", "/dev/zero"]), 4),
        (package(&["--encrypt", "--key-info", "/dev/zero"]), 4),
        (vec!["concat-flv", "--list", "/dev/zero", "-o", joined], 2),
        (vec!["record", "--schedule", "/dev/zero"], 2),
    ];
    for (args, code) in &cases {
        let (output, took) = run_bounded(args);
        let line = cli::assert_failure(&output, *code);
        assert!(
            line.contains("/dev/zero") && line.contains("limit"),
            "`{}` does not name the file and the limit: {line}",
            args.join(" ")
        );
        assert!(took < Duration::from_secs(5), "`{}` took {took:?}", args.join(" "));
    }
    assert!(!Path::new(&out).exists(), "a package appeared");
}

/// A tiny HLS package (one 90p rung) of which a playlist on the web names one segment by a
/// `file:` URL on this machine: what a hostile playlist does to read local files.
fn web_playlist_naming_a_local_file(dir: &Path) -> (crate::util::http::Server, PathBuf) {
    use crate::util::http::{self, Route};
    let package = dir.join("package");
    cli::assert_success(&cli::hls(&media("tiny"), &package, &[&TINY[..], &FAST].concat()));
    let folder = package.join("90p");
    let playlist = std::fs::read_to_string(folder.join("index.m3u8")).unwrap();
    let first = m3u8::read_media(&folder.join("index.m3u8")).segments[0].uri.clone();
    let local = format!("file://{}", folder.join(&first).display());
    let hostile = playlist.replacen(&first, &local, 1);
    assert_ne!(hostile, playlist, "the playlist names {first}");
    let mut routes = http::dir_routes(&folder);
    routes.insert("/index.m3u8".into(), Route::File(hostile.into_bytes()));
    let server = http::serve(routes);
    let url = PathBuf::from(format!("{}/index.m3u8", server.base));
    (server, url)
}

#[test]
fn item06_a_playlist_on_the_web_cannot_read_this_machines_files() {
    let dir = tempfile::tempdir().unwrap();
    let (server, url) = web_playlist_naming_a_local_file(dir.path());
    let out = dir.path().join("out");
    let output = cli::hls(&url, &out, &[&TINY[..], &FAST].concat());
    let line = cli::assert_failure(&output, 3);
    assert!(line.contains(&server.base), "the error names the input: {line}");
    assert!(!out.exists(), "no package from a playlist naming local files");
}

/// The MPD `convert` copies for libav (an MPD with a text set) is read from a file: its URLs
/// must still reach only the web.
#[test]
fn item06_an_mpd_on_the_web_cannot_name_this_machines_files() {
    use crate::util::http::{self, Route};
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("dash");
    cli::assert_success(&cli::package(
        "dash",
        &media("tiny"),
        &package,
        &[&TINY[..], &FAST].concat(),
    ));
    let mpd = std::fs::read_to_string(package.join("manifest.mpd")).unwrap();
    let text_set = concat!(
        r#"<AdaptationSet contentType="text" mimeType="text/vtt" lang="en">"#,
        r#"<Representation id="en" bandwidth="100"><BaseURL>en.vtt</BaseURL></Representation>"#,
        "</AdaptationSet>"
    );
    let base = format!("<BaseURL>file://{}/</BaseURL>", package.display());
    let hostile = mpd.replacen("<AdaptationSet", &format!("{base}{text_set}<AdaptationSet"), 1);
    let cue = b"WEBVTT\n\n00:00.000 --> 00:01.000\nhello\n".to_vec();
    let routes = [
        ("/manifest.mpd".to_owned(), Route::File(hostile.into_bytes())),
        ("/en.vtt".to_owned(), Route::File(cue)),
    ];
    let server = http::serve(routes.into_iter().collect());
    let out = dir.path().join("out");
    let url = format!("{}/manifest.mpd", server.base);
    let output = cli::run([
        "convert",
        &url,
        "--to",
        "hls",
        "-o",
        path_str(&out),
        "--progress",
        "none",
    ]);
    let line = cli::assert_failure(&output, 3);
    assert!(line.contains("file://"), "the error names the refused URL: {line}");
    assert!(!out.exists(), "no package from an MPD naming local files");
}
