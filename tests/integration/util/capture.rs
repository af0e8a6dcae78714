//! Tagged websocket captures (seed 002, DESIGN.md §5) built from a fragmented MP4, its boxes
//! split by mp4-atom: message 250 holds an 8-byte header and ftyp + moov; each moof + mdat
//! becomes 249 (begin), 252 (the mdat payload), the moof in three 251 pieces, 254 (the mdat
//! header) and 255 (end), every one with a 4-byte header whose first byte is the tag.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use mp4_atom::FourCC;

use super::{bmff, media};

/// `main` as a fragmented MP4 with a fragment per keyframe (37 frames), made by libav.
pub fn fragmented_source() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-media");
        std::fs::create_dir_all(&dir).unwrap();
        let source = media("main");
        let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
        let path = dir.join(format!("{stem}-fragmented.mp4"));
        if path.exists() {
            return path;
        }
        // Made under a temporary name and renamed, so a concurrent test never sees half of it.
        let part = dir.join(format!(".{stem}-fragmented.{}.part", std::process::id()));
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-i"])
            .arg(&source)
            .args(["-map", "0", "-c", "copy", "-movflags"])
            .args(["+frag_keyframe+empty_moov+default_base_moof+skip_trailer", "-f", "mp4"])
            .arg(&part)
            .status()
            .expect("run ffmpeg");
        assert!(status.success(), "ffmpeg could not make the fragmented MP4");
        std::fs::rename(&part, &path).unwrap();
        path
    })
    .clone()
}

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
