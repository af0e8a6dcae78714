//! Readers and writers of container structures that libav does not expose: FLV tags, AMF0 script
//! data, ISO-BMFF boxes, MPEG-TS program map tables, and the tagged websocket framing of
//! fragmented MP4; and, built on them, the box and tag walks and checks of `stream-pack inspect`.
//! Each reader bounds every length it reads by the bytes that are there, so hostile input is an
//! error, never a panic or a huge allocation; each has a fuzz target under `fuzz/`. A crate of
//! its own, with no libav, so that the fuzz targets and these tests build without FFmpeg's
//! libraries.

pub mod amf0;
pub mod bmff;
pub mod cenc;
pub mod flv;
pub mod framing;
pub mod inspect;
pub mod sample_aes;
pub mod subtitles;
pub mod ts_pmt;

/// Calls `f` on `iterations` mutations of `sample` (a few random bytes changed each time), for the
/// cheap "corrupt input is an error, not a panic" tests that run with the normal suite.
#[cfg(test)]
fn fuzz_bytes(sample: &[u8], iterations: usize, mut f: impl FnMut(&[u8])) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..iterations {
        let mut bad = sample.to_vec();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = (state % bad.len() as u64) as usize;
            bad[at] = (state >> 32) as u8;
        }
        f(&bad);
    }
}

/// A box of `kind` around `payload` (less than 4 GiB).
pub fn boxed(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}
