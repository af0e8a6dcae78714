//! ISO-BMFF boxes read (headers, children, sample entries, trex defaults, movie fragments checked
//! against their mdat) and patched. The patching is fragment surgery: libav's mp4 muxer (FFmpeg
//! 5.1) starts every track's decode timeline at the track's first DTS, so tracks whose first DTS
//! differ (B-frame delay, AAC priming) end up on different timelines. `set_decode_time` rewrites a
//! fragment's baseMediaDecodeTime (tfdt) in place — same size, so no offset moves — to put every
//! track on the source's one timeline. `with_edit_list` adds the edit list that says where a
//! track's presentation starts, which the muxer cannot know when it writes an init segment before
//! the first packet.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BoxError {
    #[error("box at byte {0} runs past the end of the data")]
    Truncated(usize),
    #[error("box at byte {0} has an impossible size")]
    BadSize(usize),
    #[error("no {0} box in the fragment")]
    Missing(&'static str),
    #[error("a version 0 tfdt cannot hold {0}")]
    TfdtOverflow(u64),
    #[error("an edit list cannot start the presentation at media time {0}")]
    EditOverflow(u64),
    #[error("box at byte {0}: its sample counts, sizes or durations add up past 64 bits")]
    Overflow(usize),
}

/// A box inside `data`: its type, where it starts, and the byte range of its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoxRef {
    pub kind: [u8; 4],
    pub start: usize,
    pub payload: usize,
    pub end: usize,
}

/// A box header: type, header length (8, or 16 with a 64-bit size), and the whole box's size,
/// `None` for a box that runs to the end of the file (size 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: [u8; 4],
    pub len: usize,
    pub size: Option<u64>,
}

/// Reads the header at the start of `bytes` (which may hold more); `at` names its place in errors.
pub fn header(bytes: &[u8], at: usize) -> Result<Header, BoxError> {
    let short = bytes.get(..8).ok_or(BoxError::Truncated(at))?;
    let size32 = u32::from_be_bytes(short[0..4].try_into().expect("4 bytes"));
    let kind: [u8; 4] = short[4..8].try_into().expect("4 bytes");
    let (size, len) = match size32 {
        0 => (None, 8),
        1 => {
            let large = bytes.get(8..16).ok_or(BoxError::Truncated(at))?;
            (Some(u64::from_be_bytes(large.try_into().expect("8 bytes"))), 16)
        }
        n => (Some(u64::from(n)), 8),
    };
    if size.is_some_and(|size| size < len as u64) {
        return Err(BoxError::BadSize(at));
    }
    Ok(Header { kind, len, size })
}

/// The boxes directly inside `data[from..to]`, every size checked against the bounds.
pub fn children(data: &[u8], from: usize, to: usize) -> Result<Vec<BoxRef>, BoxError> {
    iter_children(data, from, to).collect()
}

/// [`children`] one at a time, for a box that may hold millions; it ends after an error.
pub fn iter_children(data: &[u8], from: usize, to: usize) -> impl Iterator<Item = Result<BoxRef, BoxError>> {
    let to = to.min(data.len());
    let mut at = from;
    std::iter::from_fn(move || {
        if at >= to {
            return None;
        }
        let next = next_child(data, at, to);
        // After an error the rest cannot be found: nothing more comes.
        at = next.as_ref().map_or(to, |b| b.end);
        Some(next)
    })
}

fn next_child(data: &[u8], at: usize, to: usize) -> Result<BoxRef, BoxError> {
    let head = header(&data[at..to], at)?;
    let end = match head.size {
        None => to,
        Some(size) => usize::try_from(size)
            .ok()
            .and_then(|size| at.checked_add(size))
            .ok_or(BoxError::BadSize(at))?,
    };
    if end > to {
        return Err(BoxError::Truncated(at));
    }
    Ok(BoxRef {
        kind: head.kind,
        start: at,
        payload: at + head.len,
        end,
    })
}

