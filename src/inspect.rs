//! `inspect`: the box tree of an MP4 or fragmented MP4, or the tag list of an FLV, and the
//! problems found in it: mfhd sequence gaps, trafs without tfdt, decode-time jumps between
//! fragments, samples outside their mdat, PreviousTagSize mismatches, timestamps that go back or
//! jump, truncation. Reads box by box and tag by tag: an mdat is never loaded.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::container::bmff::{self, BoxRef, MovieFragment, TrackDefaults};
use crate::container::flv::{self, Content, FlvReader};
use crate::error::{Error, Result};

/// What `inspect` found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: PathBuf,
    /// `mp4` or `flv`.
    pub format: &'static str,
    /// Boxes (depth-first, `depth` 0 at the top) or tags, in file order.
    pub entries: Vec<Entry>,
    pub problems: Vec<String>,
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

/// Inspects an MP4, fMP4 or FLV file.
pub fn inspect(path: &Path) -> Result<Inspection> {
    crate::source::check_file(path)?;
    let file = File::open(path).map_err(Error::io(path))?;
    inspect_reader(path, BufReader::new(file))
}

/// Inspects what `reader` holds; `path` names it in the report and in errors.
pub fn inspect_reader<R: Read + Seek>(path: &Path, mut reader: R) -> Result<Inspection> {
    let mut start = Vec::new();
    (&mut reader).take(8).read_to_end(&mut start).map_err(Error::io(path))?;
    reader.seek(SeekFrom::Start(0)).map_err(Error::io(path))?;
    if start.starts_with(b"FLV") {
        Ok(inspect_flv(path, reader))
    } else if start.len() == 8 && TOP_LEVEL.contains(&&start[4..8]) {
        inspect_mp4(path, reader)
    } else {
        Err(Error::InputUnreadable {
            path: path.to_owned(),
            reason: "neither an MP4 (or fragmented MP4) nor an FLV file".into(),
        })
    }
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {}, {} entries",
            self.path.display(),
            self.format,
            self.entries.len()
        )?;
        writeln!(f, "{:>12} {:>10}  what", "offset", "size")?;
        for entry in &self.entries {
            let line = format!("{}{} {}", "  ".repeat(entry.depth), entry.name, entry.detail);
            writeln!(f, "{:>12} {:>10}  {}", entry.offset, entry.size, line.trim_end())?;
        }
        if self.problems.is_empty() {
            writeln!(f, "no problems found")
        } else {
            let count = self.problems.len();
            writeln!(f, "{count} problem{}:", if count == 1 { "" } else { "s" })?;
            self.problems.iter().try_for_each(|p| writeln!(f, "  {p}"))
        }
    }
}

/// Box types a file may start with.
const TOP_LEVEL: [&[u8]; 8] = [b"ftyp", b"styp", b"moov", b"moof", b"free", b"skip", b"mdat", b"wide"];

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

/// The per-file state of the fragment checks.
#[derive(Default)]
struct Fragments {
    defaults: Vec<TrackDefaults>,
    timescales: HashMap<u32, u32>,
    has_moov: bool,
    has_mvex: bool,
    last_sequence: Option<u32>,
    /// Each track's decode time at the end of its last fragment.
    next_decode: HashMap<u32, u64>,
    /// The last moof: its offset, size and facts, waiting for its mdat.
    pending: Option<(u64, u64, MovieFragment)>,
    count: u64,
}

fn inspect_mp4<R: Read + Seek>(path: &Path, mut reader: R) -> Result<Inspection> {
    let file_len = reader.seek(SeekFrom::End(0)).map_err(Error::io(path))?;
    reader.seek(SeekFrom::Start(0)).map_err(Error::io(path))?;
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut fragments = Fragments::default();
    let mut at = 0u64;
    while at < file_len {
        let mut head = Vec::with_capacity(16);
        (&mut reader).take(16).read_to_end(&mut head).map_err(Error::io(path))?;
        let left = file_len - at;
        // The offset only names the place in a message; past usize (32-bit targets) it saturates.
        let header = match bmff::header(&head, usize::try_from(at).unwrap_or(usize::MAX)) {
            Ok(header) => header,
            Err(e) => {
                problems.push(format!("at byte {at}: {e} ({left} bytes left in the file)"));
                break;
            }
        };
        let size = header.size.unwrap_or(left);
        if size > left {
            problems.push(format!(
                "box {} at byte {at} declares {size} bytes; the file ends {left} bytes in: truncated",
                fourcc(&header.kind),
            ));
        }
        // Both the declared size and the bytes left hold the header just read.
        let size = size.min(left);
        if &header.kind == b"mdat" || size > MAX_BOX_IN_MEMORY {
            entries.push(entry(
                0,
                at,
                size,
                &header.kind,
                format!("{} bytes of payload", size - header.len as u64),
            ));
            fragments.mdat(at, header.len as u64, size, &mut problems);
        } else {
            reader.seek(SeekFrom::Start(at)).map_err(Error::io(path))?;
            let mut bytes = Vec::new();
            (&mut reader)
                .take(size)
                .read_to_end(&mut bytes)
                .map_err(Error::io(path))?;
            walk(&bytes, at, &mut entries, &mut problems);
            fragments.top_level(at, &header.kind, &bytes, &mut problems);
        }
        at += size;
        reader.seek(SeekFrom::Start(at)).map_err(Error::io(path))?;
    }
    fragments.end(&mut problems);
    Ok(Inspection {
        path: path.to_owned(),
        format: "mp4",
        entries,
        problems,
    })
}

