//! The MP4 walk: every box listed, the top-level ones read whole (but for mdat, skipped), and the
//! fragment checks: mfhd sequence, tfdt continuity, each moof's samples against its mdat.

use std::collections::HashMap;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::{InitSegment, MAX_BOX_IN_MEMORY, Problems, Walk};
use crate::bmff::{self, BoxRef, MovieFragment, TrackDefaults};

/// Box types a file may start with: a file's, or a media segment's (CMAF allows prft, emsg
/// and, in DASH, sidx before the moof).
pub(super) const TOP_LEVEL: [&[u8]; 11] = [
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
pub(super) const MAX_DEPTH: usize = 32;

/// Tracks whose decode times are followed from fragment to fragment; real files have a few.
const MAX_TRACKS_FOLLOWED: usize = 1024;

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
pub(super) fn walk<R: Read + Seek>(
    mut reader: BufReader<R>,
    init: Option<&InitSegment>,
    walk: &mut Walk,
) -> io::Result<bool> {
    let file_len = reader.seek(SeekFrom::End(0))?;
    reader.seek(SeekFrom::Start(0))?;
    let mut fragments = Fragments::default();
    if let Some(init) = init {
        fragments.moov(
            &init.moov,
            &format!("the init segment {}", init.name),
            &mut walk.problems,
        );
    }
    let mut at = 0u64;
    while at < file_len {
        let mut head = Vec::with_capacity(16);
        (&mut reader).take(16).read_to_end(&mut head)?;
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
        skip_back(&mut reader, head.len())?;
        if &header.kind == b"mdat" || size > MAX_BOX_IN_MEMORY {
            let payload = format!("{} bytes of payload", size - header_len);
            walk.entry(0, at, size, fourcc(&header.kind), payload);
            fragments.mdat(at, header_len, size, &mut walk.problems);
            skip(&mut reader, size)?;
        } else {
            let mut bytes = Vec::new();
            (&mut reader).take(size).read_to_end(&mut bytes)?;
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