/// The first box of `kind` directly inside `data[from..to]`.
pub fn child(data: &[u8], from: usize, to: usize, kind: &[u8; 4]) -> Result<Option<BoxRef>, BoxError> {
    Ok(children(data, from, to)?.into_iter().find(|b| &b.kind == kind))
}

/// A box's four-character code and payload.
pub type ChildBox<'a> = ([u8; 4], &'a [u8]);

/// The first sample entry of an init segment's (first) track: its four-character code (`avc1`,
/// `hvc1`, `vp09`, `av01`, `mp4a`, `Opus`…) and the payloads of the boxes inside it (`avcC`…).
pub fn sample_entry(init: &[u8]) -> Result<([u8; 4], Vec<ChildBox<'_>>), BoxError> {
    let mut parent = (0, init.len());
    for kind in [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"] {
        let found = children(init, parent.0, parent.1)?
            .into_iter()
            .find(|b| &b.kind == kind)
            .ok_or(BoxError::Missing(std::str::from_utf8(kind).expect("ASCII")))?;
        parent = (found.payload, found.end);
    }
    // stsd: version and flags, entry count, then the entries.
    let entry = children(init, parent.0 + 8, parent.1)?
        .into_iter()
        .next()
        .ok_or(BoxError::Missing("sample entry"))?;
    // The fields every visual (78 bytes) or audio (28 bytes) sample entry has before its boxes.
    let fields = match &entry.kind {
        b"mp4a" | b"Opus" | b"ac-3" | b"ec-3" => 28,
        _ => 78,
    };
    let inner = children(init, entry.payload + fields, entry.end)?
        .into_iter()
        .map(|b| (b.kind, &init[b.payload..b.end]))
        .collect();
    Ok((entry.kind, inner))
}

/// Sets every track fragment's baseMediaDecodeTime to `base_decode_time`.
pub fn set_decode_time(data: &mut [u8], base_decode_time: u64) -> Result<(), BoxError> {
    let moof = children(data, 0, data.len())?
        .into_iter()
        .find(|b| &b.kind == b"moof")
        .ok_or(BoxError::Missing("moof"))?;
    let trafs: Vec<BoxRef> = children(data, moof.payload, moof.end)?
        .into_iter()
        .filter(|b| &b.kind == b"traf")
        .collect();
    if trafs.is_empty() {
        return Err(BoxError::Missing("traf"));
    }
    for traf in trafs {
        let tfdt = children(data, traf.payload, traf.end)?
            .into_iter()
            .find(|b| &b.kind == b"tfdt")
            .ok_or(BoxError::Missing("tfdt"))?;
        set_tfdt(data, &tfdt, base_decode_time)?;
    }
    Ok(())
}

/// Adds `offset` to the fragment's sequence number (mfhd): a fragment muxed by a process that
/// started mid-track (one chunk of a title) takes the number a whole-track run gives it.
pub fn offset_sequence_number(data: &mut [u8], offset: u32) -> Result<(), BoxError> {
    let moof = child(data, 0, data.len(), b"moof")?.ok_or(BoxError::Missing("moof"))?;
    let mfhd = child(data, moof.payload, moof.end, b"mfhd")?.ok_or(BoxError::Missing("mfhd"))?;
    let field = mfhd.payload + 4;
    let bytes = data.get_mut(field..field + 4).filter(|_| field + 4 <= mfhd.end);
    let bytes = bytes.ok_or(BoxError::Truncated(mfhd.start))?;
    let number = u32::from_be_bytes((&*bytes).try_into().expect("4 bytes"));
    let shifted = number.checked_add(offset).ok_or(BoxError::Overflow(mfhd.start))?;
    bytes.copy_from_slice(&shifted.to_be_bytes());
    Ok(())
}

fn set_tfdt(data: &mut [u8], tfdt: &BoxRef, value: u64) -> Result<(), BoxError> {
    let version = *data.get(tfdt.payload).ok_or(BoxError::Truncated(tfdt.start))?;
    let field = tfdt.payload + 4;
    let width = if version == 1 { 8 } else { 4 };
    if field + width > tfdt.end {
        return Err(BoxError::Truncated(tfdt.start));
    }
    if version == 1 {
        data[field..field + 8].copy_from_slice(&value.to_be_bytes());
    } else {
        let narrow = u32::try_from(value).map_err(|_| BoxError::TfdtOverflow(value))?;
        data[field..field + 4].copy_from_slice(&narrow.to_be_bytes());
    }
    Ok(())
}

