//! `hls --encrypt`: AES-128 segments under EXT-X-KEY, with keys generated (and rotated) or
//! given. `check_package` checks each package whole, decrypting every segment with openssl
//! and the key file its EXT-X-KEY names, and has libav play it; the tests here check the
//! keys: where EXT-X-KEY is written, the key files and their modes, the operator's key-info
//! file, and that no key is printed.

use crate::hls::check::{self, Expect, INIT, Package, Rendition, Segments, check_package, key_file};
use crate::util::aes::{self, Key};
use crate::util::cli::{self, FAST};
use crate::util::m3u8::{self, MediaPlaylist};
use crate::util::source::Source;
use crate::util::{ffprobe, file_names, media};
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use tempfile::TempDir;

const ENCRYPTED_TS: Segments = Segments {
    encrypted: true,
    ..Segments::TS
};
const ENCRYPTED_FMP4: Segments = Segments {
    encrypted: true,
    ..Segments::FMP4
};

/// A key and an IV for the tests that bring their own.
const KEY: Key = *b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff";
const IV: u128 = 0x0f0e_0d0c_0b0a_0908_0706_0504_0302_0100;

/// One 90p rung of the 3 s `tiny` source in 1 s segments: three segments per rendition.
const TINY: [&str; 4] = ["--reps", "90", "--segment-duration", "1"];

/// Runs `stream-pack hls SOURCE -o PARENT/out --progress json --encrypt ARGS`, which must
/// succeed; returns OUT and the run's output.
fn encrypt(parent: &Path, source: &Path, args: &[&str]) -> (PathBuf, Output) {
    let out = parent.join("out");
    let args = [&["--encrypt"], args, &FAST].concat();
    let output = cli::package_showing("json", "hls", source, &out, &args);
    cli::assert_success(&output);
    (out, output)
}

fn temporary_folder() -> TempDir {
    tempfile::tempdir().expect("create a temporary folder")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// What a package of the 90p rung of `tiny` (in 1 s segments) must contain.
fn tiny_expect(source: &Path) -> Expect<'_> {
    Expect {
        source,
        segment_duration: 1.0,
        rungs: &[(160, 90)],
        audio: true,
        segments: ENCRYPTED_TS,
    }
}

/// One key period: segments `first..=last` of every rendition, under one EXT-X-KEY.
struct Period {
    first: usize,
    last: usize,
    uri: String,
    iv: u128,
    /// The key file the URI names, and its key.
    file: PathBuf,
    key: Key,
}

fn renditions(package: &Package) -> Vec<&Rendition> {
    package.video.iter().chain(&package.audio).collect()
}

/// A media playlist and the folder it is in, where its URIs start from.
struct Listed {
    dir: String,
    folder: PathBuf,
    playlist: MediaPlaylist,
}

/// The media playlists of the folders `dirs` of the package in `out`.
fn read_playlists<'a>(out: &Path, dirs: impl IntoIterator<Item = &'a str>) -> Vec<Listed> {
    dirs.into_iter()
        .map(|dir| {
            let folder = out.join(dir);
            let playlist = m3u8::read_media(&folder.join("index.m3u8"));
            Listed {
                dir: dir.to_string(),
                folder,
                playlist,
            }
        })
        .collect()
}

/// The media playlists of a checked package.
fn playlists_of(out: &Path, package: &Package) -> Vec<Listed> {
    read_playlists(out, renditions(package).into_iter().map(|r| r.dir.as_str()))
}

/// The file a relative key URI names: that of a package the checks have decrypted.
fn relative(listed: &Listed, key: &m3u8::Key) -> PathBuf {
    key_file(&listed.folder, key)
}

