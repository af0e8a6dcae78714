//! Helpers shared by the tests: test media, running the binary, and independent judges.

pub mod aes;
pub mod azurite;
pub mod bmff;
pub mod capture;
pub mod cli;
pub mod codecs;
pub mod daemon;
pub mod dav;
pub mod download;
pub mod ffprobe;
pub mod flv;
pub mod garage;
pub mod gcs;
pub mod h264;
pub mod http;
pub mod m3u8;
mod media;
pub mod mpd;
pub mod rtmp;
mod selftest;
pub mod slurm;
pub mod source;
pub mod webvtt;
pub mod ws;

pub use media::media;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The names of the entries of a folder.
pub fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.expect("folder entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Runs `ffmpeg -i SOURCE -map 0 ARGS DIR/OUTPUT`: test input made by libav. Returns its path.
pub fn made_by_libav(source: &Path, dir: &Path, args: &[&str], output: &str) -> PathBuf {
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y", "-i"])
        .arg(source)
        .args(["-map", "0"])
        .args(args)
        .arg(dir.join(output))
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not make {output}");
    dir.join(output)
}