/// The init segment with an edit list in its (first) track that starts the presentation at
/// `media_time`, in the track's timescale: one edit over all the media (duration 0, the length
/// of a fragmented track being unknown) at normal rate. This is how a track whose composition
/// offsets are all positive (version-0 trun) says that its first frame is presented at its
/// tfdt, to browsers and libav alike.
pub fn with_edit_list(init: &[u8], media_time: u64) -> Result<Vec<u8>, BoxError> {
    let moov = child(init, 0, init.len(), b"moov")?.ok_or(BoxError::Missing("moov"))?;
    let trak = child(init, moov.payload, moov.end, b"trak")?.ok_or(BoxError::Missing("trak"))?;
    let tkhd = child(init, trak.payload, trak.end, b"tkhd")?.ok_or(BoxError::Missing("tkhd"))?;
    let start = i32::try_from(media_time).map_err(|_| BoxError::EditOverflow(media_time))?;
    // Version 0, one entry: segment_duration, media_time, media_rate 1.0 (16.16).
    let elst = [
        &[0u8; 4][..],
        &1u32.to_be_bytes(),
        &0u32.to_be_bytes(),
        &start.to_be_bytes(),
        &0x0001_0000u32.to_be_bytes(),
    ]
    .concat();
    let edts = super::boxed(b"edts", &super::boxed(b"elst", &elst));
    let mut out = [&init[..tkhd.end], &edts, &init[tkhd.end..]].concat();
    for parent in [moov.start, trak.start] {
        grow(&mut out, parent, edts.len() as u64)?;
    }
    Ok(out)
}

/// Sets the transformation matrix in the track header of an init segment's (first) track, in
/// place: the display matrix (rotation) players apply to the decoded pictures.
pub fn set_track_matrix(init: &mut [u8], matrix: &[i32; 9]) -> Result<(), BoxError> {
    let moov = child(init, 0, init.len(), b"moov")?.ok_or(BoxError::Missing("moov"))?;
    let trak = child(init, moov.payload, moov.end, b"trak")?.ok_or(BoxError::Missing("trak"))?;
    let tkhd = child(init, trak.payload, trak.end, b"tkhd")?.ok_or(BoxError::Missing("tkhd"))?;
    let version = *init.get(tkhd.payload).ok_or(BoxError::Truncated(tkhd.start))?;
    // Version and flags, the times, track_ID and duration (wider in version 1), then reserved,
    // layer, alternate_group, volume and reserved: 16 bytes.
    let at = tkhd.payload + (if version == 1 { 36 } else { 24 }) + 16;
    if at + 36 > tkhd.end {
        return Err(BoxError::Truncated(tkhd.start));
    }
    let field = &mut init[at..at + 36];
    for (bytes, value) in field.chunks_exact_mut(4).zip(matrix) {
        bytes.copy_from_slice(&value.to_be_bytes());
    }
    Ok(())
}

/// Adds `by` bytes to the size of the box at `at` (a box that runs to the end keeps size 0).
pub(crate) fn grow(data: &mut [u8], at: usize, by: u64) -> Result<(), BoxError> {
    let head = header(&data[at..], at)?;
    match (head.size, head.len) {
        (None, _) => {}
        (Some(size), 16) => data[at + 8..at + 16].copy_from_slice(&(size + by).to_be_bytes()),
        (Some(size), _) => {
            let size = u32::try_from(size + by).map_err(|_| BoxError::BadSize(at))?;
            data[at..at + 4].copy_from_slice(&size.to_be_bytes());
        }
    }
    Ok(())
}

/// A track's sample defaults from its trex (ISO/IEC 14496-12 §8.8.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackDefaults {
    pub track_id: u32,
    pub duration: u32,
    pub size: u32,
}