/// The key periods of a package whose key changes every `rotation` segments (0: never): in
/// every playlist an EXT-X-KEY comes before segments 0, N, 2N… and nowhere else, with the
/// same URI and IV at each in every playlist; no two periods share a key. `key_file` finds
/// the file of a key.
fn key_periods(listed: &[Listed], rotation: usize, key_file: impl Fn(&Listed, &m3u8::Key) -> PathBuf) -> Vec<Period> {
    let reference = &listed[0];
    let count = reference.playlist.segments.len();
    let starts: Vec<usize> = (0..count)
        .step_by(if rotation == 0 { count } else { rotation })
        .collect();
    let periods: Vec<Period> = starts
        .iter()
        .enumerate()
        .map(|(number, &first)| {
            let segment = &reference.playlist.segments[first];
            let dir = &reference.dir;
            let key = segment
                .key
                .clone()
                .unwrap_or_else(|| panic!("{dir}/{} is under no key", segment.uri));
            let file = key_file(reference, &key);
            Period {
                first,
                last: starts.get(number + 1).map_or(count, |next| *next) - 1,
                iv: key.iv.unwrap_or_else(|| panic!("{dir}: EXT-X-KEY without an IV")),
                uri: key.uri,
                key: aes::read_key(&file),
                file,
            }
        })
        .collect();
    for rendition in listed {
        let dir = &rendition.dir;
        assert_eq!(
            rendition.playlist.segments.len(),
            count,
            "{dir}: segment count vs {}'s",
            reference.dir
        );
        assert_eq!(
            rendition.playlist.key_tags, starts,
            "{dir}: the segments after an EXT-X-KEY"
        );
        for period in &periods {
            let key = rendition.playlist.segments[period.first].key.as_ref();
            assert_eq!(
                key.map(|key| (key.uri.as_str(), key.iv)),
                Some((period.uri.as_str(), Some(period.iv))),
                "{dir}: the EXT-X-KEY before segment {} differs from {}'s",
                period.first,
                reference.dir
            );
        }
    }
    let keys: BTreeSet<Key> = periods.iter().map(|period| period.key).collect();
    assert_eq!(keys.len(), periods.len(), "two key periods share a key");
    periods
}

/// `out-00003`: the name of OUT (`out`) and a key's index.
/// The id of generated key `index` of a package whose key files start with `prefix`.
fn key_id(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index:05}")
}

/// What the generated key files in `dir` start with: `out-` and the job's id of 8 hex digits,
/// as the one key-info file there, `PREFIX.keyinfo.json`, shows.
fn key_prefix(dir: &Path) -> String {
    let infos: Vec<String> = file_names(dir)
        .into_iter()
        .filter_map(|name| name.strip_suffix(".keyinfo.json").map(str::to_string))
        .collect();
    let [prefix] = infos.as_slice() else {
        panic!("{}: not one key-info file: {infos:?}", dir.display());
    };
    let id = prefix
        .strip_prefix("out-")
        .unwrap_or_else(|| panic!("{prefix} does not start with out-"));
    assert!(
        id.len() == 8 && id.bytes().all(|byte| byte.is_ascii_hexdigit()),
        "{prefix}: the job id is not 8 hex digits"
    );
    prefix.clone()
}

/// Where generated keys go: their folder, and what their URIs start with.
struct Store<'a> {
    dir: PathBuf,
    uri_prefix: &'a str,
}

impl Store<'_> {
    /// The default: `OUT.keys` beside OUT (OUT's path with `.keys` appended), named from
    /// `OUT/<rendition>/`.
    fn default_for(out: &Path) -> Store<'static> {
        let mut dir = OsString::from(out.as_os_str());
        dir.push(".keys");
        Store {
            dir: PathBuf::from(dir),
            uri_prefix: "../../out.keys/",
        }
    }

    /// The key file a URI (the prefix and a file name) names.
    fn file(&self, key: &m3u8::Key) -> PathBuf {
        let name = key.uri.strip_prefix(self.uri_prefix);
        self.dir
            .join(name.unwrap_or_else(|| panic!("{} does not start with {}", key.uri, self.uri_prefix)))
    }
}

