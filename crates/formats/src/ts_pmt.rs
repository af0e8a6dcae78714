//! The program map tables of a SAMPLE-AES transport stream as Apple's "MPEG-2 Stream Encryption
//! Format for HTTP Live Streaming" (§2.3) signals them: the encrypted stream's stream_type
//! (0xdb for H.264, 0xcf for ADTS AAC), a private_data_indicator_descriptor naming the format
//! ('zavc', 'aacd'), and for audio a registration_descriptor 'apad' carrying the
//! audio_setup_information a decoder needs before the first frame.
//!
//! libav's mpegts muxer writes clear stream types; `signal_sample_aes` rewrites each PMT section
//! in place (ISO/IEC 13818-1 §2.4.4.8), keeping the descriptors it had, with its CRC recomputed.

use crc::{CRC_32_MPEG_2, Crc};

const PACKET: usize = 188;
const SYNC: u8 = 0x47;
const PAT_PID: u16 = 0;
const PMT_TABLE_ID: u8 = 0x02;
const PRIVATE_DATA_INDICATOR: u8 = 0x0f;
const REGISTRATION: u8 = 0x05;
/// PMT bytes after section_length up to the program_info descriptors.
const PMT_FIXED: usize = 9;
const CRC_LEN: usize = 4;
const MPEG2_CRC: Crc<u32> = Crc::<u32>::new(&CRC_32_MPEG_2);

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PmtError {
    #[error("the transport stream is not whole 188-byte packets")]
    NotPackets,
    #[error("no program association table before the first program map table")]
    NoPat,
    #[error("a program map table section is cut short or spans packets")]
    Truncated,
    #[error("the signalled program map table would not fit in one packet")]
    TooLong,
    #[error("the AAC AudioSpecificConfig is missing or of an object type SAMPLE-AES cannot signal")]
    AudioConfig,
}

/// How one encrypted elementary stream is signalled: the clear stream_type it replaces, its
/// encrypted stream_type and the descriptors added to its ES_info.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleAesSignal {
    clear_type: u8,
    encrypted_type: u8,
    descriptors: Vec<u8>,
}

impl SampleAesSignal {
    /// H.264 (stream_type 0x1b) as 0xdb with 'zavc'.
    pub fn h264() -> SampleAesSignal {
        SampleAesSignal {
            clear_type: 0x1b,
            encrypted_type: 0xdb,
            descriptors: private_data_indicator(b"zavc"),
        }
    }

    /// ADTS AAC (stream_type 0x0f) as 0xcf with 'aacd' and the audio setup information built from
    /// the stream's AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
    pub fn aac(audio_specific_config: &[u8]) -> Result<SampleAesSignal, PmtError> {
        let audio_type: &[u8; 4] = match audio_specific_config.first().map(|b| b >> 3) {
            Some(2) => b"zaac",
            Some(5) => b"zach",
            Some(29) => b"zacp",
            _ => return Err(PmtError::AudioConfig),
        };
        let config_len = u8::try_from(audio_specific_config.len()).map_err(|_| PmtError::AudioConfig)?;
        // audio_setup_information: audio_type, priming (unknown: 0), version 1, setup data.
        let mut setup = audio_type.to_vec();
        setup.extend_from_slice(&[0, 0, 1, config_len]);
        setup.extend_from_slice(audio_specific_config);
        let registration_len = u8::try_from(4 + setup.len()).map_err(|_| PmtError::AudioConfig)?;
        let mut descriptors = private_data_indicator(b"aacd");
        descriptors.extend_from_slice(&[REGISTRATION, registration_len]);
        descriptors.extend_from_slice(b"apad");
        descriptors.extend_from_slice(&setup);
        Ok(SampleAesSignal {
            clear_type: 0x0f,
            encrypted_type: 0xcf,
            descriptors,
        })
    }
}

fn private_data_indicator(format: &[u8; 4]) -> Vec<u8> {
    [&[PRIVATE_DATA_INDICATOR, 4][..], format].concat()
}