/// The trex of every track in a moov box (`moov` is the whole box, header included).
pub fn track_defaults(moov: &[u8]) -> Result<Vec<TrackDefaults>, BoxError> {
    let head = header(moov, 0)?;
    let Some(mvex) = child(moov, head.len, moov.len(), b"mvex")? else {
        return Ok(Vec::new());
    };
    children(moov, mvex.payload, mvex.end)?
        .into_iter()
        .filter(|b| &b.kind == b"trex")
        .map(|trex| {
            let mut fields = Fields::new(moov, trex);
            fields.skip(4)?;
            let track_id = fields.u32()?;
            fields.skip(4)?;
            Ok(TrackDefaults {
                track_id,
                duration: fields.u32()?,
                size: fields.u32()?,
            })
        })
        .collect()
}

/// What a movie fragment (moof) says about its samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovieFragment {
    /// The mfhd sequence number; `None` when the moof has no mfhd.
    pub sequence: Option<u32>,
    pub tracks: Vec<TrackFragment>,
}

/// One traf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFragment {
    pub track_id: u32,
    /// The tfdt's baseMediaDecodeTime; `None` when the traf has no tfdt.
    pub decode_time: Option<u64>,
    pub samples: u64,
    /// The sum of the sample durations; `None` when a duration comes from nowhere.
    pub duration: Option<u64>,
    /// Each trun's sample data: its start relative to the moof's first byte (`None`: right after
    /// the previous trun's data, or at the mdat's payload for the first) and its length. Empty
    /// when the tfhd gives an explicit base data offset, which makes them file positions.
    pub data: Vec<(Option<i64>, u64)>,
}

const TFHD_BASE_DATA_OFFSET: u32 = 0x01;
const TFHD_SAMPLE_DESCRIPTION: u32 = 0x02;
const TFHD_DURATION: u32 = 0x08;
const TFHD_SIZE: u32 = 0x10;
const TFHD_FLAGS: u32 = 0x20;
const TRUN_DATA_OFFSET: u32 = 0x01;
const TRUN_FIRST_FLAGS: u32 = 0x04;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_COMPOSITION: u32 = 0x800;

/// Reads a moof box (`moof` is the whole box, header included); `defaults` are the tracks' trex.
pub fn movie_fragment(moof: &[u8], defaults: &[TrackDefaults]) -> Result<MovieFragment, BoxError> {
    let head = header(moof, 0)?;
    if &head.kind != b"moof" {
        return Err(BoxError::Missing("moof"));
    }
    let boxes = children(moof, head.len, moof.len())?;
    let sequence = match boxes.iter().find(|b| &b.kind == b"mfhd") {
        Some(mfhd) => {
            let mut fields = Fields::new(moof, *mfhd);
            fields.skip(4)?;
            Some(fields.u32()?)
        }
        None => None,
    };
    let tracks = boxes
        .iter()
        .filter(|b| &b.kind == b"traf")
        .map(|traf| track_fragment(moof, traf, defaults))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MovieFragment { sequence, tracks })
}

impl MovieFragment {
    /// Checks that every trun's samples lie inside the mdat that follows the moof: `moof_len`
    /// bytes of moof, then an mdat header of `mdat_header` bytes and `mdat_payload` bytes.
    pub fn check_data(&self, moof_len: u64, mdat_header: u64, mdat_payload: u64) -> Result<(), String> {
        // In i128, where sums of a few 64-bit lengths and signed offsets cannot overflow.
        let first = i128::from(moof_len) + i128::from(mdat_header);
        let end = first + i128::from(mdat_payload);
        let mut next = first;
        for track in &self.tracks {
            for (offset, len) in &track.data {
                let start = offset.map_or(next, i128::from);
                let stop = start + i128::from(*len);
                if start < first || stop > end {
                    return Err(format!(
                        "track {}: samples at bytes {start}..{stop} of the fragment lie outside its mdat ({first}..{end})",
                        track.track_id
                    ));
                }
                next = stop;
            }
        }
        Ok(())
    }
}