fn mode(path: &Path) -> u32 {
    let metadata = std::fs::metadata(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    metadata.permissions().mode() & 0o777
}

fn same_file(a: &Path, b: &Path) -> bool {
    let canonical =
        |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    canonical(a) == canonical(b)
}

/// Generated keys, one per period, in `store`: the URIs are the store's prefix and
/// `out-JOBID-0000N.key`; its folder (mode 0700) holds those key files (mode 0600) and
/// `out-JOBID.keyinfo.json`, which describes the periods; the run printed no key.
fn check_generated_keys(periods: &[Period], store: &Store, output: &Output) {
    let dir = &store.dir;
    assert_eq!(mode(dir), 0o700, "{}: mode", dir.display());
    let prefix = key_prefix(dir);
    let mut expected: BTreeSet<String> = (0..periods.len())
        .map(|i| format!("{}.key", key_id(&prefix, i)))
        .collect();
    expected.insert(format!("{prefix}.keyinfo.json"));
    assert_eq!(file_names(dir), expected, "entries of {}", dir.display());
    for (index, period) in periods.iter().enumerate() {
        let name = format!("{}.key", key_id(&prefix, index));
        assert_eq!(
            period.uri,
            format!("{}{name}", store.uri_prefix),
            "the URI of key {index}"
        );
        let path = dir.join(&name);
        assert!(
            same_file(&period.file, &path),
            "{} is not {}",
            period.uri,
            path.display()
        );
        assert_eq!(mode(&path), 0o600, "{}: mode", path.display());
    }
    check_key_info(&dir.join(format!("{prefix}.keyinfo.json")), &prefix, periods);
    assert_no_key(&output.stdout, periods, "stdout");
    assert_no_key(&output.stderr, periods, "stderr");
}

/// Generated keys in the default store, rotated every `rotation` segments, of a checked
/// package; returns the key periods.
fn check_default_keys(out: &Path, package: &Package, rotation: usize, output: &Output) -> Vec<Period> {
    let periods = key_periods(&playlists_of(out, package), rotation, relative);
    check_generated_keys(&periods, &Store::default_for(out), output);
    periods
}

/// Every segment decrypts into MPEG-TS with the IV its EXT-X-KEY gives and the key
/// `key_of` finds for that EXT-X-KEY.
fn assert_segments_decrypt(listed: &[Listed], key_of: impl Fn(&m3u8::Key) -> Key) {
    for rendition in listed {
        for segment in &rendition.playlist.segments {
            let name = format!("{}/{}", rendition.dir, segment.uri);
            let key = segment.key.as_ref().unwrap_or_else(|| panic!("{name} is under no key"));
            let iv = key.iv.unwrap_or_else(|| panic!("{name}: EXT-X-KEY without an IV"));
            let path = rendition.folder.join(&segment.uri);
            assert!(aes::decrypts_to_ts(&key_of(key), iv, &path), "{name} does not decrypt");
        }
    }
}

/// The operator's key-info file: `{"keys": […]}` with, for each period, exactly its id, the
/// absolute path of its key file, its URI and IV, and its first and last segment; no key.
fn check_key_info(path: &Path, prefix: &str, periods: &[Period]) {
    let name = path.display();
    let text = std::fs::read(path).unwrap_or_else(|error| panic!("{name}: {error}"));
    assert_no_key(&text, periods, &name.to_string());
    let json: Value = serde_json::from_slice(&text).unwrap_or_else(|error| panic!("{name}: {error}"));
    let fields = |value: &Value| -> BTreeSet<String> {
        let object = value
            .as_object()
            .unwrap_or_else(|| panic!("{name}: {value} is not an object"));
        object.keys().cloned().collect()
    };
    assert_eq!(fields(&json), BTreeSet::from(["keys".to_string()]), "{name}: fields");
    let entries = json["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: keys is not an array"));
    assert_eq!(entries.len(), periods.len(), "{name}: one entry per key");
    let expected_fields = ["id", "file", "uri", "iv", "first_segment", "last_segment"];
    for (index, (entry, period)) in entries.iter().zip(periods).enumerate() {
        assert_eq!(
            fields(entry),
            expected_fields.map(String::from).into(),
            "{name}: entry {index}"
        );
        assert_eq!(entry["id"], key_id(prefix, index), "{name}: entry {index}: id");
        let file = Path::new(entry["file"].as_str().expect("file is a string"));
        assert!(
            file.is_absolute(),
            "{name}: entry {index}: {} is not absolute",
            file.display()
        );
        assert!(same_file(file, &period.file), "{name}: entry {index}: file");
        assert_eq!(entry["uri"], period.uri.as_str(), "{name}: entry {index}: uri");
        let iv = entry["iv"].as_str().and_then(|iv| iv.strip_prefix("0x"));
        assert_eq!(iv.and_then(aes::from_hex), Some(period.iv), "{name}: entry {index}: iv");
        assert_eq!(
            entry["first_segment"], period.first,
            "{name}: entry {index}: first_segment"
        );
        assert_eq!(
            entry["last_segment"], period.last,
            "{name}: entry {index}: last_segment"
        );
    }
}

