//! stream-pack: package media into adaptive-streaming ladders with FFmpeg's libraries in-process.
//!
//! The data path, one module per stage:
//! [`source`] opens and checks the input → [`ladder`] plans the rungs → [`transcode`] decodes once,
//! scales every rung in one filter graph and encodes each, audio once → [`segment`] cuts segments
//! at shared boundaries → [`manifest`] writes playlists from measured facts → [`sink`] publishes the
//! package atomically, and [`publish`] sends it to HTTP and object storage (S3, GCS, Azure)
//! destinations as it is made.
//! [`progress`] reports along the way; [`package`] runs the whole job.
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

pub mod capture;
pub mod codecs;
pub mod convert;
pub mod crypto;
pub mod encoders;
pub mod error;
pub mod inspect;
pub mod ladder;
pub mod live;
pub mod manifest;
pub mod package;
pub mod probe;
pub mod progress;
pub mod progressive;
pub mod publish;
pub mod reassemble;
pub mod remux;
pub mod retry;
pub mod segment;
pub mod sidefile;
pub mod sink;
pub mod source;
pub mod transcode;
pub mod watchdog;

pub use error::{Error, Result};
pub use package::{LiveJob, Manifests, PackageOptions, PackageReport, Passthrough, package};
pub use probe::probe;

/// The README's Rust examples, compiled by `cargo test --doc`.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