fn track_fragment(data: &[u8], traf: &BoxRef, defaults: &[TrackDefaults]) -> Result<TrackFragment, BoxError> {
    let boxes = children(data, traf.payload, traf.end)?;
    let tfhd = boxes
        .iter()
        .find(|b| &b.kind == b"tfhd")
        .ok_or(BoxError::Missing("tfhd"))?;
    let mut fields = Fields::new(data, *tfhd);
    let flags = fields.u32()? & 0x00ff_ffff;
    let track_id = fields.u32()?;
    let explicit_base = flags & TFHD_BASE_DATA_OFFSET != 0;
    if explicit_base {
        fields.skip(8)?;
    }
    if flags & TFHD_SAMPLE_DESCRIPTION != 0 {
        fields.skip(4)?;
    }
    let trex = defaults.iter().find(|d| d.track_id == track_id);
    let default_duration = fields
        .optional(flags & TFHD_DURATION != 0)?
        .or(trex.map(|t| t.duration));
    let default_size = fields.optional(flags & TFHD_SIZE != 0)?.or(trex.map(|t| t.size));
    fields.optional(flags & TFHD_FLAGS != 0)?;
    let decode_time = match boxes.iter().find(|b| &b.kind == b"tfdt") {
        Some(tfdt) => {
            let mut fields = Fields::new(data, *tfdt);
            let version = fields.u32()? >> 24;
            Some(if version == 1 {
                fields.u64()?
            } else {
                u64::from(fields.u32()?)
            })
        }
        None => None,
    };
    let mut fragment = TrackFragment {
        track_id,
        decode_time,
        samples: 0,
        duration: Some(0),
        data: Vec::new(),
    };
    for trun in boxes.iter().filter(|b| &b.kind == b"trun") {
        let run = track_run(data, trun, default_duration, default_size)?;
        let overflow = || BoxError::Overflow(trun.start);
        fragment.samples = fragment
            .samples
            .checked_add(u64::from(run.samples))
            .ok_or_else(overflow)?;
        fragment.duration = match (fragment.duration, run.duration) {
            (Some(sum), Some(more)) => Some(sum.checked_add(more).ok_or_else(overflow)?),
            _ => None,
        };
        if !explicit_base {
            fragment.data.push((run.data_offset.map(i64::from), run.bytes));
        }
    }
    Ok(fragment)
}

struct TrackRun {
    samples: u32,
    duration: Option<u64>,
    bytes: u64,
    data_offset: Option<i32>,
}

fn track_run(
    data: &[u8],
    trun: &BoxRef,
    default_duration: Option<u32>,
    default_size: Option<u32>,
) -> Result<TrackRun, BoxError> {
    let mut fields = Fields::new(data, *trun);
    let flags = fields.u32()? & 0x00ff_ffff;
    let samples = fields.u32()?;
    // A signed field: the same 32 bits read as two's complement.
    let data_offset = fields.optional(flags & TRUN_DATA_OFFSET != 0)?.map(u32::cast_signed);
    fields.optional(flags & TRUN_FIRST_FLAGS != 0)?;
    let per_sample = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_COMPOSITION]
        .iter()
        .filter(|f| flags & **f != 0)
        .count();
    // The count is checked against the bytes there before any sample is read.
    // At most 2^32 samples of 4 fields of 4 bytes: the product fits in 64 bits.
    if u64::from(samples) * per_sample as u64 * 4 > fields.remaining() as u64 {
        return Err(BoxError::Truncated(trun.start));
    }
    if per_sample == 0 {
        // Every sample takes the defaults: no loop over a count that nothing bounds. Two u32s
        // multiply within 64 bits.
        let count = u64::from(samples);
        return Ok(TrackRun {
            samples,
            duration: default_duration.map(|d| u64::from(d) * count),
            bytes: u64::from(default_size.unwrap_or(0)) * count,
            data_offset,
        });
    }
    let (mut duration, mut bytes) = (Some(0u64), 0u64);
    let overflow = || BoxError::Overflow(trun.start);
    for _ in 0..samples {
        let sample_duration = fields.optional(flags & TRUN_DURATION != 0)?.or(default_duration);
        duration = match duration.zip(sample_duration) {
            Some((sum, more)) => Some(sum.checked_add(u64::from(more)).ok_or_else(overflow)?),
            None => None,
        };
        let size = fields.optional(flags & TRUN_SIZE != 0)?.or(default_size).unwrap_or(0);
        bytes = bytes.checked_add(u64::from(size)).ok_or_else(overflow)?;
        fields.optional(flags & TRUN_FLAGS != 0)?;
        fields.optional(flags & TRUN_COMPOSITION != 0)?;
    }
    Ok(TrackRun {
        samples,
        duration,
        bytes,
        data_offset,
    })
}

