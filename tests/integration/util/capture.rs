//! Tagged websocket captures (seed 002, DESIGN.md §5) built from a fragmented MP4, its boxes
//! split by mp4-atom: message 250 holds an 8-byte header and ftyp + moov; each moof + mdat
//! becomes 249 (begin), 252 (the mdat payload), the moof in three 251 pieces, 254 (the mdat
//! header) and 255 (end), every one with a 4-byte header whose first byte is the tag.

use std::path::Path;

use mp4_atom::FourCC;

use super::bmff;

/// The messages of a capture of `fmp4`, in the server's order.
pub fn messages(fmp4: &Path) -> Vec<Vec<u8>> {
    let boxes = bmff::split(fmp4);
    let init: Vec<u8> = boxes
        .iter()
        .filter(|(kind, _)| [FourCC::new(b"ftyp"), FourCC::new(b"moov")].contains(kind))
        .flat_map(|(_, bytes)| bytes.clone())
        .collect();
    let mut messages = vec![[&[250, 0, 2, 0x86, 0xf1, 0x42, 0xc0, 0x1e][..], &init].concat()];
    let tagged = |tag: u8, body: &[u8]| [&[tag, 0, 0, 0][..], body].concat();
    for pair in boxes.windows(2) {
        let [(moof_kind, moof), (mdat_kind, mdat)] = pair else {
            unreachable!()
        };
        if *moof_kind != FourCC::new(b"moof") || *mdat_kind != FourCC::new(b"mdat") {
            continue;
        }
        let third = moof.len() / 3;
        messages.push(tagged(249, &[]));
        messages.push(tagged(252, &mdat[8..]));
        for piece in [&moof[..third], &moof[third..2 * third], &moof[2 * third..]] {
            messages.push(tagged(251, piece));
        }
        messages.push(tagged(254, &mdat[..8]));
        messages.push(tagged(255, &[]));
    }
    messages
}

/// A capture file: each message as a 4-byte big-endian length and the message.
pub fn file_bytes(messages: &[Vec<u8>]) -> Vec<u8> {
    messages
        .iter()
        .flat_map(|m| [&(m.len() as u32).to_be_bytes()[..], m].concat())
        .collect()
}
