//! Apple's SAMPLE-AES for MPEG-2 transport streams ("MPEG-2 Stream Encryption Format for HTTP Live
//! Streaming"): AES-128-CBC over parts of each H.264 slice NAL unit and each AAC frame, the CBC
//! restarted from the key's IV for every NAL unit and frame.
//!
//! H.264: NAL units of type 1 and 5 keep their first 32 bytes clear, then one 16-byte block in
//! ten is encrypted while more than 16 bytes remain; the rest is clear. The pattern applies to
//! the NAL unit as the encoder wrote it, emulation prevention bytes included, and emulation
//! prevention is applied once more to the result, so that a decryptor that removes it gets the
//! encoder's unit back.
//! AAC: the frame's first 16 bytes (after any ADTS header) stay clear, then every whole block
//! is encrypted.

use crate::cenc::crypt::{block_cipher, cbc_pattern};

const BLOCK: usize = 16;
const NAL_LEADER: usize = 32;
const AAC_LEADER: usize = 16;
/// One block encrypted, nine skipped.
const SKIPPED_BLOCKS: usize = 9;

/// How the H.264 NAL units of a packet are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NalFraming {
    /// Start codes (Annex B), as in a transport stream.
    AnnexB,
    /// Big-endian lengths of this many bytes (ISO/IEC 14496-15), as in MP4.
    Length(usize),
}

/// Encrypts the slice NAL units of one H.264 access unit, keeping its framing.
pub fn encrypt_h264(data: &[u8], framing: NalFraming, key: &[u8; 16], iv: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 64);
    match framing {
        NalFraming::AnnexB => {
            let mut copied = 0;
            for (start, end) in annexb_nal_ranges(data) {
                out.extend_from_slice(&data[copied..start]);
                out.extend_from_slice(&encrypt_nal(&data[start..end], key, iv));
                copied = end;
            }
            out.extend_from_slice(&data[copied..]);
        }
        NalFraming::Length(size) => {
            let mut at = 0;
            while at + size <= data.len() {
                let len = data[at..at + size].iter().fold(0usize, |n, b| n << 8 | usize::from(*b));
                let end = (at + size + len).min(data.len());
                let nal = encrypt_nal(&data[at + size..end], key, iv);
                out.extend_from_slice(&nal.len().to_be_bytes()[usize::BITS as usize / 8 - size..]);
                out.extend_from_slice(&nal);
                at = end;
            }
            out.extend_from_slice(&data[at..]);
        }
    }
    out
}

/// Encrypts one AAC frame: raw, or with its ADTS header (which stays clear).
pub fn encrypt_aac(frame: &[u8], key: &[u8; 16], iv: &[u8; 16]) -> Vec<u8> {
    let mut out = frame.to_vec();
    let header = adts_header_len(frame);
    if out.len() > header + AAC_LEADER {
        cbc_pattern(&block_cipher(key), iv, &mut out[header + AAC_LEADER..], 1, 0);
    }
    out
}

fn adts_header_len(frame: &[u8]) -> usize {
    match frame {
        [0xff, second, ..] if second & 0xf0 == 0xf0 => {
            // protection_absent = 0 adds a CRC.
            if second & 1 == 0 { 9 } else { 7 }
        }
        _ => 0,
    }
}

/// One NAL unit (header byte included, emulation prevention bytes in place), encrypted if it
/// is a slice.
fn encrypt_nal(nal: &[u8], key: &[u8; 16], iv: &[u8; 16]) -> Vec<u8> {
    let is_slice = nal.first().is_some_and(|h| matches!(h & 0x1f, 1 | 5));
    if !is_slice {
        return nal.to_vec();
    }
    let mut raw = nal.to_vec();
    if raw.len() > NAL_LEADER + BLOCK {
        // A block is encrypted only while more than 16 bytes remain: leaving the last byte out of
        // the pattern keeps a block that ends the unit exactly clear.
        let last = raw.len() - 1;
        cbc_pattern(&block_cipher(key), iv, &mut raw[NAL_LEADER..last], 1, SKIPPED_BLOCKS);
    }
    escape(&raw)
}

/// The NAL units between start codes, each without the zero bytes that precede the next start code.
fn annexb_nal_ranges(data: &[u8]) -> Vec<(usize, usize)> {
    let starts: Vec<usize> = data
        .windows(3)
        .enumerate()
        .filter(|(_, w)| w == &[0, 0, 1])
        .map(|(i, _)| i)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &code)| {
            let start = code + 3;
            let mut end = starts.get(n + 1).copied().unwrap_or(data.len()).max(start);
            if n + 1 < starts.len() {
                while end > start && data[end - 1] == 0 {
                    end -= 1;
                }
            }
            (start, end)
        })
        .collect()
}

/// The NAL unit with emulation prevention bytes: 0x03 before any byte ≤ 3 that follows two zeros.
fn escape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 64);
    let mut zeros = 0;
    for &byte in raw {
        if zeros >= 2 && byte <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if byte == 0 { zeros + 1 } else { 0 };
        out.push(byte);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_never_leaves_a_start_code() {
        let raw = [0x65, 0, 0, 1, 0, 0, 0, 0, 0, 3, 7, 0, 0, 2];
        let escaped = escape(&raw);
        assert!(!escaped.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
        assert_eq!(escaped, [0x65, 0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 0, 3, 7, 0, 0, 3, 2]);
    }

    #[test]
    fn short_slices_and_other_units_stay_clear() {
        let key = [7; 16];
        let sps = [&[0, 0, 0, 1, 0x67][..], &[9; 80]].concat();
        assert_eq!(encrypt_h264(&sps, NalFraming::AnnexB, &key, &key), sps);
        let short = [&[0, 0, 1, 0x65][..], &[9; 47]].concat();
        assert_eq!(encrypt_h264(&short, NalFraming::AnnexB, &key, &key), short);
        let aac = [5u8; 31];
        assert_eq!(encrypt_aac(&aac, &key, &key), aac);
    }
}
