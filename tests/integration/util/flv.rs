//! An FLV tag walker of the tests' own (Adobe FLV spec v10, annex E), sharing nothing with
//! stream-pack's reader: the header, each tag's type, timestamp and first payload bytes, and
//! whether its PreviousTagSize is right.

use std::path::Path;

pub struct Tag {
    pub offset: usize,
    /// 8 audio, 9 video, 18 script.
    pub kind: u8,
    pub timestamp: u32,
    pub payload: Vec<u8>,
    /// The PreviousTagSize after the tag equals 11 + the payload's size.
    pub previous_size_ok: bool,
}

impl Tag {
    /// An AVC sequence header or an AAC AudioSpecificConfig.
    pub fn is_config(&self) -> bool {
        match self.kind {
            9 => self.payload.get(1) == Some(&0) && self.payload[0] & 0x0f == 7,
            8 => self.payload.get(1) == Some(&0) && self.payload[0] >> 4 == 10,
            _ => false,
        }
    }

    pub fn is_video_keyframe(&self) -> bool {
        self.kind == 9 && self.payload[0] >> 4 == 1 && self.payload.get(1) == Some(&1)
    }

    pub fn is_metadata(&self) -> bool {
        self.kind == 18 && self.payload.get(3..13) == Some(b"onMetaData")
    }
}

pub struct Flv {
    pub bytes: Vec<u8>,
    pub tags: Vec<Tag>,
}

/// Reads a whole FLV file; panics if it is not one or does not end on a tag boundary.
pub fn read(path: &Path) -> Flv {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..3], b"FLV", "{}: FLV signature", path.display());
    let be = |at: usize, n: usize| bytes[at..at + n].iter().fold(0u32, |v, b| v << 8 | u32::from(*b));
    let mut at = be(5, 4) as usize + 4;
    let mut tags = Vec::new();
    while at < bytes.len() {
        let size = be(at + 1, 3) as usize;
        let end = at + 11 + size;
        assert!(
            end + 4 <= bytes.len(),
            "{}: tag at {at} runs past the end",
            path.display()
        );
        tags.push(Tag {
            offset: at,
            kind: bytes[at] & 0x1f,
            timestamp: be(at + 4, 3) | u32::from(bytes[at + 7]) << 24,
            payload: bytes[at + 11..end].to_vec(),
            previous_size_ok: be(end, 4) as usize == 11 + size,
        });
        at = end + 4;
    }
    Flv { bytes, tags }
}

impl Flv {
    /// The onMetaData payload and where the value of `name` starts in it, after its type
    /// `marker` (AMF0: a 16-bit key length, the key, a type marker, the value).
    fn metadata_value(&self, name: &str, marker: u8) -> (&[u8], usize) {
        let metadata = self.tags.iter().find(|t| t.is_metadata()).expect("an onMetaData tag");
        let key = [&(name.len() as u16).to_be_bytes()[..], name.as_bytes(), &[marker]].concat();
        let at = metadata
            .payload
            .windows(key.len())
            .position(|w| w == key)
            .unwrap_or_else(|| panic!("onMetaData has no {name} of type {marker}"));
        (&metadata.payload, at + key.len())
    }

    /// The numbers of the strict array (0x0a: a 32-bit count, then a 0x00 marker and a
    /// big-endian double per item) that is the value of `name` in the onMetaData tag.
    pub fn metadata_array(&self, name: &str) -> Vec<f64> {
        let (p, at) = self.metadata_value(name, 0x0a);
        let count = u32::from_be_bytes(p[at..at + 4].try_into().unwrap()) as usize;
        (0..count)
            .map(|i| {
                let item = at + 4 + i * 9;
                assert_eq!(p[item], 0, "{name}[{i}] is a number");
                f64::from_be_bytes(p[item + 1..item + 9].try_into().unwrap())
            })
            .collect()
    }

    /// The number (0x00: a big-endian double) that is the value of `name` in the onMetaData tag.
    pub fn metadata_number(&self, name: &str) -> f64 {
        let (p, at) = self.metadata_value(name, 0x00);
        f64::from_be_bytes(p[at..at + 8].try_into().unwrap())
    }
}
