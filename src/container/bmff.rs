//! ISO-BMFF fragment surgery. libav's mp4 muxer (FFmpeg 5.1) starts every track's decode timeline
//! at the track's first DTS, so tracks whose first DTS differ (B-frame delay, AAC priming) end up on
//! different timelines. `set_decode_time` rewrites a fragment's baseMediaDecodeTime (tfdt) in
//! place — same size, so no offset moves — to put every track on the source's one timeline.
//! (With the `cmaf` flag the muxer already gives each fragment's first sample, an IDR, a zero
//! composition offset, so the tfdt is the fragment's earliest presentation time.)

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
}

/// A box inside `data`: its type and the byte range of its payload (after the header).
struct BoxRef {
    kind: [u8; 4],
    start: usize,
    payload: usize,
    end: usize,
}

/// The boxes directly inside `data[from..to]`, every size checked against the bounds.
fn children(data: &[u8], from: usize, to: usize) -> Result<Vec<BoxRef>, BoxError> {
    let mut boxes = Vec::new();
    let mut at = from;
    while at < to {
        let header = data
            .get(at..at + 8)
            .filter(|_| at + 8 <= to)
            .ok_or(BoxError::Truncated(at))?;
        let size32 = u32::from_be_bytes(header[0..4].try_into().expect("4 bytes"));
        let kind: [u8; 4] = header[4..8].try_into().expect("4 bytes");
        let (size, payload) = match size32 {
            0 => (to - at, at + 8),
            1 => {
                let large = data
                    .get(at + 8..at + 16)
                    .filter(|_| at + 16 <= to)
                    .ok_or(BoxError::Truncated(at))?;
                let size = u64::from_be_bytes(large.try_into().expect("8 bytes"));
                (usize::try_from(size).map_err(|_| BoxError::BadSize(at))?, at + 16)
            }
            n => (n as usize, at + 8),
        };
        let end = at.checked_add(size).ok_or(BoxError::BadSize(at))?;
        if size < payload - at {
            return Err(BoxError::BadSize(at));
        }
        if end > to {
            return Err(BoxError::Truncated(at));
        }
        boxes.push(BoxRef {
            kind,
            start: at,
            payload,
            end,
        });
        at = end;
    }
    Ok(boxes)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

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
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..20_000 {
            let mut bad = whole.clone();
            for _ in 0..3 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state % bad.len() as u64) as usize;
                bad[at] = (state >> 32) as u8;
            }
            let _ = set_decode_time(&mut bad, 1);
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
