//! `unframe`: a tagged websocket capture (a file, or live from the websocket) turned into a
//! fragmented MP4, then defragmented into a progressive MP4 by a libav remux. Messages are taken
//! one at a time: memory holds one fragment.

pub mod websocket;

pub use websocket::WebSocketSource;

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use stream_pack_formats::framing::{AssembleError, Assembled, Assembler, FramingError, MessageReader};

use crate::error::{Error, Result};
use crate::location::Location;
use crate::output::staging::{self, StagedFile};
use crate::progress::Cancel;
use crate::tools::remux::{self, RemuxReport};
use websocket::Stop;

/// Where the output goes and in which form.
#[derive(Debug, Clone)]
pub struct UnframeOptions {
    pub output: PathBuf,
    /// Keep the fragmented MP4 as it was assembled instead of defragmenting it.
    pub keep_fragmented: bool,
    /// Replace an existing output.
    pub replace: bool,
}

/// What an unframe made.
#[derive(Debug, Clone)]
pub struct UnframeReport {
    pub output: PathBuf,
    pub assembled: Assembled,
    /// What was dropped or went wrong upstream, one sentence each.
    pub notes: Vec<String>,
    /// The defragmenting remux, unless the fragmented MP4 was kept.
    pub remux: Option<RemuxReport>,
}

/// The output being written: the fragmented MP4 goes straight to the staged output when it is
/// kept, otherwise to a scratch file beside it that the remux reads.
struct Output {
    staged: StagedFile,
    scratch: Option<tempfile::TempPath>,
    assembler: Assembler<BufWriter<File>>,
}

impl Output {
    fn new(options: &UnframeOptions) -> Result<Output> {
        let staged = StagedFile::new(&options.output, options.replace)?;
        let scratch = if options.keep_fragmented {
            None
        } else {
            Some(staging::scratch_file(&options.output, ".mp4")?)
        };
        let path = scratch.as_deref().unwrap_or(staged.path()).to_owned();
        let file = File::create(&path).map_err(Error::io(&path))?;
        Ok(Output {
            staged,
            scratch,
            assembler: Assembler::new(BufWriter::new(file)),
        })
    }

    /// Finishes the fMP4, defragments it unless kept, and publishes the output. `source` names
    /// the capture in errors; `notes` are the reader's own.
    fn finish(self, source: &Path, mut notes: Vec<String>) -> Result<UnframeReport> {
        let output = self.staged.path().to_owned();
        let (assembled, _) = self.assembler.finish().map_err(Error::io(&output))?;
        if let Some((begun, bytes)) = assembled.incomplete {
            notes.push(format!(
                "dropped the last fragment: begun at message {begun}, it never ended ({bytes} bytes received)"
            ));
        }
        if assembled.sequence_gaps > 0 {
            notes.push(format!(
                "{} fragments' mfhd sequence numbers skip: fragments were lost before the capture",
                assembled.sequence_gaps
            ));
        }
        if assembled.fragments == 0 {
            let reason = match notes.first() {
                Some(note) => format!("no complete fragment in the capture ({note})"),
                None => "no complete fragment in the capture".to_owned(),
            };
            return Err(Error::InputCorrupt {
                path: source.to_owned(),
                reason,
            });
        }
        let remux = match &self.scratch {
            Some(scratch) => Some(remux::remux_into(&Location::File(scratch.to_path_buf()), &output)?),
            None => None,
        };
        Ok(UnframeReport {
            output: self.staged.put_in_place()?,
            assembled,
            notes,
            remux,
        })
    }
}

/// Unframes a capture file (each message as a 4-byte big-endian length and the message). A file
/// cut off mid-message or mid-fragment gives every complete fragment before the cut.
pub fn unframe_file(capture: &Path, options: &UnframeOptions) -> Result<UnframeReport> {
    crate::output::staging::refuse_overlap(&options.output, [("the capture", capture)])?;
    crate::input::watchdog::check_file(capture)?;
    let file = File::open(capture).map_err(Error::io(capture))?;
    let mut reader = MessageReader::new(BufReader::new(file));
    let mut output = Output::new(options)?;
    let mut notes = Vec::new();
    loop {
        match reader.next_message() {
            Ok(Some((at, message))) => output
                .assembler
                .push(message)
                .map_err(|e| assemble_error(e, capture, at, &options.output))?,
            Ok(None) => break,
            Err(e @ FramingError::Truncated { .. }) => {
                notes.push(e.to_string());
                break;
            }
            Err(FramingError::Io(e)) => return Err(Error::io(capture)(e)),
            Err(e @ FramingError::Limit { .. }) => {
                return Err(Error::InputCorrupt {
                    path: capture.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
    }
    output.finish(capture, notes)
}

/// Captures from a websocket and unframes what arrives, until the duration passes, the server
/// closes, or `cancel` is cancelled (Ctrl-C): the capture so far is kept in every case.
pub fn unframe_websocket(source: &WebSocketSource, options: &UnframeOptions, cancel: &Cancel) -> Result<UnframeReport> {
    let mut output = Output::new(options)?;
    let url = PathBuf::from(&source.url);
    let why = source.capture(cancel, |message| {
        output.assembler.push(message).map_err(|e| match e {
            AssembleError::Message { .. } => Error::Remote {
                url: source.url.clone(),
                reason: e.to_string(),
            },
            AssembleError::Write(io) => Error::io(&options.output)(io),
        })
    })?;
    let notes = match why {
        Stop::Broken(reason) => vec![format!("the connection broke ({reason}); kept what came before")],
        Stop::Closed if source.duration.is_some() => {
            vec!["the server closed the connection before the requested duration".to_owned()]
        }
        Stop::TimeUp | Stop::Closed | Stop::Stopped => Vec::new(),
    };
    output.finish(&url, notes)
}

fn assemble_error(error: AssembleError, capture: &Path, at: u64, output: &Path) -> Error {
    match error {
        AssembleError::Message { .. } => Error::InputCorrupt {
            path: capture.to_owned(),
            reason: format!("{error} (at byte {at})"),
        },
        AssembleError::Write(io) => Error::io(output)(io),
    }
}