/// Neither the hex digits (in any case) nor the raw bytes of any key occur in `bytes`.
fn assert_no_key(bytes: &[u8], periods: &[Period], what: &str) {
    let contains = |haystack: &[u8], needle: &[u8]| haystack.windows(needle.len()).any(|window| window == needle);
    let lower = bytes.to_ascii_lowercase();
    for period in periods {
        let hex = aes::hex(u128::from_be_bytes(period.key));
        assert!(
            !contains(&lower, hex.as_bytes()),
            "{what} shows the key of {} in hex",
            period.uri
        );
        assert!(!contains(bytes, &period.key), "{what} holds the key of {}", period.uri);
    }
}

#[test]
fn ts_ladder_rotates_keys_every_two_segments() {
    let (parent, source) = (temporary_folder(), media("main"));
    let args = ["--reps", "360,240", "--segment-duration", "1", "--key-rotation", "2"];
    let (out, output) = encrypt(parent.path(), &source, &args);
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 1.0,
            rungs: &[(640, 360), (426, 240)],
            audio: true,
            segments: ENCRYPTED_TS,
        },
    );
    let periods = check_default_keys(&out, &package, 2, &output);
    assert_eq!(periods.len(), 4, "8 one-second segments, a new key every two");
}

/// Without `--key-rotation`, one key encrypts the whole package, and libav plays it through
/// the key file: `check_package` decodes the master playlist with `ffmpeg -v error
/// -allowed_extensions ALL` (no error allowed), and each rung to the source's frame count.
#[test]
fn one_key_for_the_whole_package_and_libav_plays_it() {
    let (parent, source) = (temporary_folder(), media("short"));
    let (out, output) = encrypt(
        parent.path(),
        &source,
        &["--reps", "240,180", "--segment-duration", "1"],
    );
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 1.0,
            rungs: &[(426, 240), (320, 180)],
            audio: true,
            segments: ENCRYPTED_TS,
        },
    );
    assert_eq!(check_default_keys(&out, &package, 0, &output).len(), 1);
}

/// The init segments stay clear: `check_package` reads each with the box reader, and each
/// `.m4s` decrypted with openssl as a moof and an mdat after it. Here each rendition's init
/// segment followed by all its decrypted fragments decodes whole.
#[test]
fn fmp4_init_segments_stay_clear_and_fragments_rotate_keys() {
    let (parent, source) = (temporary_folder(), media("main"));
    let args = ["--format", "fmp4", "--reps", "240", "--segment-duration", "2"];
    let (out, output) = encrypt(parent.path(), &source, &[&args[..], &["--key-rotation", "2"]].concat());
    let package = check_package(
        &out,
        &Expect {
            source: &source,
            segment_duration: 2.0,
            rungs: &[(426, 240)],
            audio: true,
            segments: ENCRYPTED_FMP4,
        },
    );
    assert_eq!(check_default_keys(&out, &package, 2, &output).len(), 2);
    let frames = Source::probe(&source).video().frames;
    for rendition in renditions(&package) {
        let scratch = temporary_folder();
        let clear = check::clear_segments(
            &rendition.folder,
            &rendition.dir,
            &rendition.playlist,
            true,
            scratch.path(),
        );
        let whole = ffprobe::concat(&[vec![rendition.folder.join(INIT)], clear].concat());
        ffprobe::assert_decodes_cleanly(&whole);
        if rendition.segments[0].stream["codec_type"] == "video" {
            assert_eq!(ffprobe::video_frames(&whole).count, frames, "{}: frames", rendition.dir);
        }
    }
}

