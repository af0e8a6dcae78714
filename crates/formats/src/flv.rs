//! FLV files read and written tag by tag (Adobe FLV spec v10, annex E, and Enhanced RTMP's
//! extended headers). A file is a 9-byte header, PreviousTagSize0, then tags: an 11-byte header
//! (type, 24-bit size, 24-bit timestamp + 8-bit extension, stream id), the payload, and a 4-byte
//! PreviousTagSize. Hand-written because no crate reads FLV as a stream: the crates.io demuxers
//! take the whole file in memory. Memory is one tag (at most 16 MiB, the 24-bit size's limit).

use std::io::{self, Read, Write};

use thiserror::Error;

use super::amf0;

pub const AUDIO: u8 = 8;
pub const VIDEO: u8 = 9;
pub const SCRIPT: u8 = 18;

const SIGNATURE: &[u8; 3] = b"FLV";
const HEADER_LEN: u32 = 9;
const TAG_HEADER_LEN: usize = 11;
/// The largest header a file may declare (its data offset); real files use 9.
const MAX_HEADER_LEN: u32 = 1 << 16;

#[derive(Debug, Error)]
pub enum FlvError {
    #[error("not an FLV file (it does not start with \"FLV\")")]
    NotFlv,
    #[error("the FLV header declares an impossible size of {0} bytes")]
    BadHeader(u32),
    #[error("truncated: {what} at byte {at} needs {needed} bytes, the file ends after {available}")]
    Truncated {
        what: &'static str,
        at: u64,
        needed: u64,
        available: u64,
    },
    #[error("the tag at byte {0} is encrypted (filter bit set), which stream-pack cannot read")]
    Encrypted(u64),
    #[error("the tag at byte {at} has type {kind}, which is none of audio (8), video (9) or script (18)")]
    UnknownType { at: u64, kind: u8 },
    #[error("another FLV file header at byte {0}: files joined without removing their headers")]
    SecondHeader(u64),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The file header's facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub version: u8,
    pub has_audio: bool,
    pub has_video: bool,
}

/// One tag as read: where it starts, its header fields and the PreviousTagSize after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagInfo {
    /// Byte offset of the tag header in the file.
    pub offset: u64,
    pub kind: u8,
    pub size: u32,
    /// Milliseconds, the extension byte included.
    pub timestamp: u32,
    pub stream_id: u32,
    /// The PreviousTagSize that follows the payload; correct when it equals `size + 11`.
    pub previous_size: u32,
}

/// Reads a file's tags one at a time into one reused buffer.
pub struct FlvReader<R> {
    inner: R,
    position: u64,
    payload: Vec<u8>,
}

impl<R: Read> FlvReader<R> {
    /// Reads the header and PreviousTagSize0.
    pub fn new(mut inner: R) -> Result<(FileHeader, FlvReader<R>), FlvError> {
        let mut header = [0u8; HEADER_LEN as usize];
        let got = read_full(&mut inner, &mut header)?;
        if got < 3 || &header[..3] != SIGNATURE {
            return Err(FlvError::NotFlv);
        }
        if got < header.len() {
            return Err(truncated("the file header", 0, HEADER_LEN.into(), got));
        }
        let data_offset = u32::from_be_bytes(header[5..9].try_into().expect("4 bytes"));
        if !(HEADER_LEN..=MAX_HEADER_LEN).contains(&data_offset) {
            return Err(FlvError::BadHeader(data_offset));
        }
        let extra = u64::from(data_offset - HEADER_LEN) + 4;
        let skipped = io::copy(&mut (&mut inner).take(extra), &mut io::sink())?;
        if skipped < extra {
            return Err(truncated(
                "the file header",
                0,
                u64::from(data_offset) + 4,
                9 + skipped as usize,
            ));
        }
        let file_header = FileHeader {
            version: header[3],
            has_audio: header[4] & 0x04 != 0,
            has_video: header[4] & 0x01 != 0,
        };
        let reader = FlvReader {
            inner,
            position: u64::from(data_offset) + 4,
            payload: Vec::new(),
        };
        Ok((file_header, reader))
    }