/// Lists the box in `bytes` (at `offset` in the file) and every box inside it.
fn walk(bytes: &[u8], offset: u64, entries: &mut Vec<Entry>, problems: &mut Vec<String>) {
    let whole = BoxRef {
        kind: bytes[4..8].try_into().expect("a box header was read"),
        start: 0,
        payload: bmff::header(bytes, 0).map_or(8, |h| h.len),
        end: bytes.len(),
    };
    walk_box(bytes, &whole, offset, 0, entries, problems);
}

fn walk_box(bytes: &[u8], b: &BoxRef, offset: u64, depth: usize, entries: &mut Vec<Entry>, problems: &mut Vec<String>) {
    let at = offset + b.start as u64;
    entries.push(entry(
        depth,
        at,
        (b.end - b.start) as u64,
        &b.kind,
        detail(&b.kind, &bytes[b.payload..b.end]),
    ));
    let Some(skip) = container(&b.kind) else { return };
    if depth >= MAX_DEPTH {
        problems.push(format!(
            "{} at byte {at}: boxes nest deeper than {MAX_DEPTH} levels",
            fourcc(&b.kind)
        ));
        return;
    }
    if b.payload + skip > b.end {
        problems.push(format!("{} at byte {at}: too short for its fields", fourcc(&b.kind)));
        return;
    }
    match bmff::children(bytes, b.payload + skip, b.end) {
        Ok(children) => {
            for child in &children {
                walk_box(bytes, child, offset, depth + 1, entries, problems);
            }
        }
        Err(e) => problems.push(format!(
            "inside {} at byte {at}: {e} (offset within the box)",
            fourcc(&b.kind)
        )),
    }
}

