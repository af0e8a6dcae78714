//! stream-pack: package media into adaptive-streaming ladders with FFmpeg's libraries in-process.
//!
//! The data path, one folder per stage in the order data flows:
//! [`input`] opens and checks the source under one watchdog → [`package`](mod@package) plans the ladder
//! ([`package::ladder`]), decodes once and encodes every rung ([`package::transcode`]), cuts aligned
//! segments ([`package::segment`]), encrypts them ([`package::crypto`]) and writes playlists from
//! measured facts ([`package::manifest`]) → [`output`] stages the package and renames it into place
//! ([`output::staging`]) and sends it to HTTP and object storage ([`output::publish`]).
//! [`progress`] reports along the way and carries cancellation; [`tools`] holds the standalone
//! commands (probe, convert, remux, concat-flv, unframe, record, inspect).
//!
//! ```no_run
//! use stream_pack::{PackageOptions, package, progress::Silent};
//!
//! let mut options = PackageOptions::hls("input.mp4", "out");
//! options.reps = "720,480".parse().expect("valid --reps");
//! let report = package(&options, &mut Silent)?;
//! println!("{}", report.manifests[0].display());
//! # Ok::<(), stream_pack::Error>(())
//! ```

/// `FromStr` and `Display` for an enum of named choices; a wrong name lists the choices.
macro_rules! named {
    ($type:ty, $what:literal, $($variant:path => $name:literal),+) => {
        impl std::str::FromStr for $type {
            type Err = String;
            fn from_str(text: &str) -> std::result::Result<Self, String> {
                match text {
                    $($name => Ok($variant),)+
                    _ => Err(format!(concat!("`{}`: not a ", $what, " (one of {})"), text, [$($name),+].join(", "))),
                }
            }
        }
        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(match self { $($variant => $name,)+ })
            }
        }
    };
}

pub mod error;
pub mod input;
pub mod location;
pub mod output;
pub mod package;
pub mod progress;
pub mod tools;

pub use error::{Error, Result};
pub use package::{LiveJob, Manifests, PackageOptions, PackageReport, Passthrough, package};
pub use tools::probe::probe;

/// The README's Rust examples, compiled by `cargo test --doc`.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