    /// The next tag and its payload, `None` at the end of the file.
    pub fn next_tag(&mut self) -> Result<Option<(TagInfo, &[u8])>, FlvError> {
        let offset = self.position;
        let mut header = [0u8; TAG_HEADER_LEN];
        let got = read_full(&mut self.inner, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < TAG_HEADER_LEN {
            return Err(truncated("the tag header", offset, TAG_HEADER_LEN as u64, got));
        }
        if header.starts_with(SIGNATURE) {
            return Err(FlvError::SecondHeader(offset));
        }
        if header[0] & 0x20 != 0 {
            return Err(FlvError::Encrypted(offset));
        }
        let kind = header[0] & 0x1f;
        if ![AUDIO, VIDEO, SCRIPT].contains(&kind) {
            return Err(FlvError::UnknownType { at: offset, kind });
        }
        let size = u24(&header[1..4]);
        let timestamp = u24(&header[4..7]) | (u32::from(header[7]) << 24);
        let stream_id = u24(&header[8..11]);
        // The 24-bit size bounds the buffer at 16 MiB, and it grows only as bytes arrive, so a
        // corrupt size in a short file costs no more than the file.
        let wanted = u64::from(size) + 4;
        self.payload.clear();
        let got = (&mut self.inner).take(wanted).read_to_end(&mut self.payload)?;
        if (got as u64) < wanted {
            let what = if got < size as usize {
                "the tag"
            } else {
                "the PreviousTagSize"
            };
            return Err(truncated(
                what,
                offset,
                TAG_HEADER_LEN as u64 + wanted,
                TAG_HEADER_LEN + got,
            ));
        }
        let previous_size = u32::from_be_bytes(self.payload[size as usize..].try_into().expect("4 bytes"));
        self.position += (TAG_HEADER_LEN + self.payload.len()) as u64;
        let info = TagInfo {
            offset,
            kind,
            size,
            timestamp,
            stream_id,
            previous_size,
        };
        Ok(Some((info, &self.payload[..size as usize])))
    }

    /// Bytes read so far: the offset of the next tag.
    pub fn position(&self) -> u64 {
        self.position
    }
}

fn truncated(what: &'static str, at: u64, needed: u64, got: usize) -> FlvError {
    FlvError::Truncated {
        what,
        at,
        needed,
        available: got as u64,
    }
}

fn u24(bytes: &[u8]) -> u32 {
    u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2])
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes an FLV file tag by tag, computing every PreviousTagSize.
pub struct FlvWriter<W> {
    inner: W,
    position: u64,
}

/// Bytes a tag with `payload_len` bytes of payload takes in a file, PreviousTagSize included.
pub fn tag_len(payload_len: usize) -> u64 {
    (TAG_HEADER_LEN + payload_len + 4) as u64
}

/// Bytes of the file header and PreviousTagSize0 that [`FlvWriter::new`] writes.
pub const FILE_HEADER_LEN: u64 = HEADER_LEN as u64 + 4;

impl<W: Write> FlvWriter<W> {
    pub fn new(mut inner: W, has_audio: bool, has_video: bool) -> io::Result<FlvWriter<W>> {
        let flags = if has_audio { 0x04 } else { 0 } | if has_video { 0x01 } else { 0 };
        inner.write_all(&[b'F', b'L', b'V', 1, flags, 0, 0, 0, HEADER_LEN as u8, 0, 0, 0, 0])?;
        Ok(FlvWriter {
            inner,
            position: FILE_HEADER_LEN,
        })
    }

    /// Writes one tag; a payload is at most 2^24 − 1 bytes, as any tag read was.
    pub fn write_tag(&mut self, kind: u8, timestamp: u32, payload: &[u8]) -> io::Result<()> {
        let size = u32::try_from(payload.len())
            .ok()
            .filter(|s| *s < 1 << 24)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an FLV tag holds at most 16 MiB"))?;
        let mut header = [0u8; TAG_HEADER_LEN];
        header[0] = kind;
        header[1..4].copy_from_slice(&size.to_be_bytes()[1..]);
        header[4..7].copy_from_slice(&timestamp.to_be_bytes()[1..]);
        header[7] = (timestamp >> 24) as u8;
        self.inner.write_all(&header)?;
        self.inner.write_all(payload)?;
        self.inner.write_all(&(size + TAG_HEADER_LEN as u32).to_be_bytes())?;
        self.position += tag_len(payload.len());
        Ok(())
    }