/// Rewrites every PMT of `ts` so that its streams of the signal's clear type are signalled as
/// encrypted. Each PMT must fit in the packet that starts it, as libav writes them.
pub fn signal_sample_aes(ts: &mut [u8], signal: &SampleAesSignal) -> Result<(), PmtError> {
    if !ts.len().is_multiple_of(PACKET) || ts.chunks(PACKET).any(|p| p[0] != SYNC) {
        return Err(PmtError::NotPackets);
    }
    let mut pmt_pids: Vec<u16> = Vec::new();
    for packet in ts.chunks_mut(PACKET) {
        let pid = u16::from_be_bytes([packet[1], packet[2]]) & 0x1fff;
        let unit_start = packet[1] & 0x40 != 0;
        let Some(payload) = payload_start(packet) else {
            continue;
        };
        if !unit_start {
            continue;
        }
        if pid == PAT_PID {
            pmt_pids = pat_program_pids(&packet[payload..])?;
        } else if pmt_pids.contains(&pid) {
            rewrite_pmt(&mut packet[payload..], signal)?;
        } else if pmt_pids.is_empty() && is_pmt(&packet[payload..]) {
            return Err(PmtError::NoPat);
        }
    }
    Ok(())
}

/// Where a packet's payload starts, after any adaptation field; `None` without a payload.
fn payload_start(packet: &[u8]) -> Option<usize> {
    match (packet[3] >> 4) & 3 {
        1 => Some(4),
        3 => Some(5 + usize::from(packet[4])).filter(|&at| at < PACKET),
        _ => None,
    }
}

/// The section a payload with a pointer_field starts: from table_id to the end of the payload.
fn section_of(payload: &[u8]) -> Result<&[u8], PmtError> {
    let pointer = usize::from(*payload.first().ok_or(PmtError::Truncated)?);
    payload.get(1 + pointer..).ok_or(PmtError::Truncated)
}

fn section_length(section: &[u8]) -> Result<usize, PmtError> {
    let header = section.get(..3).ok_or(PmtError::Truncated)?;
    let total = 3 + usize::from(u16::from_be_bytes([header[1], header[2]]) & 0x0fff);
    if total > section.len() || total < 3 + PMT_FIXED + CRC_LEN {
        return Err(PmtError::Truncated);
    }
    Ok(total)
}

fn is_pmt(payload: &[u8]) -> bool {
    section_of(payload).is_ok_and(|s| s.first() == Some(&PMT_TABLE_ID))
}

/// The PMT PIDs a PAT names (program 0, the network PID, left out).
fn pat_program_pids(payload: &[u8]) -> Result<Vec<u16>, PmtError> {
    let section = section_of(payload)?;
    let end = section_length(section)? - CRC_LEN;
    Ok(section[8..end]
        .chunks_exact(4)
        .filter(|entry| entry[..2] != [0, 0])
        .map(|entry| u16::from_be_bytes([entry[2], entry[3]]) & 0x1fff)
        .collect())
}

/// Rewrites the PMT section that starts in `payload` (pointer_field first), padding the rest of
/// the packet with 0xff stuffing.
fn rewrite_pmt(payload: &mut [u8], signal: &SampleAesSignal) -> Result<(), PmtError> {
    let pointer = usize::from(payload[0]);
    let section = signalled_section(section_of(payload)?, signal)?;
    let room = payload.len() - 1 - pointer;
    if section.len() > room {
        return Err(PmtError::TooLong);
    }
    let body = &mut payload[1 + pointer..];
    body[..section.len()].copy_from_slice(&section);
    body[section.len()..].fill(0xff);
    Ok(())
}

