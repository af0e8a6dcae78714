//! Downloading a published HLS package with curl, as a player finds it: the master playlist,
//! the media playlists it names, and the init and media segments they name.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use super::m3u8::{parse_master, parse_media};

/// GETs `url` into `file` with curl (`extra` adds options, e.g. S3 request signing); fails the
/// test on any HTTP error.
pub fn curl(url: &str, file: &Path, extra: &[&str]) {
    std::fs::create_dir_all(file.parent().expect("a file in a folder")).unwrap();
    run_curl(
        [OsStr::new("--output"), file.as_os_str()]
            .into_iter()
            .chain(extra.iter().map(OsStr::new)),
        url,
    );
}

/// Runs `curl ARGS URL` quietly, failing the test on any error, an HTTP error status included.
/// Returns what curl wrote to stdout (the body, unless ARGS send it elsewhere).
pub fn run_curl<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>, url: &str) -> Vec<u8> {
    let output = Command::new("curl")
        .args(["--silent", "--show-error", "--fail"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        output.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Downloads the HLS package whose master playlist is `base` + `master.m3u8` into `dir`, keeping
/// its layout.
pub fn hls_package(base: &str, dir: &Path, extra: &[&str]) {
    let get = |relative: &str| {
        let file = dir.join(relative);
        curl(&format!("{base}{relative}"), &file, extra);
        std::fs::read_to_string(&file).unwrap_or_default()
    };
    let master = parse_master(&get("master.m3u8")).expect("a master playlist");
    let playlists = master.variants.iter().map(|variant| variant.uri.clone()).chain(
        master
            .media
            .iter()
            .filter_map(|media| media.quoted("URI").map(str::to_owned)),
    );
    for playlist in playlists {
        let media = parse_media(&get(&playlist)).expect("a media playlist");
        let folder = playlist.rsplit_once('/').map_or("", |(folder, _)| folder);
        for uri in media.map.iter().chain(media.segments.iter().map(|s| &s.uri)) {
            get(&format!("{folder}/{uri}"));
        }
    }
}

/// Downloads the DASH package whose MPD is `base` + `manifest.mpd` into `dir`, keeping its
/// layout: every Representation's init segment and the media segments its timeline counts.
pub fn dash_package(base: &str, dir: &Path, extra: &[&str]) {
    let get = |relative: &str| curl(&format!("{base}{relative}"), &dir.join(relative), extra);
    get("manifest.mpd");
    let mpd = super::mpd::read_mpd(&dir.join("manifest.mpd"));
    for representation in mpd.adaptation_sets.iter().flat_map(|set| &set.representations) {
        let id = representation.attributes.get("id").expect("a Representation id");
        let template = &representation.segment_template;
        let first: u64 = template.attributes.get("startNumber").map_or(1, |n| n.parse().unwrap());
        get(&super::mpd::expand(
            template.attributes.get("initialization").unwrap(),
            id,
            0,
        ));
        let media = template.attributes.get("media").unwrap();
        for number in first..first + template.segments().len() as u64 {
            get(&super::mpd::expand(media, id, number));
        }
    }
}