    /// Bytes written so far: the offset of the next tag.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

/// What a tag's payload holds, as far as joining and inspecting need to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A codec configuration: AVCDecoderConfigurationRecord, AudioSpecificConfig, or an
    /// Enhanced RTMP SequenceStart.
    AudioConfig,
    VideoConfig,
    AudioFrame,
    VideoFrame {
        keyframe: bool,
        /// The AVC/HEVC composition time offset in milliseconds, where the header has one.
        composition_offset: Option<i32>,
    },
    /// An AVC/HEVC end-of-sequence marker or an Enhanced RTMP SequenceEnd.
    VideoEnd,
    /// A video info/command frame or an Enhanced RTMP metadata packet: no picture.
    VideoOther,
    /// A script tag and the name it carries (`onMetaData`, `onCuePoint`…).
    Script(Option<String>),
    /// A payload too short to tell.
    Empty,
}

const AAC: u8 = 10;
const AUDIO_EX_HEADER: u8 = 9;
const AVC: u8 = 7;
const HEVC: u8 = 12;
const AV1: u8 = 13;

/// Classifies a tag from the first bytes of its payload.
pub fn classify(kind: u8, payload: &[u8]) -> Content {
    let Some(&first) = payload.first() else {
        return Content::Empty;
    };
    match kind {
        AUDIO => {
            let format = first >> 4;
            let config = match format {
                AAC => payload.get(1) == Some(&0),
                AUDIO_EX_HEADER => first & 0x0f == 0,
                _ => false,
            };
            if config {
                Content::AudioConfig
            } else {
                Content::AudioFrame
            }
        }
        VIDEO if first & 0x80 != 0 => enhanced_video(first),
        VIDEO => legacy_video(first, payload),
        _ => Content::Script(script_name(payload)),
    }
}

/// Enhanced RTMP: frame type in bits 4–6, packet type in the low nibble.
fn enhanced_video(first: u8) -> Content {
    let frame_type = (first >> 4) & 0x07;
    match first & 0x0f {
        0 | 5 => Content::VideoConfig,
        1 | 3 if frame_type != 5 => Content::VideoFrame {
            keyframe: frame_type == 1,
            composition_offset: None,
        },
        2 => Content::VideoEnd,
        _ => Content::VideoOther,
    }
}

fn legacy_video(first: u8, payload: &[u8]) -> Content {
    let frame_type = first >> 4;
    let codec = first & 0x0f;
    if frame_type == 5 {
        return Content::VideoOther;
    }
    let keyframe = frame_type == 1;
    if ![AVC, HEVC, AV1].contains(&codec) {
        return Content::VideoFrame {
            keyframe,
            composition_offset: None,
        };
    }
    match payload.get(1) {
        Some(0) => Content::VideoConfig,
        Some(2) => Content::VideoEnd,
        Some(_) => Content::VideoFrame {
            keyframe,
            // A signed 24-bit field: shifted to the top, read as two's complement, shifted back.
            composition_offset: payload.get(2..5).map(|b| (u24(b) << 8).cast_signed() >> 8),
        },
        None => Content::Empty,
    }
}

/// The name a script tag starts with, if it starts with a string.
pub fn script_name(payload: &[u8]) -> Option<String> {
    if payload.first() != Some(&0x02) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes(payload.get(1..3)?.try_into().ok()?));
    Some(String::from_utf8_lossy(payload.get(3..3 + len)?).into_owned())
}

/// The onMetaData script tag's properties, if `payload` is one that decodes.
pub fn metadata(payload: &[u8]) -> Option<Result<amf0::Value, amf0::Amf0Error>> {
    if script_name(payload).as_deref() != Some(ON_METADATA) {
        return None;
    }
    Some(amf0::decode_all(payload).map(|mut values| {
        values
            .drain(..)
            .nth(1)
            .filter(|v| v.properties().is_some())
            .unwrap_or(amf0::Value::EcmaArray(Vec::new()))
    }))
}

