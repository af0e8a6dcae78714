//! The library's one error type. Every variant names the file or option at fault, so the CLI can
//! print a single line; `exit_code` maps each kind of failure to the documented exit status.

use std::path::PathBuf;

/// Process exit statuses, documented in README.md.
pub mod exit {
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const INPUT: i32 = 3;
    pub const OUTPUT: i32 = 4;
    pub const LADDER: i32 = 5;
    pub const CANCELLED: i32 = 130;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: no such file", path.display())]
    InputMissing { path: PathBuf },

    #[error("{}: the file is empty", path.display())]
    InputEmpty { path: PathBuf },

    #[error("{}: not a media file that libav can read ({reason})", path.display())]
    InputUnreadable { path: PathBuf, reason: String },

    #[error("{}: has no audio or video stream", path.display())]
    NoMediaStreams { path: PathBuf },

    #[error("{}: truncated: the media stops at {end:.2} s of the {declared:.2} s the file declares", path.display())]
    InputTruncated { path: PathBuf, end: f64, declared: f64 },

    #[error("{}: corrupt media: {reason}", path.display())]
    InputCorrupt { path: PathBuf, reason: String },

    /// A piece of the input (a segment, playlist or key a manifest lists) could not be read.
    #[error("{}: incomplete: {piece} cannot be read ({reason})", path.display())]
    InputIncomplete {
        path: PathBuf,
        piece: String,
        reason: String,
    },

    #[error("{url}: {reason}")]
    Remote { url: String, reason: String },

    /// Publishing to a remote destination failed for good (retries could not fix it).
    #[error("{url}: {reason}")]
    Publish { url: String, reason: String },

    #[error("{url}: sent nothing within {} s", waited.as_millis() as f64 / 1000.0)]
    LiveNeverStarted { url: String, waited: std::time::Duration },

    #[error("{url}: the source dropped: {reason}")]
    LiveDropped { url: String, reason: String },

    /// An option the library cannot use. `option` is the name of the options field at fault
    /// (`segment_duration`), which the CLI shows as its flag (`--segment-duration`); `reason`
    /// starts with the value or the other option it conflicts with.
    #[error("{option} {reason}")]
    InvalidOption { option: &'static str, reason: String },

    /// A scale-out plan folder, or a chunk in it, that cannot be used as it is.
    #[error("{}: {reason}", path.display())]
    Plan { path: PathBuf, reason: String },

    /// A request that names no one option (a command line the CLI rejects, a pattern that
    /// matches nothing usable).
    #[error("{0}")]
    Usage(String),

    /// A key file or key-info file that cannot be read or does not hold a key.
    #[error("key file {}: {reason}", path.display())]
    KeyFile { path: PathBuf, reason: String },

    /// An FFmpeg key-info file that cannot be read or does not say where its key is.
    #[error("key-info file {}: {reason}", path.display())]
    KeyInfoFile { path: PathBuf, reason: String },

    /// A subtitle file given beside the input that cannot be read or holds a bad cue.
    #[error("subtitles file {}: {reason}", path.display())]
    SubtitleFile { path: PathBuf, reason: String },

    #[error("schedule file {}: {reason}", path.display())]
    Schedule { path: PathBuf, reason: String },

    #[error("ladder file {}: {reason}", path.display())]
    LadderFile { path: PathBuf, reason: String },

    #[error("{0}")]
    Ladder(String),

    /// The output is there already and the options do not allow replacing it (`force`).
    #[error("{}: already exists", path.display())]
    OutputExists { path: PathBuf },

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}: {source}")]
    Ffmpeg {
        context: String,
        #[source]
        source: ffmpeg_next::Error,
    },

    /// Writing segments or a file failed in the muxer (an option it ignored, a flush, a fragment
    /// it wrote that cannot be completed).
    #[error("{}: {reason}", path.display())]
    Mux { path: PathBuf, reason: String },

    /// An encoder this FFmpeg lacks, refuses the settings of, or that gives no codec configuration.
    #[error("{stream}: {reason}")]
    Codec { stream: String, reason: String },

    /// A worker thread panicked: a bug in stream-pack, reported rather than propagated.
    #[error("{what} panicked")]
    Panicked { what: String },

    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// The process exit status the CLI uses for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InputMissing { .. }
            | Error::InputEmpty { .. }
            | Error::InputUnreadable { .. }
            | Error::NoMediaStreams { .. }
            | Error::InputTruncated { .. }
            | Error::InputCorrupt { .. }
            | Error::InputIncomplete { .. }
            | Error::Remote { .. }
            | Error::LiveNeverStarted { .. }
            | Error::LiveDropped { .. }
            | Error::SubtitleFile { .. }
            | Error::Plan { .. } => exit::INPUT,
            Error::InvalidOption { .. } | Error::Usage(_) | Error::Schedule { .. } => exit::USAGE,
            Error::LadderFile { .. } | Error::Ladder(_) => exit::LADDER,
            Error::OutputExists { .. }
            | Error::Io { .. }
            | Error::Publish { .. }
            | Error::KeyFile { .. }
            | Error::KeyInfoFile { .. } => exit::OUTPUT,
            Error::Cancelled => exit::CANCELLED,
            Error::Ffmpeg { .. } | Error::Mux { .. } | Error::Codec { .. } | Error::Panicked { .. } => exit::FAILURE,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub(crate) fn ffmpeg(context: impl Into<String>) -> impl FnOnce(ffmpeg_next::Error) -> Error {
        let context = context.into();
        move |source| Error::Ffmpeg { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
