//! `inspect`: the box tree of an MP4, fragmented MP4 or CMAF media segment, or the tag list of an
//! FLV, and the problems found in it. The walks and their checks are
//! [`stream_pack_formats::inspect`]'s; here the files are opened, their errors become
//! stream-pack's, and the report is printed as a listing, JSON or the problems alone, each entry
//! as it is read.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Serialize, Serializer};
use stream_pack_formats::inspect::{self as walker, InitSegment, MAX_BOX_IN_MEMORY};
pub use stream_pack_formats::inspect::{Entry, Format, MAX_PROBLEMS_LISTED};

use crate::error::{Error, Result};

/// What `inspect` found besides the entries, which go to the caller one at a time.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    #[serde(serialize_with = "by_name")]
    pub format: Format,
    /// Boxes or tags walked.
    pub entry_count: u64,
    /// A media segment (CMAF, DASH, HLS fMP4): styp or moof first and no moov, which it needs
    /// not have; its track facts come from the init segment when one is given.
    pub media_segment: bool,
    /// The first [`MAX_PROBLEMS_LISTED`] problems.
    pub problems: Vec<String>,
    /// Problems found past those listed.
    pub problems_not_listed: u64,
}

impl Inspection {
    /// Every problem found, listed or not.
    pub fn problem_count(&self) -> u64 {
        self.problems.len() as u64 + self.problems_not_listed
    }
}

/// A format as its name: `mp4`, `flv`.
fn by_name<S: Serializer>(format: &Format, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    serializer.collect_str(format)
}

/// An open file to inspect: its format is known, the walk has not begun.
pub struct Inspector<R> {
    path: PathBuf,
    format: Format,
    reader: R,
    /// The init segment given for a media segment.
    init: Option<InitSegment>,
}

impl Inspector<File> {
    /// Opens an MP4, fMP4, media segment or FLV file.
    pub fn open(path: &Path) -> Result<Inspector<File>> {
        crate::input::watchdog::check_file(path)?;
        let file = File::open(path).map_err(Error::io(path))?;
        Inspector::new(path, file)
    }
}

impl<R: Read + Seek> Inspector<R> {
    /// Inspects what `reader` holds; `path` names it in the report and in errors.
    pub fn new(path: &Path, mut reader: R) -> Result<Inspector<R>> {
        let mut start = Vec::new();
        (&mut reader).take(8).read_to_end(&mut start).map_err(Error::io(path))?;
        reader.seek(SeekFrom::Start(0)).map_err(Error::io(path))?;
        let Some(format) = Format::detect(&start) else {
            return Err(Error::InputUnreadable {
                path: path.to_owned(),
                reason: "neither an MP4 (or fragmented MP4) nor an FLV file".into(),
            });
        };
        Ok(Inspector {
            path: path.to_owned(),
            format,
            reader,
            init: None,
        })
    }

    /// Takes the track facts (timescales, trex defaults) of a media segment from its init segment.
    pub fn with_init(mut self, init: &Path) -> Result<Inspector<R>> {
        if self.format != Format::Mp4 {
            return Err(Error::InvalidOption {
                option: "init",
                reason: format!(
                    "{}: an init segment goes with an MP4 media segment; {} is an FLV",
                    init.display(),
                    self.path.display()
                ),
            });
        }
        self.init = Some(init_segment(init)?);
        Ok(self)
    }

    /// Walks the file, giving each box or tag to `on_entry` as it is read.
    pub fn run(self, on_entry: impl FnMut(&Entry)) -> Result<Inspection> {
        let walked =
            walker::walk(self.format, self.reader, self.init.as_ref(), on_entry).map_err(Error::io(&self.path))?;
        Ok(Inspection {
            path: self.path,
            format: self.format,
            entry_count: walked.entry_count,
            media_segment: walked.media_segment,
            problems: walked.problems,
            problems_not_listed: walked.problems_not_listed,
        })
    }

    /// Walks the file and writes what it finds to `out` in `style`, each entry as it is read.
    /// A write that fails ends the output, not the walk: the inspection comes back with the
    /// write's error beside it (a reader that stops early, `| head`, is no failure of the file).
    pub fn print(self, style: Style, out: impl Write) -> Result<(Inspection, io::Result<()>)> {
        let mut out = Output { out, failed: None };
        out.head(style, &self.path, self.format);
        let mut first = true;
        let inspection = self.run(|entry| match style {
            Style::Listing => out.line(format_args!("{entry}")),
            Style::Json => {
                let comma = if std::mem::take(&mut first) { "" } else { "," };
                out.line(format_args!("{comma}{}", json(&EntryJson::from(entry))));
            }
            Style::Problems => {}
        })?;
        out.tail(style, &inspection);
        let written = out.finish();
        Ok((inspection, written))
    }
}