/// Big-endian fields read in order from a box's payload, each checked against the box's end.
pub(crate) struct Fields<'a> {
    data: &'a [u8],
    at: usize,
    end: usize,
    start: usize,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(data: &'a [u8], of: BoxRef) -> Fields<'a> {
        Fields {
            data,
            at: of.payload,
            end: of.end,
            start: of.start,
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], BoxError> {
        let stop = self
            .at
            .checked_add(n)
            .filter(|stop| *stop <= self.end)
            .ok_or(BoxError::Truncated(self.start))?;
        let bytes = &self.data[self.at..stop];
        self.at = stop;
        Ok(bytes)
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), BoxError> {
        self.take(n).map(|_| ())
    }

    pub(crate) fn u32(&mut self) -> Result<u32, BoxError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, BoxError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A u32 field that is there only when `present`.
    pub(crate) fn optional(&mut self, present: bool) -> Result<Option<u32>, BoxError> {
        if present { self.u32().map(Some) } else { Ok(None) }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxed;

    /// moof(mfhd, traf(tfhd, tfdt v1, trun v0 with data offset, first-sample flags, size, cts)) + mdat.
    fn fragment(tfdt: u64, cts: &[u32]) -> Vec<u8> {
        let mut trun = vec![0, 0, 0x0a, 0x05];
        trun.extend_from_slice(&(cts.len() as u32).to_be_bytes());
        trun.extend_from_slice(&100u32.to_be_bytes());
        trun.extend_from_slice(&0x0200_0000u32.to_be_bytes());
        for c in cts {
            trun.extend_from_slice(&10u32.to_be_bytes());
            trun.extend_from_slice(&c.to_be_bytes());
        }
        let mut tfdt_box = vec![1, 0, 0, 0];
        tfdt_box.extend_from_slice(&tfdt.to_be_bytes());
        let traf = [
            boxed(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]),
            boxed(b"tfdt", &tfdt_box),
            boxed(b"trun", &trun),
        ]
        .concat();
        let moof = [boxed(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 7]), boxed(b"traf", &traf)].concat();
        [boxed(b"moof", &moof), boxed(b"mdat", &[0; 30])].concat()
    }

    fn tfdt(data: &[u8]) -> u64 {
        let at = data.windows(4).position(|w| w == b"tfdt").unwrap() + 8;
        u64::from_be_bytes(data[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn an_edit_list_goes_after_the_track_header_and_grows_its_parents() {
        let trak = [boxed(b"tkhd", &[0; 84]), boxed(b"mdia", &[0; 12])].concat();
        let moov = [boxed(b"mvhd", &[0; 100]), boxed(b"trak", &trak)].concat();
        let init = [boxed(b"ftyp", b"iso6\0\0\0\0"), boxed(b"moov", &moov)].concat();
        let edited = with_edit_list(&init, 1024).unwrap();
        let edts = boxed(
            b"edts",
            &boxed(b"elst", &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 4, 0, 0, 1, 0, 0]),
        );
        let trak = [boxed(b"tkhd", &[0; 84]), edts, boxed(b"mdia", &[0; 12])].concat();
        let moov = [boxed(b"mvhd", &[0; 100]), boxed(b"trak", &trak)].concat();
        assert_eq!(
            edited,
            [boxed(b"ftyp", b"iso6\0\0\0\0"), boxed(b"moov", &moov)].concat()
        );
        assert_eq!(with_edit_list(&init, 1 << 31), Err(BoxError::EditOverflow(1 << 31)));
        assert_eq!(with_edit_list(&init[..16], 0), Err(BoxError::Missing("moov")));
        assert_eq!(with_edit_list(&init[..20], 0), Err(BoxError::Truncated(16)));
    }

    #[test]
    fn the_track_matrix_is_set_in_place() {
        let tkhd = boxed(b"tkhd", &[0; 84]);
        let moov = boxed(b"moov", &boxed(b"trak", &[tkhd, boxed(b"mdia", &[])].concat()));
        let mut init = [boxed(b"ftyp", b"iso6\0\0\0\0"), moov].concat();
        let before = init.clone();
        let rotated = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30];
        set_track_matrix(&mut init, &rotated).unwrap();
        // ftyp(16) moov(8) trak(8) tkhd header(8), then 40 bytes before the matrix.
        let matrix: Vec<i32> = init[80..116]
            .chunks(4)
            .map(|b| i32::from_be_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(matrix, rotated);
        assert_eq!(
            (init.len(), &init[..80], &init[116..]),
            (before.len(), &before[..80], &before[116..])
        );
        let mut short = [
            boxed(b"ftyp", b"iso6\0\0\0\0"),
            boxed(b"moov", &boxed(b"trak", &boxed(b"tkhd", &[0; 60]))),
        ]
        .concat();
        assert_eq!(set_track_matrix(&mut short, &rotated), Err(BoxError::Truncated(32)));
    }

    #[test]
    fn sets_the_decode_time_in_place() {
        let mut data = fragment(0, &[0, 2560, 1536, -512i32 as u32]);
        let before = data.clone();
        set_decode_time(&mut data, 126_000).unwrap();
        assert_eq!(data.len(), before.len());
        assert_eq!(tfdt(&data), 126_000);
        let changed: Vec<usize> = (0..data.len()).filter(|&i| data[i] != before[i]).collect();
        // moof(8) mfhd(16) traf(8) tfhd(16) tfdt header(8) version+flags(4): the value is bytes 60..68.
        assert!(
            changed.iter().all(|i| (60..68).contains(i)),
            "only the tfdt value changes: {changed:?}"
        );
    }

    #[test]
    fn moves_the_sequence_number_on_in_place() {
        let mut data = fragment(0, &[0, 512]);
        let before = data.clone();
        offset_sequence_number(&mut data, 12).unwrap();
        // moof(8) mfhd header(8) version+flags(4): the number is bytes 20..24, 7 in `fragment`.
        assert_eq!(u32::from_be_bytes(data[20..24].try_into().unwrap()), 19);
        assert_eq!((&data[..20], &data[24..]), (&before[..20], &before[24..]));
        assert_eq!(offset_sequence_number(&mut data, u32::MAX), Err(BoxError::Overflow(8)));
        let mut no_moof = boxed(b"mdat", &[0; 8]);
        assert_eq!(offset_sequence_number(&mut no_moof, 1), Err(BoxError::Missing("moof")));
    }

    #[test]
    fn reads_a_movie_fragment() {
        let data = fragment(126_000, &[0, 2560, 1536, 512]);
        let moof_len = children(&data, 0, data.len()).unwrap()[0].end;
        let defaults = [TrackDefaults {
            track_id: 1,
            duration: 512,
            size: 0,
        }];
        let moof = movie_fragment(&data[..moof_len], &defaults).unwrap();
        assert_eq!(moof.sequence, Some(7));
        assert_eq!(
            moof.tracks,
            [TrackFragment {
                track_id: 1,
                decode_time: Some(126_000),
                samples: 4,
                duration: Some(2048),
                data: vec![(Some(100), 40)],
            }]
        );
        assert_eq!(movie_fragment(&data[..moof_len], &[]).unwrap().tracks[0].duration, None);
        // A trun of 2^32 − 1 samples that all take the defaults is counted, not walked.
        let mut trun = vec![0, 0, 0, 0];
        trun.extend_from_slice(&u32::MAX.to_be_bytes());
        let traf = [
            boxed(b"tfhd", &[0, 0, 0, 0x18, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3]),
            boxed(b"trun", &trun),
        ]
        .concat();
        let huge = movie_fragment(&boxed(b"moof", &boxed(b"traf", &traf)), &[]).unwrap();
        assert_eq!(huge.tracks[0].duration, Some(2 * u64::from(u32::MAX)));
        assert_eq!(huge.tracks[0].data, [(None, 3 * u64::from(u32::MAX))]);
        // The trun's 40 bytes at offset 100 fit an mdat whose payload starts at 100 only after a
        // 92-byte moof and with 40 bytes of payload; this 124-byte moof points inside itself.
        assert!(moof.check_data(moof_len as u64, 8, 40).is_err());
        assert!(moof.check_data(92, 8, 40).is_ok());
        assert!(moof.check_data(92, 8, 39).is_err());
        assert!(moof.check_data(96, 8, 40).is_err());
    }

    #[test]
    fn durations_that_add_up_past_64_bits_are_an_error() {
        // Two truns of 2^32 − 1 samples of 2^32 − 1 ticks each: each fits in 64 bits, not both.
        let mut trun = vec![0, 0, 0, 0];
        trun.extend_from_slice(&u32::MAX.to_be_bytes());
        let tfhd = boxed(b"tfhd", &[0, 0, 0, 0x08, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        let traf = [tfhd, boxed(b"trun", &trun), boxed(b"trun", &trun)].concat();
        let moof = boxed(b"moof", &boxed(b"traf", &traf));
        // moof (8), traf (8), tfhd (20), the first trun (16): the second, the one that overflows, at 52.
        assert_eq!(movie_fragment(&moof, &[]), Err(BoxError::Overflow(52)));
        // A data offset far past the moof, and lengths near 2^64, are outside the mdat, not wrapped into it.
        let far = MovieFragment {
            sequence: None,
            tracks: vec![TrackFragment {
                track_id: 1,
                decode_time: None,
                samples: 1,
                duration: None,
                data: vec![(None, u64::MAX)],
            }],
        };
        assert!(far.check_data(100, 8, 40).is_err());
    }

    #[test]
    fn version_0_tfdt_refuses_what_it_cannot_hold() {
        let mut tfdt_box = vec![0, 0, 0, 0];
        tfdt_box.extend_from_slice(&7u32.to_be_bytes());
        let traf = boxed(b"traf", &boxed(b"tfdt", &tfdt_box));
        let mut data = boxed(b"moof", &traf);
        set_decode_time(&mut data, 9).unwrap();
        assert_eq!(&data[data.len() - 4..], &9u32.to_be_bytes());
        assert_eq!(
            set_decode_time(&mut data, 1 << 33),
            Err(BoxError::TfdtOverflow(1 << 33))
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let whole = fragment(0, &[1024, 2560, 1536]);
        for len in 0..whole.len() {
            let mut cut = whole[..len].to_vec();
            let _ = set_decode_time(&mut cut, 1);
        }
        let defaults = [TrackDefaults {
            track_id: 1,
            duration: 512,
            size: 0,
        }];
        crate::fuzz_bytes(&whole, 20_000, |bytes| {
            let _ = set_decode_time(&mut bytes.to_vec(), 1);
            let _ = movie_fragment(bytes, &defaults);
        });
        for len in 0..whole.len() {
            let _ = movie_fragment(&whole[..len], &defaults);
        }
        assert_eq!(
            set_decode_time(&mut whole[..20].to_vec(), 1),
            Err(BoxError::Truncated(0))
        );
        assert_eq!(
            set_decode_time(&mut boxed(b"mdat", &[0; 4]), 1),
            Err(BoxError::Missing("moof"))
        );
    }
}