/// A segment decrypted with another key fails openssl's padding check or is not MPEG-TS.
#[test]
fn segments_do_not_decrypt_with_another_key() {
    let (parent, source) = (temporary_folder(), media("tiny"));
    let (out, output) = encrypt(parent.path(), &source, &[&TINY[..], &["--key-rotation", "0"]].concat());
    let package = check_package(&out, &tiny_expect(&source));
    let periods = check_default_keys(&out, &package, 0, &output);
    let (key, iv) = (periods[0].key, periods[0].iv);
    let wrong = key.map(|byte| byte ^ 0x01);
    for rendition in renditions(&package) {
        for segment in &rendition.playlist.segments {
            let path = rendition.folder.join(&segment.uri);
            assert!(aes::decrypts_to_ts(&key, iv, &path), "{}", path.display());
            assert!(
                !aes::decrypts_to_ts(&wrong, iv, &path),
                "{} decrypts with another key",
                path.display()
            );
        }
    }
}

/// `--key-file` holding 32 hex digits and a newline, with `--key-url`: every playlist has one
/// EXT-X-KEY, its URI the prefix and the file's name, and every segment decrypts with that
/// key into MPEG-TS.
#[test]
fn key_file_in_hex_with_a_key_url() {
    let (parent, keys) = (temporary_folder(), temporary_folder());
    let file = keys.path().join("secret.key");
    std::fs::write(&file, format!("{}\n", aes::hex(u128::from_be_bytes(KEY)))).expect("write the key");
    let prefix = "https://keys.example.com/v1/";
    let args = [&TINY[..], &["--key-file", path_str(&file), "--key-url", prefix]].concat();
    let (out, _) = encrypt(parent.path(), &media("tiny"), &args);
    let listed = read_playlists(&out, ["90p", "audio"]);
    for rendition in &listed {
        let dir = &rendition.dir;
        assert_eq!(
            rendition.playlist.key_tags,
            [0],
            "{dir}: one EXT-X-KEY, before the first segment"
        );
        let uri = rendition.playlist.segments[0].key.as_ref().map(|key| key.uri.as_str());
        assert_eq!(uri, Some(format!("{prefix}secret.key").as_str()), "{dir}: URI");
    }
    assert_segments_decrypt(&listed, |_| KEY);
}

/// Generated keys in a folder of one's own, named by `--key-url`: URIs are the prefix and the
/// key file's name, every segment decrypts with the key in that folder so named, and the
/// key-info file there gives the URIs.
#[test]
fn generated_keys_in_a_key_dir_with_a_key_url() {
    let parent = temporary_folder();
    let store = Store {
        dir: parent.path().join("vault"),
        uri_prefix: "https://keys.example.com/v1/",
    };
    let keys = [
        "--key-rotation",
        "1",
        "--key-dir",
        path_str(&store.dir),
        "--key-url",
        store.uri_prefix,
    ];
    let (out, output) = encrypt(parent.path(), &media("tiny"), &[&TINY[..], &keys].concat());
    let listed = read_playlists(&out, ["90p", "audio"]);
    let periods = key_periods(&listed, 1, |_, key| store.file(key));
    assert_eq!(periods.len(), 3, "three segments, a key for each");
    check_generated_keys(&periods, &store, &output);
    assert_segments_decrypt(&listed, |key| aes::read_key(&store.file(key)));
}

/// `--key-file` holding 16 raw bytes, without `--key-url`: the URI is the relative path from
/// each media playlist's folder to the file, through which the package plays.
#[test]
fn key_file_of_raw_bytes_is_named_by_a_relative_path() {
    let (parent, source) = (temporary_folder(), media("tiny"));
    let file = parent.path().join("secret.key");
    std::fs::write(&file, KEY).expect("write the key");
    let (out, _) = encrypt(
        parent.path(),
        &source,
        &[&TINY[..], &["--key-file", path_str(&file)]].concat(),
    );
    let package = check_package(&out, &tiny_expect(&source));
    let periods = key_periods(&playlists_of(&out, &package), 0, relative);
    assert_eq!(periods[0].uri, "../../secret.key");
    assert_eq!(periods[0].key, KEY);
}

