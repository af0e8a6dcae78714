//! `inspect`: the box tree of an MP4, fragmented MP4 or CMAF media segment, or the tag list of an
//! FLV, and the problems found in it: mfhd sequence gaps, trafs without tfdt, decode-time jumps
//! between fragments, samples outside their mdat, PreviousTagSize mismatches, timestamps that go
//! back or jump, truncation. Reads box by box and tag by tag and hands each entry over as it is
//! read: an mdat is never loaded, and memory does not grow with the number of boxes or tags.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use stream_pack_formats::bmff::{self, BoxRef, MovieFragment, TrackDefaults};
use stream_pack_formats::flv::{self, Content, FlvReader};

use crate::error::{Error, Result};

/// What the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// An MP4, a fragmented MP4, or a media segment of one.
    Mp4,
    Flv,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Mp4 => "mp4",
            Format::Flv => "flv",
        })
    }
}

/// What `inspect` found besides the entries, which go to the caller one at a time.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
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

/// A box or a tag.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub depth: usize,
    pub offset: u64,
    pub size: u64,
    /// The box type (`moof`), or the tag type (`video`, `audio`, `script`).
    pub name: String,
    /// What the box or tag says: `sequence 3`, `12 samples`, `1200 ms keyframe`.
    pub detail: String,
}

/// Problems kept in full; a hostile file can have one per box, so the rest are only counted.
pub const MAX_PROBLEMS_LISTED: usize = 1000;

/// An open file to inspect: its format is known, the walk has not begun.
pub struct Inspector<R> {
    path: PathBuf,
    format: Format,
    reader: BufReader<R>,
    /// The moov of the init segment given for a media segment, and that file.
    init: Option<(PathBuf, Vec<u8>)>,
}

impl Inspector<File> {
    /// Opens an MP4, fMP4, media segment or FLV file.
    pub fn open(path: &Path) -> Result<Inspector<File>> {
        crate::input::source::check_file(path)?;
        let file = File::open(path).map_err(Error::io(path))?;
        Inspector::new(path, file)
    }
}

impl<R: Read + Seek> Inspector<R> {
    /// Inspects what `reader` holds; `path` names it in the report and in errors.
    pub fn new(path: &Path, reader: R) -> Result<Inspector<R>> {
        let mut reader = BufReader::new(reader);
        let mut start = Vec::new();
        (&mut reader).take(8).read_to_end(&mut start).map_err(Error::io(path))?;
        reader.seek(SeekFrom::Start(0)).map_err(Error::io(path))?;
        let format = if start.starts_with(b"FLV") {
            Format::Flv
        } else if start.len() == 8 && TOP_LEVEL.contains(&&start[4..8]) {
            Format::Mp4
        } else {
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
            return Err(Error::Usage(format!(
                "--init {}: an init segment goes with an MP4 media segment; {} is an FLV",
                init.display(),
                self.path.display()
            )));
        }
        self.init = Some((init.to_owned(), init_moov(init)?));
        Ok(self)
    }