/// How [`Inspector::print`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// The entries as an indented table, then a summary and the problems.
    Listing,
    /// One JSON object: `path`, `format`, `entries` (one per line), `entry_count`,
    /// `media_segment`, `problems`, `problems_not_listed`.
    Json,
    /// Only the problems, one per line.
    Problems,
}

/// A writer that keeps its first error and writes nothing after it.
struct Output<W> {
    out: W,
    failed: Option<io::Error>,
}

impl<W: Write> Output<W> {
    fn line(&mut self, line: fmt::Arguments<'_>) {
        if self.failed.is_none()
            && let Err(e) = writeln!(self.out, "{line}")
        {
            self.failed = Some(e);
        }
    }

    /// What comes before the entries: the file and its format.
    fn head(&mut self, style: Style, path: &Path, format: Format) {
        match style {
            Style::Listing => {
                self.line(format_args!("{}: {format}", path.display()));
                self.line(format_args!("{:>12} {:>10}  what", "offset", "size"));
            }
            Style::Json => self.line(format_args!(
                "{{\"path\":{},\"format\":\"{format}\",\"entries\":[",
                json(&path.to_string_lossy())
            )),
            Style::Problems => {}
        }
    }

    /// What comes after the entries: the counts and the problems.
    fn tail(&mut self, style: Style, inspection: &Inspection) {
        match style {
            Style::Listing => self.line(format_args!("{inspection}")),
            Style::Json => self.line(format_args!(
                "],\"entry_count\":{},\"media_segment\":{},\"problems\":{},\"problems_not_listed\":{}}}",
                inspection.entry_count,
                inspection.media_segment,
                json(&inspection.problems),
                inspection.problems_not_listed
            )),
            Style::Problems => {
                for problem in &inspection.problems {
                    self.line(format_args!("{problem}"));
                }
                if inspection.problems_not_listed > 0 {
                    self.line(format_args!("… and {} more", inspection.problems_not_listed));
                }
            }
        }
    }

    fn finish(mut self) -> io::Result<()> {
        match self.failed.take() {
            Some(e) => Err(e),
            None => self.out.flush(),
        }
    }
}

/// A value as compact JSON; what is written here always serialises.
fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("paths, strings and entries serialise")
}

/// An entry as `--json` lists it: its fields, in their order.
#[derive(Serialize)]
struct EntryJson<'a> {
    depth: usize,
    offset: u64,
    size: u64,
    name: &'a str,
    detail: &'a str,
}

impl<'a> From<&'a Entry> for EntryJson<'a> {
    fn from(entry: &'a Entry) -> EntryJson<'a> {
        EntryJson {
            depth: entry.depth,
            offset: entry.offset,
            size: entry.size,
            name: &entry.name,
            detail: &entry.detail,
        }
    }
}

/// The summary after the entries: how many, what kind of file, the problems.
impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let segment = if self.media_segment {
            ", a media segment (no moov: --init names its init segment)"
        } else {
            ""
        };
        writeln!(f, "{} entries{segment}", self.entry_count)?;
        match self.problem_count() {
            0 => write!(f, "no problems found"),
            count => {
                write!(f, "{count} problem{}:", if count == 1 { "" } else { "s" })?;
                self.problems.iter().try_for_each(|p| write!(f, "\n  {p}"))?;
                match self.problems_not_listed {
                    0 => Ok(()),
                    more => write!(f, "\n  … and {more} more"),
                }
            }
        }
    }
}

/// The init segment at `init`, read whole (an init segment is a few KiB).
fn init_segment(init: &Path) -> Result<InitSegment> {
    crate::input::watchdog::check_file(init)?;
    let file = File::open(init).map_err(Error::io(init))?;
    let mut bytes = Vec::new();
    file.take(MAX_BOX_IN_MEMORY + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(init))?;
    InitSegment::new(init.display().to_string(), &bytes).map_err(|e| Error::InputCorrupt {
        path: init.to_owned(),
        reason: e.to_string(),
    })
}