fn entry(depth: usize, offset: u64, size: u64, kind: &[u8; 4], detail: String) -> Entry {
    Entry {
        depth,
        offset,
        size,
        name: fourcc(kind),
        detail,
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
    fn top_level(&mut self, at: u64, kind: &[u8; 4], bytes: &[u8], problems: &mut Vec<String>) {
        match kind {
            b"moov" => self.moov(bytes, problems),
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

    fn moov(&mut self, moov: &[u8], problems: &mut Vec<String>) {
        self.has_moov = true;
        self.has_mvex = bmff::child(moov, 8, moov.len(), b"mvex").ok().flatten().is_some();
        match bmff::track_defaults(moov) {
            Ok(defaults) => self.defaults = defaults,
            Err(e) => problems.push(format!("moov: its trex boxes do not read: {e}")),
        }
        self.timescales = track_timescales(moov);
        if self.has_mvex {
            for track in self.timescales.keys() {
                if !self.defaults.iter().any(|d| d.track_id == *track) {
                    problems.push(format!("track {track} has no trex in the moov's mvex"));
                }
            }
        }
    }

    fn check(&mut self, at: u64, fragment: &MovieFragment, problems: &mut Vec<String>) {
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
                let scale = self.timescales.get(&track.track_id).copied().unwrap_or(1).max(1);
                let jump = decode as f64 - expected as f64;
                problems.push(format!(
                    "moof at byte {at}: track {} decode time (tfdt) {decode} where the previous fragment ends at \
                     {expected}: a jump of {:.3} s",
                    track.track_id,
                    jump / f64::from(scale)
                ));
            }
            self.follow(at, track.track_id, decode, track.duration, problems);
        }
    }

    /// Notes where a track's next fragment must start: this one's decode time plus its duration.
    fn follow(&mut self, at: u64, track: u32, decode: u64, duration: Option<u64>, problems: &mut Vec<String>) {
        let Some(duration) = duration else {
            self.next_decode.remove(&track);
            return;
        };
        match decode.checked_add(duration) {
            Some(end) => {
                self.next_decode.insert(track, end);
            }
            None => {
                problems.push(format!(
                    "moof at byte {at}: track {track} decode time (tfdt) {decode} plus the fragment's duration \
                     {duration} passes 2^64 ticks"
                ));
                self.next_decode.remove(&track);
            }
        }
    }

    fn mdat(&mut self, at: u64, header: u64, size: u64, problems: &mut Vec<String>) {
        if let Some((moof_at, moof_len, fragment)) = self.pending.take() {
            if moof_at + moof_len != at {
                problems.push(format!("moof at byte {moof_at}: its mdat does not follow it directly"));
            } else if let Err(reason) = fragment.check_data(moof_len, header, size - header) {
                problems.push(format!("moof at byte {moof_at}: {reason}"));
            }
        }
    }

    fn end(&mut self, problems: &mut Vec<String>) {
        if let Some((moof_at, _, _)) = self.pending.take() {
            problems.push(format!("moof at byte {moof_at}: no mdat follows it"));
        }
        if !self.has_moov {
            problems.push("no moov: players cannot read the file".into());
        } else if self.count > 0 && !self.has_mvex {
            problems.push("the file has fragments but its moov has no mvex".into());
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

fn inspect_flv<R: Read>(path: &Path, reader: R) -> Inspection {
    let mut inspection = Inspection {
        path: path.to_owned(),
        format: "flv",
        entries: Vec::new(),
        problems: Vec::new(),
    };
    let problems = &mut inspection.problems;
    let (_, mut reader) = match FlvReader::new(reader) {
        Ok(opened) => opened,
        Err(e) => {
            problems.push(e.to_string());
            return inspection;
        }
    };
    // Per stream (audio, video): the last timestamp and the last step.
    let mut last: [Option<(u32, i64)>; 2] = [None, None];
    let mut metadata: Vec<(u64, f64)> = Vec::new();
    let mut end_ms = 0u32;
    loop {
        let (info, payload) = match reader.next_tag() {
            Ok(Some(tag)) => tag,
            Ok(None) => break,
            Err(e) => {
                problems.push(e.to_string());
                break;
            }
        };
        let content = flv::classify(info.kind, payload);
        let name = match info.kind {
            flv::AUDIO => "audio",
            flv::VIDEO => "video",
            _ => "script",
        };
        inspection.entries.push(Entry {
            depth: 0,
            offset: info.offset,
            size: flv::tag_len(info.size as usize),
            name: name.into(),
            detail: tag_detail(info.timestamp, &content),
        });
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
            let duration =
                flv::metadata(payload)
                    .and_then(std::result::Result::ok)
                    .and_then(|m| match m.get("duration") {
                        Some(crate::container::amf0::Value::Number(d)) => Some(*d),
                        _ => None,
                    });
            metadata.push((info.offset, duration.unwrap_or(f64::NAN)));
        }
        let stream = match content {
            Content::AudioFrame => 0,
            Content::VideoFrame { .. } => 1,
            _ => continue,
        };
        end_ms = end_ms.max(info.timestamp);
        check_step(&mut last[stream], name, info.offset, info.timestamp, problems);
    }
    check_metadata(&metadata, &last, end_ms, problems);
    inspection
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
fn check_step(last: &mut Option<(u32, i64)>, name: &str, offset: u64, ts: u32, problems: &mut Vec<String>) {
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
fn check_metadata(metadata: &[(u64, f64)], last: &[Option<(u32, i64)>; 2], end_ms: u32, problems: &mut Vec<String>) {
    if metadata.len() > 1 {
        problems.push(format!(
            "{} onMetaData tags (players use the first): chunks joined without care?",
            metadata.len()
        ));
    }
    let step = last.iter().flatten().map(|(_, step)| *step).max().unwrap_or(0);
    let end = f64::from(end_ms) / 1000.0 + step as f64 / 1000.0;
    if let Some((offset, declared)) = metadata.first()
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
    use crate::container::boxed;

    #[test]
    fn deep_nesting_is_a_problem_not_a_stack_overflow() {
        let mut nested = boxed(b"free", &[]);
        for _ in 0..10_000 {
            nested = boxed(b"moov", &nested);
        }
        let report = inspect_reader(Path::new("deep"), std::io::Cursor::new(nested)).unwrap();
        assert!(
            report.problems.iter().any(|p| p.contains("nest deeper")),
            "{:?}",
            report.problems
        );
        assert_eq!(report.entries.len(), MAX_DEPTH + 1);
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
        crate::container::fuzz_bytes(&sample, 5_000, |bytes| {
            let _ = inspect_reader(Path::new("fuzz"), std::io::Cursor::new(bytes));
        });
    }
}