    /// Walks the file, giving each box or tag to `on_entry` as it is read.
    pub fn run(self, mut on_entry: impl FnMut(&Entry)) -> Result<Inspection> {
        let mut walk = Walk {
            on_entry: &mut on_entry,
            count: 0,
            problems: Problems::default(),
        };
        let media_segment = match self.format {
            Format::Mp4 => walk_mp4(&self.path, self.reader, self.init, &mut walk)?,
            Format::Flv => {
                walk_flv(self.reader, &mut walk);
                false
            }
        };
        Ok(Inspection {
            path: self.path,
            format: self.format,
            entry_count: walk.count,
            media_segment,
            problems: walk.problems.listed,
            problems_not_listed: walk.problems.more,
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
                out.line(format_args!("{comma}{}", json(entry)));
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

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = format!("{}{} {}", "  ".repeat(self.depth), self.name, self.detail);
        write!(f, "{:>12} {:>10}  {}", self.offset, self.size, what.trim_end())
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

/// Box types a file may start with: a file's, or a media segment's (CMAF allows prft, emsg
/// and, in DASH, sidx before the moof).
const TOP_LEVEL: [&[u8]; 11] = [
    b"ftyp", b"styp", b"moov", b"moof", b"free", b"skip", b"mdat", b"wide", b"sidx", b"emsg", b"prft",
];

/// The first boxes that make a file without moov a media segment rather than a broken MP4.
const SEGMENT_START: [&[u8; 4]; 5] = [b"styp", b"sidx", b"emsg", b"prft", b"moof"];

/// Boxes whose payload is made of boxes, and the bytes of fields before them.
fn container(kind: &[u8; 4]) -> Option<usize> {
    match kind {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"mvex" | b"moof" | b"traf" | b"edts" | b"dinf" | b"udta"
        | b"mfra" | b"sinf" | b"schi" => Some(0),
        b"stsd" => Some(8),
        // Visual sample entries: 78 bytes of fields; audio ones 28.
        b"avc1" | b"avc3" | b"hvc1" | b"hev1" | b"vp09" | b"av01" | b"encv" => Some(78),
        b"mp4a" | b"Opus" | b"ac-3" | b"ec-3" | b"enca" => Some(28),
        _ => None,
    }
}

/// The deepest nesting of boxes walked; real files nest about ten levels.
const MAX_DEPTH: usize = 32;

/// The largest box (other than mdat) read into memory to walk; a moov of hours of samples is tens of MiB.
const MAX_BOX_IN_MEMORY: u64 = 256 << 20;

/// Tracks whose decode times are followed from fragment to fragment; real files have a few.
const MAX_TRACKS_FOLLOWED: usize = 1024;

/// The moov of an init segment, read whole (an init segment is a few KiB).
fn init_moov(init: &Path) -> Result<Vec<u8>> {
    crate::input::source::check_file(init)?;
    let file = File::open(init).map_err(Error::io(init))?;
    let mut bytes = Vec::new();
    file.take(MAX_BOX_IN_MEMORY + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(init))?;
    let corrupt = |reason: String| Error::InputCorrupt {
        path: init.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_BOX_IN_MEMORY {
        return Err(corrupt(format!(
            "larger than {} MiB: not an init segment",
            MAX_BOX_IN_MEMORY >> 20
        )));
    }
    let boxes = bmff::children(&bytes, 0, bytes.len()).map_err(|e| corrupt(format!("not an init segment: {e}")))?;
    let moov = boxes
        .iter()
        .find(|b| &b.kind == b"moov")
        .ok_or_else(|| corrupt("no moov: not an init segment".into()))?;
    Ok(bytes[moov.start..moov.end].to_vec())
}

/// The per-file state of the fragment checks.
#[derive(Default)]
struct Fragments {
    defaults: Vec<TrackDefaults>,
    timescales: HashMap<u32, u32>,
    /// The file's own moov was seen.
    has_moov: bool,
    /// Whether the moov in force (the file's, or the init segment's) has an mvex; `None` without one.
    has_mvex: Option<bool>,
    /// The type of the file's first box.
    first: Option<[u8; 4]>,
    last_sequence: Option<u32>,
    /// Each track's decode time at the end of its last fragment.
    next_decode: HashMap<u32, u64>,
    /// The last moof: its offset, size and facts, waiting for its mdat.
    pending: Option<(u64, u64, MovieFragment)>,
    count: u64,
}

impl Fragments {
    fn media_segment(&self) -> bool {
        !self.has_moov && self.first.is_some_and(|first| SEGMENT_START.contains(&&first))
    }
}

/// Walks the boxes of an MP4; says whether it is a media segment.
fn walk_mp4<R: Read + Seek>(
    path: &Path,
    mut reader: BufReader<R>,
    init: Option<(PathBuf, Vec<u8>)>,
    walk: &mut Walk,
) -> Result<bool> {
    let file_len = reader.seek(SeekFrom::End(0)).map_err(Error::io(path))?;
    reader.seek(SeekFrom::Start(0)).map_err(Error::io(path))?;
    let mut fragments = Fragments::default();
    if let Some((init, moov)) = init {
        fragments.moov(
            &moov,
            &format!("the init segment {}", init.display()),
            &mut walk.problems,
        );
    }
    let mut at = 0u64;
    while at < file_len {
        let mut head = Vec::with_capacity(16);
        (&mut reader).take(16).read_to_end(&mut head).map_err(Error::io(path))?;
        let left = file_len - at;
        // The offset only names the place in a message; past usize (32-bit targets) it saturates.
        let header = match bmff::header(&head, usize::try_from(at).unwrap_or(usize::MAX)) {
            Ok(header) => header,
            Err(e) => {
                walk.problems
                    .push(format!("at byte {at}: {e} ({left} bytes left in the file)"));
                break;
            }
        };
        fragments.first.get_or_insert(header.kind);
        let size = header.size.unwrap_or(left);
        if size > left {
            walk.problems.push(format!(
                "box {} at byte {at} declares {size} bytes; the file ends {left} bytes in: truncated",
                fourcc(&header.kind),
            ));
        }
        // Both the declared size and the bytes left hold the header just read.
        let size = size.min(left);
        let header_len = header.len as u64;
        // Back to the box's first byte: up to 16 bytes were read, a box may be 8.
        skip_back(&mut reader, head.len()).map_err(Error::io(path))?;
        if &header.kind == b"mdat" || size > MAX_BOX_IN_MEMORY {
            let payload = format!("{} bytes of payload", size - header_len);
            walk.entry(0, at, size, fourcc(&header.kind), payload);
            fragments.mdat(at, header_len, size, &mut walk.problems);
            skip(&mut reader, size).map_err(Error::io(path))?;
        } else {
            let mut bytes = Vec::new();
            (&mut reader)
                .take(size)
                .read_to_end(&mut bytes)
                .map_err(Error::io(path))?;
            walk_top(&bytes, at, walk);
            fragments.top_level(at, &header.kind, &bytes, &mut walk.problems);
        }
        at += size;
    }
    fragments.end(&mut walk.problems);
    Ok(fragments.media_segment())
}

/// Moves `n` bytes on, keeping what the buffer holds when the next box is in it.
fn skip<R: Read + Seek>(reader: &mut BufReader<R>, n: u64) -> io::Result<()> {
    match i64::try_from(n) {
        Ok(n) => reader.seek_relative(n),
        Err(_) => {
            let here = reader.stream_position()?;
            reader.seek(SeekFrom::Start(here.saturating_add(n))).map(|_| ())
        }
    }
}

/// Moves back over the `n` (at most 16) bytes of a header just read.
fn skip_back<R: Read + Seek>(reader: &mut BufReader<R>, n: usize) -> io::Result<()> {
    reader.seek_relative(-i64::try_from(n).expect("a header is at most 16 bytes"))
}

/// Lists the top-level box in `bytes` (at `offset` in the file) and every box inside it.
fn walk_top(bytes: &[u8], offset: u64, walk: &mut Walk) {
    let whole = BoxRef {
        kind: bytes[4..8].try_into().expect("a box header was read"),
        start: 0,
        payload: bmff::header(bytes, 0).map_or(8, |h| h.len),
        end: bytes.len(),
    };
    walk_box(bytes, &whole, offset, 0, walk);
}

fn walk_box(bytes: &[u8], b: &BoxRef, offset: u64, depth: usize, walk: &mut Walk) {
    let at = offset + b.start as u64;
    let detail = detail(&b.kind, &bytes[b.payload..b.end]);
    walk.entry(depth, at, (b.end - b.start) as u64, fourcc(&b.kind), detail);
    let Some(skip) = container(&b.kind) else { return };
    if depth >= MAX_DEPTH {
        walk.problems.push(format!(
            "{} at byte {at}: boxes nest deeper than {MAX_DEPTH} levels",
            fourcc(&b.kind)
        ));
        return;
    }
    if b.payload + skip > b.end {
        walk.problems
            .push(format!("{} at byte {at}: too short for its fields", fourcc(&b.kind)));
        return;
    }
    // One child at a time: a box of millions of empty boxes costs no list of them.
    for child in bmff::iter_children(bytes, b.payload + skip, b.end) {
        match child {
            Ok(child) => walk_box(bytes, &child, offset, depth + 1, walk),
            Err(e) => walk.problems.push(format!(
                "inside {} at byte {at}: {e} (offset within the box)",
                fourcc(&b.kind)
            )),
        }
    }
}

fn fourcc(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// What a box says, for the boxes whose few fields help debugging.
fn detail(kind: &[u8; 4], payload: &[u8]) -> String {
    let u32_at = |at: usize| {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |at: usize| {
        payload
            .get(at..at + 8)
            .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
    };
    let version = payload.first().copied().unwrap_or(0);
    let text = match kind {
        b"ftyp" | b"styp" => payload.get(..4).map(|major| {
            let brands: Vec<String> = payload
                .get(8..)
                .unwrap_or_default()
                .chunks_exact(4)
                .map(|b| fourcc(b.try_into().expect("4 bytes")))
                .collect();
            format!(
                "{}, compatible {}",
                fourcc(major.try_into().expect("4 bytes")),
                brands.join(" ")
            )
        }),
        b"mvhd" | b"mdhd" => {
            let (scale, duration) = if version == 1 {
                (u32_at(20), u64_at(24))
            } else {
                (u32_at(12), u32_at(16).map(u64::from))
            };
            scale.zip(duration).map(|(s, d)| format!("timescale {s}, duration {d}"))
        }
        b"tkhd" => u32_at(if version == 1 { 20 } else { 12 }).map(|id| format!("track {id}")),
        b"hdlr" => payload
            .get(8..12)
            .map(|h| format!("handler {}", fourcc(h.try_into().expect("4 bytes")))),
        b"trex" => u32_at(4)
            .zip(u32_at(12))
            .map(|(t, d)| format!("track {t}, default duration {d}")),
        b"mfhd" => u32_at(4).map(|s| format!("sequence {s}")),
        b"tfhd" => u32_at(4).map(|t| format!("track {t}")),
        b"tfdt" => if version == 1 {
            u64_at(4)
        } else {
            u32_at(4).map(u64::from)
        }
        .map(|t| format!("decode time {t}")),
        b"trun" => u32_at(4).map(|n| format!("{n} samples")),
        _ => None,
    };
    text.unwrap_or_default()
}

impl Fragments {
    fn top_level(&mut self, at: u64, kind: &[u8; 4], bytes: &[u8], problems: &mut Problems) {
        match kind {
            b"moov" => {
                self.has_moov = true;
                self.moov(bytes, "the moov", problems);
            }
            b"moof" => {
                if let Some((moof_at, _, _)) = self.pending.take() {
                    problems.push(format!("moof at byte {moof_at}: no mdat follows it"));
                }
                match bmff::movie_fragment(bytes, &self.defaults) {
                    Ok(fragment) => {
                        self.check(at, &fragment, problems);
                        self.pending = Some((at, bytes.len() as u64, fragment));
                    }
                    Err(e) => problems.push(format!("moof at byte {at}: {e} (offset within the moof)")),
                }
            }
            _ => {}
        }
    }

    /// Takes the track facts of a moov: the file's own, or its init segment's (`whose` names it).
    fn moov(&mut self, moov: &[u8], whose: &str, problems: &mut Problems) {
        let has_mvex = bmff::child(moov, 8, moov.len(), b"mvex").ok().flatten().is_some();
        self.has_mvex = Some(has_mvex);
        match bmff::track_defaults(moov) {
            Ok(defaults) => self.defaults = defaults,
            Err(e) => problems.push(format!("{whose}: its trex boxes do not read: {e}")),
        }
        self.timescales = track_timescales(moov);
        if has_mvex {
            for track in self.timescales.keys() {
                if !self.defaults.iter().any(|d| d.track_id == *track) {
                    problems.push(format!("{whose}: track {track} has no trex in the mvex"));
                }
            }
        }
    }

    fn check(&mut self, at: u64, fragment: &MovieFragment, problems: &mut Problems) {
        self.count += 1;
        match (fragment.sequence, self.last_sequence) {
            (None, _) => problems.push(format!("moof at byte {at}: no mfhd")),
            (Some(sequence), Some(last)) if sequence != last.wrapping_add(1) => problems.push(format!(
                "moof at byte {at}: mfhd sequence {sequence} after {last} (a gap)"
            )),
            _ => {}
        }
        if fragment.sequence.is_some() {
            self.last_sequence = fragment.sequence;
        }
        for track in &fragment.tracks {
            let Some(decode) = track.decode_time else {
                problems.push(format!("moof at byte {at}: track {} has no tfdt", track.track_id));
                self.next_decode.remove(&track.track_id);
                continue;
            };
            if let Some(expected) = self.next_decode.get(&track.track_id).copied().filter(|e| *e != decode) {
                problems.push(format!(
                    "moof at byte {at}: track {} decode time (tfdt) {decode} where the previous fragment ends at \
                     {expected}: a jump of {}",
                    track.track_id,
                    self.jump(track.track_id, decode, expected)
                ));
            }
            self.follow(at, track.track_id, decode, track.duration, problems);
        }
    }

    /// A jump between decode times, in seconds when the track's timescale is known.
    fn jump(&self, track: u32, decode: u64, expected: u64) -> String {
        let ticks = i128::from(decode) - i128::from(expected);
        match self.timescales.get(&track).copied().filter(|s| *s > 0) {
            Some(scale) => format!("{:.3} s", ticks as f64 / f64::from(scale)),
            None => format!("{ticks} ticks (the timescale is in the init segment: --init)"),
        }
    }

    /// Notes where a track's next fragment must start: this one's decode time plus its duration.
    fn follow(&mut self, at: u64, track: u32, decode: u64, duration: Option<u64>, problems: &mut Problems) {
        let Some(duration) = duration else {
            self.next_decode.remove(&track);
            return;
        };
        match decode.checked_add(duration) {
            Some(end) if self.next_decode.len() < MAX_TRACKS_FOLLOWED || self.next_decode.contains_key(&track) => {
                self.next_decode.insert(track, end);
            }
            Some(_) => {}
            None => {
                problems.push(format!(
                    "moof at byte {at}: track {track} decode time (tfdt) {decode} plus the fragment's duration \
                     {duration} passes 2^64 ticks"
                ));
                self.next_decode.remove(&track);
            }
        }
    }

    fn mdat(&mut self, at: u64, header: u64, size: u64, problems: &mut Problems) {
        if let Some((moof_at, moof_len, fragment)) = self.pending.take() {
            if moof_at + moof_len != at {
                problems.push(format!("moof at byte {moof_at}: its mdat does not follow it directly"));
            } else if let Err(reason) = fragment.check_data(moof_len, header, size - header) {
                problems.push(format!("moof at byte {moof_at}: {reason}"));
            }
        }
    }

    fn end(&mut self, problems: &mut Problems) {
        if let Some((moof_at, _, _)) = self.pending.take() {
            problems.push(format!("moof at byte {moof_at}: no mdat follows it"));
        }
        match self.has_mvex {
            None if !self.media_segment() => problems.push("no moov: players cannot read the file".into()),
            Some(false) if self.count > 0 => problems.push("the file has fragments but the moov has no mvex".into()),
            _ => {}
        }
    }
}

/// Each track's id and mdhd timescale.
fn track_timescales(moov: &[u8]) -> HashMap<u32, u32> {
    let mut scales = HashMap::new();
    let Ok(traks) = bmff::children(moov, 8, moov.len()) else {
        return scales;
    };
    for trak in traks.iter().filter(|b| &b.kind == b"trak") {
        let inner = |from: &BoxRef, kind| bmff::child(moov, from.payload, from.end, kind).ok().flatten();
        // tkhd's track id and mdhd's timescale sit 12 bytes in (20 in a version 1 box).
        let field = |b: BoxRef| {
            let payload = &moov[b.payload..b.end];
            let offset = if payload.first() == Some(&1) { 20 } else { 12 };
            payload
                .get(offset..offset + 4)
                .map(|f| u32::from_be_bytes(f.try_into().expect("4 bytes")))
        };
        let id = inner(trak, b"tkhd").and_then(field);
        let scale = inner(trak, b"mdia")
            .and_then(|mdia| inner(&mdia, b"mdhd"))
            .and_then(field);
        if let (Some(id), Some(scale)) = (id, scale) {
            scales.insert(id, scale);
        }
    }
    scales
}

/// A step in one stream's timestamps this many times its usual step (and at least a second) is a jump.
const JUMP_FACTOR: i64 = 10;

/// The onMetaData tags seen: the first's offset and declared duration, and how many.
#[derive(Default)]
struct Metadata {
    first: Option<(u64, f64)>,
    count: u64,
}

fn walk_flv<R: Read>(reader: R, walk: &mut Walk) {
    let (_, mut reader) = match FlvReader::new(reader) {
        Ok(opened) => opened,
        Err(e) => {
            walk.problems.push(e.to_string());
            return;
        }
    };
    // Per stream (audio, video): the last timestamp and the last step.
    let mut last: [Option<(u32, i64)>; 2] = [None, None];
    let mut metadata = Metadata::default();
    let mut end_ms = 0u32;
    loop {
        let (info, payload) = match reader.next_tag() {
            Ok(Some(tag)) => tag,
            Ok(None) => break,
            Err(e) => {
                walk.problems.push(e.to_string());
                break;
            }
        };
        let content = flv::classify(info.kind, payload);
        let name = match info.kind {
            flv::AUDIO => "audio",
            flv::VIDEO => "video",
            _ => "script",
        };
        walk.entry(
            0,
            info.offset,
            flv::tag_len(info.size as usize),
            name.into(),
            tag_detail(info.timestamp, &content),
        );
        let problems = &mut walk.problems;
        if info.previous_size != info.size + 11 {
            problems.push(format!(
                "tag at byte {}: PreviousTagSize is {}, the tag is {} bytes",
                info.offset,
                info.previous_size,
                info.size + 11
            ));
        }
        if info.stream_id != 0 {
            problems.push(format!(
                "tag at byte {}: stream id {} (must be 0)",
                info.offset, info.stream_id
            ));
        }
        if let Content::Script(Some(name)) = &content
            && name == flv::ON_METADATA
        {
            metadata.count += 1;
            metadata
                .first
                .get_or_insert_with(|| (info.offset, declared_duration(payload)));
        }
        let stream = match content {
            Content::AudioFrame => 0,
            Content::VideoFrame { .. } => 1,
            _ => continue,
        };
        end_ms = end_ms.max(info.timestamp);
        check_step(&mut last[stream], name, info.offset, info.timestamp, problems);
    }
    check_metadata(&metadata, &last, end_ms, &mut walk.problems);
}

/// The duration an onMetaData tag declares, NaN when it declares none.
fn declared_duration(payload: &[u8]) -> f64 {
    let duration = flv::metadata(payload)
        .and_then(std::result::Result::ok)
        .and_then(|m| match m.get("duration") {
            Some(stream_pack_formats::amf0::Value::Number(d)) => Some(*d),
            _ => None,
        });
    duration.unwrap_or(f64::NAN)
}

fn tag_detail(timestamp: u32, content: &Content) -> String {
    let what = match content {
        Content::AudioConfig => "sequence header".to_owned(),
        Content::VideoConfig => "sequence header".to_owned(),
        Content::AudioFrame => String::new(),
        Content::VideoFrame {
            keyframe,
            composition_offset,
        } => {
            let key = if *keyframe { "keyframe" } else { "" };
            match composition_offset {
                Some(cts) if *cts != 0 => format!("{key} cts {cts}").trim().to_owned(),
                _ => key.to_owned(),
            }
        }
        Content::VideoEnd => "end of sequence".to_owned(),
        Content::VideoOther => "info".to_owned(),
        Content::Script(name) => name.clone().unwrap_or_default(),
        Content::Empty => "empty".to_owned(),
    };
    format!("{timestamp} ms {what}").trim_end().to_owned()
}

/// Flags a timestamp that goes back or jumps far ahead of the stream's usual step.
fn check_step(last: &mut Option<(u32, i64)>, name: &str, offset: u64, ts: u32, problems: &mut Problems) {
    let Some((previous, step)) = *last else {
        *last = Some((ts, 0));
        return;
    };
    let delta = i64::from(ts) - i64::from(previous);
    if delta < 0 {
        problems.push(format!(
            "tag at byte {offset}: {name} timestamp goes back from {previous} to {ts} ms"
        ));
    } else if step > 0 && delta > (JUMP_FACTOR * step).max(1000) {
        problems.push(format!(
            "tag at byte {offset}: {name} timestamps jump {delta} ms (from {previous} to {ts} ms)"
        ));
    }
    *last = Some((ts, if delta > 0 { delta } else { step }));
}

/// More than one onMetaData, or a duration far from the tags', is worth knowing.
fn check_metadata(metadata: &Metadata, last: &[Option<(u32, i64)>; 2], end_ms: u32, problems: &mut Problems) {
    if metadata.count > 1 {
        problems.push(format!(
            "{} onMetaData tags (players use the first): chunks joined without care?",
            metadata.count
        ));
    }
    let step = last.iter().flatten().map(|(_, step)| *step).max().unwrap_or(0);
    let end = f64::from(end_ms) / 1000.0 + step as f64 / 1000.0;
    if let Some((offset, declared)) = metadata.first
        && declared.is_finite()
        && (declared - end).abs() > 1.0
    {
        problems.push(format!(
            "onMetaData at byte {offset} says the duration is {declared:.3} s; the tags last {end:.3} s"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stream_pack_formats::boxed;

    #[test]
    fn deep_nesting_is_a_problem_not_a_stack_overflow() {
        let mut nested = boxed(b"free", &[]);
        for _ in 0..10_000 {
            nested = boxed(b"moov", &nested);
        }
        let mut entries = 0;
        let report = Inspector::new(Path::new("deep"), std::io::Cursor::new(nested))
            .unwrap()
            .run(|_| entries += 1)
            .unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("nest deeper")),
            "{:?}",
            report.problems
        );
        assert_eq!(entries, MAX_DEPTH + 1);
        assert_eq!(report.entry_count, entries as u64);
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
        stream_pack_formats::fuzz_bytes(&sample, 5_000, |bytes| {
            let _ = Inspector::new(Path::new("fuzz"), std::io::Cursor::new(bytes)).and_then(|i| i.run(|_| ()));
        });
    }
}