pub const ON_METADATA: &str = "onMetaData";

/// The payload of an onMetaData script tag holding `properties`.
pub fn metadata_payload(properties: Vec<(String, amf0::Value)>) -> Vec<u8> {
    let mut payload = Vec::new();
    amf0::encode(&amf0::Value::String(ON_METADATA.into()), &mut payload);
    amf0::encode(&amf0::Value::EcmaArray(properties), &mut payload);
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small file: metadata, AVC config, a keyframe with a composition offset, an AAC frame.
    fn sample() -> Vec<u8> {
        let mut writer = FlvWriter::new(Vec::new(), true, true).unwrap();
        let metadata = metadata_payload(vec![("duration".into(), amf0::Value::Number(1.5))]);
        writer.write_tag(SCRIPT, 0, &metadata).unwrap();
        writer.write_tag(VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 0x64]).unwrap();
        writer
            .write_tag(VIDEO, 0, &[0x17, 1, 0, 0, 80, 0, 0, 0, 1, 0x65])
            .unwrap();
        writer.write_tag(AUDIO, 0x0100_0023, &[0xaf, 1, 0x21, 0x10]).unwrap();
        writer.into_inner()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(TagInfo, Vec<u8>)>, FlvError> {
        let (_, mut reader) = FlvReader::new(bytes)?;
        let mut tags = Vec::new();
        while let Some((info, payload)) = reader.next_tag()? {
            tags.push((info, payload.to_vec()));
        }
        Ok(tags)
    }

    #[test]
    fn writes_and_reads_back() {
        let bytes = sample();
        let tags = read_all(&bytes).unwrap();
        assert_eq!(tags.len(), 4);
        assert!(tags.iter().all(|(info, _)| info.previous_size == info.size + 11));
        assert_eq!(tags[3].0.timestamp, 0x0100_0023, "the extension byte is the top 8 bits");
        assert_eq!(tags[1].0.offset, tags[0].0.offset + tag_len(tags[0].1.len()));
        let contents: Vec<Content> = tags.iter().map(|(i, p)| classify(i.kind, p)).collect();
        assert_eq!(
            contents,
            [
                Content::Script(Some(ON_METADATA.into())),
                Content::VideoConfig,
                Content::VideoFrame {
                    keyframe: true,
                    composition_offset: Some(80)
                },
                Content::AudioFrame,
            ]
        );
        let properties = metadata(&tags[0].1).unwrap().unwrap();
        assert_eq!(properties.get("duration"), Some(&amf0::Value::Number(1.5)));
    }

    #[test]
    fn negative_composition_offsets_keep_their_sign() {
        let content = classify(VIDEO, &[0x27, 1, 0xff, 0xff, 0xd8]);
        assert_eq!(
            content,
            Content::VideoFrame {
                keyframe: false,
                composition_offset: Some(-40)
            }
        );
    }

    #[test]
    fn not_flv_and_truncations_are_errors() {
        assert!(matches!(read_all(b"GIF89a..."), Err(FlvError::NotFlv)));
        assert!(matches!(read_all(b""), Err(FlvError::NotFlv)));
        let bytes = sample();
        let ends: Vec<usize> = std::iter::once(FILE_HEADER_LEN as usize)
            .chain(
                read_all(&bytes)
                    .unwrap()
                    .iter()
                    .map(|(i, p)| (i.offset + tag_len(p.len())) as usize),
            )
            .collect();
        for len in 3..bytes.len() {
            let result = read_all(&bytes[..len]);
            if ends.contains(&len) {
                assert!(result.is_ok(), "{len} bytes end a tag: {result:?}");
            } else {
                assert!(
                    matches!(result, Err(FlvError::Truncated { .. })),
                    "{len} bytes: {result:?}"
                );
            }
        }
    }

    #[test]
    fn every_corruption_is_an_error_not_a_panic() {
        crate::fuzz_bytes(&sample(), 20_000, |bytes| {
            if let Ok(tags) = read_all(bytes) {
                for (info, payload) in tags {
                    let _ = classify(info.kind, &payload);
                    let _ = metadata(&payload);
                }
            }
        });
    }
}