/// `--key-info` in FFmpeg's format: the URI of line 1 written as it is, the key from the file
/// on line 2 (a copy of the one served at the URI, so that a URI made from line 2 shows), the
/// IV of line 3 if there is one. Returns the package's one key period.
fn key_info_package(iv: Option<u128>) -> Period {
    let (parent, source) = (temporary_folder(), media("tiny"));
    let operator = parent.path().join("operator.bin");
    std::fs::write(&operator, KEY).expect("write the key");
    std::fs::write(parent.path().join("served.key"), KEY).expect("write the key");
    let info = parent.path().join("key.info");
    let line_3 = iv.map(aes::hex).unwrap_or_default();
    let lines = format!("../../served.key\n{}\n{line_3}\n", operator.display());
    std::fs::write(&info, lines).expect("write the key info");
    let (out, _) = encrypt(
        parent.path(),
        &source,
        &[&TINY[..], &["--key-info", path_str(&info)]].concat(),
    );
    let package = check_package(&out, &tiny_expect(&source));
    let period = key_periods(&playlists_of(&out, &package), 0, relative).remove(0);
    assert_eq!(period.uri, "../../served.key", "line 1 of the key info is the URI");
    assert_eq!(period.key, KEY);
    period
}

#[test]
fn key_info_file_with_an_iv() {
    assert_eq!(key_info_package(Some(IV)).iv, IV, "line 3 of the key info is the IV");
}

/// Without line 3, the IV is random, but still written (`check_package` requires it).
#[test]
fn key_info_file_without_an_iv() {
    key_info_package(None);
}

/// Every file under `dir`, in its subfolders too.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()));
    entries
        .map(|entry| entry.expect("folder entry").path())
        .flat_map(|path| if path.is_dir() { files_under(&path) } else { vec![path] })
        .collect()
}

/// Keys inside OUT would be served with the content: the run warns, and still makes a
/// package that plays, its URIs naming the keys there; the key-info file stays out of OUT.
#[test]
fn key_folder_inside_the_package_is_warned_about() {
    let parent = temporary_folder();
    let keys = parent.path().join("out").join("keys");
    let (out, output) = encrypt(
        parent.path(),
        &media("tiny"),
        &[&TINY[..], &["--key-dir", path_str(&keys)]].concat(),
    );
    cli::assert_says(
        &output,
        &["warning", "served with the content"],
        "that the keys are served",
    );
    for rendition in read_playlists(&out, ["90p", "audio"]) {
        let dir = &rendition.dir;
        assert_eq!(rendition.playlist.key_tags, [0], "{dir}: one EXT-X-KEY");
        let uri = rendition.playlist.segments[0].key.as_ref().map(|key| key.uri.as_str());
        let name = uri.and_then(|uri| uri.strip_prefix("../keys/"));
        assert!(
            name.is_some_and(|name| name.starts_with("out-") && name.ends_with("-00000.key")),
            "{dir}: URI {uri:?}"
        );
    }
    assert_eq!(mode(&keys), 0o700, "{}: mode", keys.display());
    let key_files: Vec<String> = file_names(&keys).into_iter().collect();
    assert_eq!(key_files.len(), 1, "{}: {key_files:?}", keys.display());
    assert_eq!(
        mode(&keys.join(&key_files[0])),
        0o600,
        "out/keys/{}: mode",
        key_files[0]
    );
    ffprobe::assert_decodes_cleanly(&out.join("master.m3u8"));
    let key_info = files_under(&out)
        .into_iter()
        .find(|path| path.to_string_lossy().ends_with(".keyinfo.json"));
    assert_eq!(key_info, None, "the key-info file is inside OUT");
}