/// A PMT section (table_id to CRC) with the signal applied to its elementary streams.
fn signalled_section(section: &[u8], signal: &SampleAesSignal) -> Result<Vec<u8>, PmtError> {
    let end = section_length(section)? - CRC_LEN;
    let info_len = usize::from(u16::from_be_bytes([section[10], section[11]]) & 0x0fff);
    let streams_at = 3 + PMT_FIXED + info_len;
    if streams_at > end {
        return Err(PmtError::Truncated);
    }
    let mut out = section[..streams_at].to_vec();
    let mut at = streams_at;
    while at < end {
        let entry = section
            .get(at..at + 5)
            .filter(|_| at + 5 <= end)
            .ok_or(PmtError::Truncated)?;
        let es_info_len = usize::from(u16::from_be_bytes([entry[3], entry[4]]) & 0x0fff);
        let descriptors = section
            .get(at + 5..at + 5 + es_info_len)
            .filter(|_| at + 5 + es_info_len <= end)
            .ok_or(PmtError::Truncated)?;
        let mut es_info = descriptors.to_vec();
        let mut stream_type = entry[0];
        if stream_type == signal.clear_type {
            stream_type = signal.encrypted_type;
            es_info.extend_from_slice(&signal.descriptors);
        }
        let es_info_len = u16::try_from(es_info.len())
            .ok()
            .filter(|&n| n < 0x1000)
            .ok_or(PmtError::TooLong)?;
        out.push(stream_type);
        out.extend_from_slice(&entry[1..3]);
        out.extend_from_slice(&(0xf000 | es_info_len).to_be_bytes());
        out.extend_from_slice(&es_info);
        at += 5 + descriptors.len();
    }
    let length = u16::try_from(out.len() - 3 + CRC_LEN)
        .ok()
        .filter(|&n| n < 0x400)
        .ok_or(PmtError::TooLong)?;
    let flags = u16::from_be_bytes([out[1], out[2]]) & 0xf000;
    out[1..3].copy_from_slice(&(flags | length).to_be_bytes());
    let crc = MPEG2_CRC.checksum(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section of `table_id` with `body` after section_length, and its CRC.
    fn section(table_id: u8, body: &[u8]) -> Vec<u8> {
        let length = (body.len() + CRC_LEN) as u16;
        let mut out = vec![table_id];
        out.extend_from_slice(&(0xb000 | length).to_be_bytes());
        out.extend_from_slice(body);
        let crc = MPEG2_CRC.checksum(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    fn packet(pid: u16, section: &[u8]) -> Vec<u8> {
        let mut out = vec![SYNC, 0x40 | (pid >> 8) as u8, pid as u8, 0x10, 0];
        out.extend_from_slice(section);
        out.resize(PACKET, 0xff);
        out
    }

    /// A PAT naming PMT 0x1000 and a PMT of one stream of `stream_type` with a language descriptor.
    fn stream(stream_type: u8) -> Vec<u8> {
        let pat = section(0, &[0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0]);
        let language = [0x0a, 4, b'e', b'n', b'g', 0];
        let mut pmt_body = vec![0, 1, 0xc1, 0, 0, 0xe1, 0, 0xf0, 0, stream_type, 0xe1, 0, 0xf0, 6];
        pmt_body.extend_from_slice(&language);
        [packet(0, &pat), packet(0x1000, &section(2, &pmt_body))].concat()
    }

    #[test]
    fn h264_becomes_0xdb_with_zavc_and_keeps_its_descriptors() {
        let mut ts = stream(0x1b);
        signal_sample_aes(&mut ts, &SampleAesSignal::h264()).unwrap();
        let pmt = &ts[PACKET + 5..];
        let length = 3 + usize::from(u16::from_be_bytes([pmt[1], pmt[2]]) & 0xfff);
        assert_eq!(
            MPEG2_CRC.checksum(&pmt[..length]),
            0,
            "CRC over the section with its CRC is 0"
        );
        assert_eq!(pmt[12], 0xdb);
        assert_eq!(&pmt[15..17], &[0xf0, 12]);
        assert_eq!(&pmt[17..29], b"\x0a\x04eng\x00\x0f\x04zavc");
        assert!(pmt[length..].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn aac_lc_gets_aacd_and_its_audio_setup() {
        let config = [0x12, 0x10];
        let signal = SampleAesSignal::aac(&config).unwrap();
        assert_eq!(
            signal.descriptors,
            b"\x0f\x04aacd\x05\x0eapadzaac\x00\x00\x01\x02\x12\x10".to_vec()
        );
        let mut ts = stream(0x0f);
        signal_sample_aes(&mut ts, &signal).unwrap();
        assert_eq!(ts[PACKET + 5 + 12], 0xcf);
        assert_eq!(SampleAesSignal::aac(&[0x08, 0x10]), Err(PmtError::AudioConfig));
        assert_eq!(SampleAesSignal::aac(&[]), Err(PmtError::AudioConfig));
    }

    #[test]
    fn other_streams_and_damaged_tables_are_left_or_refused() {
        let mut ts = stream(0x24);
        let before = ts.clone();
        signal_sample_aes(&mut ts, &SampleAesSignal::h264()).unwrap();
        assert_eq!(ts[PACKET + 5 + 12], 0x24);
        assert_eq!(ts[..PACKET], before[..PACKET]);
        assert_eq!(
            signal_sample_aes(&mut ts[..100], &SampleAesSignal::h264()),
            Err(PmtError::NotPackets)
        );
        crate::fuzz_bytes(&stream(0x1b), 2000, |bad| {
            let _ = signal_sample_aes(&mut bad.to_vec(), &SampleAesSignal::h264());
        });
    }
}
