//! The walkers of `stream-pack inspect`: the box tree of an MP4, fragmented MP4 or CMAF media
//! segment, or the tag list of an FLV, and the problems found in it: mfhd sequence gaps, trafs
//! without tfdt, decode-time jumps between fragments, samples outside their mdat,
//! PreviousTagSize mismatches, timestamps that go back or jump, truncation. Reads box by box and
//! tag by tag and hands each entry over as it is read: an mdat is never loaded, and memory does
//! not grow with the number of boxes or tags. Opening files and printing are stream-pack's.

mod flv;
mod mp4;

use std::fmt;
use std::io::{self, BufReader, Read, Seek};

use thiserror::Error;

use crate::bmff::{self, BoxError};

/// What the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// An MP4, a fragmented MP4, or a media segment of one.
    Mp4,
    Flv,
}

impl Format {
    /// The format a file's first bytes (8 are enough) show, if it is one walked here.
    pub fn detect(start: &[u8]) -> Option<Format> {
        if start.starts_with(b"FLV") {
            Some(Format::Flv)
        } else if start.len() >= 8 && mp4::TOP_LEVEL.contains(&&start[4..8]) {
            Some(Format::Mp4)
        } else {
            None
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Mp4 => "mp4",
            Format::Flv => "flv",
        })
    }
}

/// A box or a tag.
#[derive(Debug, Clone)]
pub struct Entry {
    pub depth: usize,
    pub offset: u64,
    pub size: u64,
    /// The box type (`moof`), or the tag type (`video`, `audio`, `script`).
    pub name: String,
    /// What the box or tag says: `sequence 3`, `12 samples`, `1200 ms keyframe`.
    pub detail: String,
}

/// A line of the listing: offset, size, and the name and detail indented by depth.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format!("{}{} {}", "  ".repeat(self.depth), self.name, self.detail);
        write!(f, "{:>12} {:>10}  {}", self.offset, self.size, what.trim_end())
    }
}

/// What a walk found besides the entries, which go to the caller one at a time.
#[derive(Debug, Clone)]
pub struct Walked {
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

/// Problems kept in full; a hostile file can have one per box, so the rest are only counted.
pub const MAX_PROBLEMS_LISTED: usize = 1000;

/// The largest box (other than mdat) read into memory to walk; a moov of hours of samples is tens of MiB.
pub const MAX_BOX_IN_MEMORY: u64 = 256 << 20;

/// The track facts (timescales, trex defaults) of a media segment, from the init segment given with it.
#[derive(Debug, Clone)]
pub struct InitSegment {
    /// How problems name it: its path.
    pub name: String,
    moov: Vec<u8>,
}

/// Why bytes given as an init segment are not one.
#[derive(Debug, Error)]
pub enum InitSegmentError {
    #[error("larger than {} MiB: not an init segment", MAX_BOX_IN_MEMORY >> 20)]
    TooLarge,
    #[error("not an init segment: {0}")]
    Boxes(#[from] BoxError),
    #[error("no moov: not an init segment")]
    NoMoov,
}

impl InitSegment {
    /// The init segment `name` holding `bytes` (read whole: an init segment is a few KiB; more
    /// than [`MAX_BOX_IN_MEMORY`] is refused).
    pub fn new(name: String, bytes: &[u8]) -> Result<InitSegment, InitSegmentError> {
        if bytes.len() as u64 > MAX_BOX_IN_MEMORY {
            return Err(InitSegmentError::TooLarge);
        }
        let boxes = bmff::children(bytes, 0, bytes.len())?;
        let moov = boxes
            .iter()
            .find(|b| &b.kind == b"moov")
            .ok_or(InitSegmentError::NoMoov)?;
        Ok(InitSegment {
            name,
            moov: bytes[moov.start..moov.end].to_vec(),
        })
    }
}

/// Walks what `reader` holds as `format`, giving each box or tag to `on_entry` as it is read;
/// `init` gives a media segment its track facts. Only reading and seeking fail: what is wrong
/// in the file is a problem in the result.
pub fn walk<R: Read + Seek>(
    format: Format,
    reader: R,
    init: Option<&InitSegment>,
    mut on_entry: impl FnMut(&Entry),
) -> io::Result<Walked> {
    let reader = BufReader::new(reader);
    let mut walk = Walk {
        on_entry: &mut on_entry,
        count: 0,
        problems: Problems::default(),
    };
    let media_segment = match format {
        Format::Mp4 => mp4::walk(reader, init, &mut walk)?,
        Format::Flv => {
            flv::walk(reader, &mut walk);
            false
        }
    };
    Ok(Walked {
        entry_count: walk.count,
        media_segment,
        problems: walk.problems.listed,
        problems_not_listed: walk.problems.more,
    })
}

/// The walk's counts and problems, and where entries go.
struct Walk<'a> {
    on_entry: &'a mut dyn FnMut(&Entry),
    count: u64,
    problems: Problems,
}

impl Walk<'_> {
    fn entry(&mut self, depth: usize, offset: u64, size: u64, name: String, detail: String) {
        self.count += 1;
        (self.on_entry)(&Entry {
            depth,
            offset,
            size,
            name,
            detail,
        });
    }
}

/// The first [`MAX_PROBLEMS_LISTED`] problems, and a count of the others.
#[derive(Default)]
struct Problems {
    listed: Vec<String>,
    more: u64,
}

impl Problems {
    fn push(&mut self, problem: String) {
        if self.listed.len() < MAX_PROBLEMS_LISTED {
            self.listed.push(problem);
        } else {
            self.more += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxed;
    use std::io::Cursor;

    #[test]
    fn deep_nesting_is_a_problem_not_a_stack_overflow() {
        let mut nested = boxed(b"free", &[]);
        for _ in 0..10_000 {
            nested = boxed(b"moov", &nested);
        }
        assert_eq!(Format::detect(&nested), Some(Format::Mp4));
        let mut entries = 0;
        let walked = walk(Format::Mp4, Cursor::new(nested), None, |_| entries += 1).unwrap();
        assert!(
            walked.problems.iter().any(|p| p.contains("nest deeper")),
            "{:?}",
            walked.problems
        );
        assert_eq!(entries, mp4::MAX_DEPTH + 1);
        assert_eq!(walked.entry_count, entries as u64);
    }

    #[test]
    fn any_bytes_give_a_report_or_an_error() {
        let mut sample = boxed(b"ftyp", b"iso5\0\0\0\0iso6");
        sample.extend(boxed(b"moov", &boxed(b"mvex", &boxed(b"trex", &[0; 24]))));
        sample.extend(boxed(
            b"moof",
            &boxed(b"traf", &boxed(b"tfhd", &[0, 0, 0, 0, 0, 0, 0, 1])),
        ));
        sample.extend(boxed(b"mdat", &[0; 16]));
        crate::fuzz_bytes(&sample, 5_000, |bytes| {
            if let Some(format) = Format::detect(bytes) {
                let _ = walk(format, Cursor::new(bytes), None, |_| ());
            }
        });
    }
}
