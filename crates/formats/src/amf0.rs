//! AMF0, the value encoding of FLV script tags (onMetaData). Hand-written because the AMF0
//! crates on crates.io size their allocations from counts in the input (`with_capacity(count)`,
//! `vec![0; len]`) and recurse without a depth limit, so a hostile 16 MiB script tag could make
//! them allocate gigabytes or overflow the stack. Here every length is checked against the bytes
//! that remain before anything is taken, and nesting is bounded by [`MAX_DEPTH`].

use thiserror::Error;

/// Deepest nesting of objects and arrays accepted; real metadata nests two or three levels.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Amf0Error {
    #[error("AMF0 value at byte {0} runs past the end of the data")]
    Truncated(usize),
    #[error("AMF0 type marker {marker:#04x} at byte {at} is not supported")]
    Unsupported { marker: u8, at: usize },
    #[error("AMF0 values nest deeper than {MAX_DEPTH} levels at byte {0}")]
    TooDeep(usize),
}

/// An AMF0 value. Objects and ECMA arrays keep their properties in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    String(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    Date { millis: f64, time_zone: i16 },
}

impl Value {
    /// The properties of an object or ECMA array.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            _ => None,
        }
    }

    /// The value of property `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

const NUMBER: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const STRING: u8 = 0x02;
const OBJECT: u8 = 0x03;
const NULL: u8 = 0x05;
const UNDEFINED: u8 = 0x06;
const ECMA_ARRAY: u8 = 0x08;
const OBJECT_END: u8 = 0x09;
const STRICT_ARRAY: u8 = 0x0a;
const DATE: u8 = 0x0b;
const LONG_STRING: u8 = 0x0c;

/// Decodes every value in `data` (a script tag holds a name and a value).
pub fn decode_all(data: &[u8]) -> Result<Vec<Value>, Amf0Error> {
    let mut decoder = Decoder { data, at: 0 };
    let mut values = Vec::new();
    while decoder.at < data.len() {
        values.push(decoder.value(0)?);
    }
    Ok(values)
}

struct Decoder<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Amf0Error> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or(Amf0Error::Truncated(self.at))?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, Amf0Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Amf0Error> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, Amf0Error> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn f64(&mut self) -> Result<f64, Amf0Error> {
        Ok(f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A string of `len` bytes; invalid UTF-8 is replaced rather than refused, as players do.
    fn string(&mut self, len: usize) -> Result<String, Amf0Error> {
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn value(&mut self, depth: usize) -> Result<Value, Amf0Error> {
        let at = self.at;
        if depth > MAX_DEPTH {
            return Err(Amf0Error::TooDeep(at));
        }
        let marker = self.u8()?;
        Ok(match marker {
            NUMBER => Value::Number(self.f64()?),
            BOOLEAN => Value::Boolean(self.u8()? != 0),
            STRING => {
                let len = self.u16()?;
                Value::String(self.string(usize::from(len))?)
            }
            LONG_STRING => {
                // A length past usize (32-bit targets) is past the data too: truncated.
                let len = usize::try_from(self.u32()?).unwrap_or(usize::MAX);
                Value::String(self.string(len)?)
            }
            OBJECT => Value::Object(self.properties(depth)?),
            NULL => Value::Null,
            UNDEFINED => Value::Undefined,
            ECMA_ARRAY => {
                // The count is a hint that writers often get wrong; the end marker decides.
                self.u32()?;
                Value::EcmaArray(self.properties(depth)?)
            }
            STRICT_ARRAY => {
                let count = self.u32()?;
                // No capacity from the count: each element takes at least a byte, so the
                // loop ends (with an error) by the end of the data whatever the count says.
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            DATE => Value::Date {
                millis: self.f64()?,
                time_zone: i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")),
            },
            marker => return Err(Amf0Error::Unsupported { marker, at }),
        })
    }

    /// Key-value pairs up to the empty key and object-end marker.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>, Amf0Error> {
        let mut properties = Vec::new();
        loop {
            let len = self.u16()?;
            if len == 0 && self.data.get(self.at) == Some(&OBJECT_END) {
                self.at += 1;
                return Ok(properties);
            }
            let key = self.string(usize::from(len))?;
            properties.push((key, self.value(depth + 1)?));
        }
    }
}

/// Appends the encoding of `value` to `out`.
pub fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Number(n) => {
            out.push(NUMBER);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, u8::from(*b)]),
        Value::String(s) => match u16::try_from(s.len()) {
            Ok(len) => {
                out.push(STRING);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Err(_) => {
                out.push(LONG_STRING);
                out.extend_from_slice(&(s.len() as u32).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
        },
        Value::Object(properties) => {
            out.push(OBJECT);
            encode_properties(properties, out);
        }
        Value::Null => out.push(NULL),
        Value::Undefined => out.push(UNDEFINED),
        Value::EcmaArray(properties) => {
            out.push(ECMA_ARRAY);
            out.extend_from_slice(&(properties.len() as u32).to_be_bytes());
            encode_properties(properties, out);
        }
        Value::StrictArray(items) => {
            out.push(STRICT_ARRAY);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Value::Date { millis, time_zone } => {
            out.push(DATE);
            out.extend_from_slice(&millis.to_be_bytes());
            out.extend_from_slice(&time_zone.to_be_bytes());
        }
    }
}

fn encode_properties(properties: &[(String, Value)], out: &mut Vec<u8>) {
    for (key, value) in properties {
        // Keys come from decoding (at most u16::MAX bytes) or from stream-pack's own names.
        let key = &key.as_bytes()[..key.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(key.len() as u16).to_be_bytes());
        out.extend_from_slice(key);
        encode(value, out);
    }
    out.extend_from_slice(&[0, 0, OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata() -> Vec<Value> {
        vec![
            Value::String("onMetaData".into()),
            Value::EcmaArray(vec![
                ("duration".into(), Value::Number(2.08)),
                ("stereo".into(), Value::Boolean(true)),
                ("encoder".into(), Value::String("Lavf59".into())),
                (
                    "keyframes".into(),
                    Value::Object(vec![
                        ("times".into(), Value::StrictArray(vec![Value::Number(0.0)])),
                        ("filepositions".into(), Value::StrictArray(vec![Value::Number(13.0)])),
                    ]),
                ),
                ("none".into(), Value::Null),
                (
                    "when".into(),
                    Value::Date {
                        millis: 1e12,
                        time_zone: 0,
                    },
                ),
            ]),
        ]
    }

    fn encoded(values: &[Value]) -> Vec<u8> {
        let mut out = Vec::new();
        for value in values {
            encode(value, &mut out);
        }
        out
    }

    #[test]
    fn round_trips() {
        let values = metadata();
        assert_eq!(decode_all(&encoded(&values)).unwrap(), values);
        assert_eq!(values[1].get("duration"), Some(&Value::Number(2.08)));
    }

    #[test]
    fn decodes_bytes_written_by_libav() {
        // The start of the onMetaData tag of an FLV written by FFmpeg 5.1's flv muxer.
        let bytes = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x01\x00\x08duration\x00\x40\x00\xa3\xd7\x0a\x3d\x70\xa4\x00\x00\x09";
        let values = decode_all(bytes).unwrap();
        assert_eq!(values[0], Value::String("onMetaData".into()));
        assert_eq!(values[1].get("duration"), Some(&Value::Number(2.08)));
    }

    #[test]
    fn hostile_lengths_and_nesting_are_errors() {
        // A long string claiming 4 GiB, a strict array claiming 4 billion items.
        assert_eq!(decode_all(b"\x0c\xff\xff\xff\xff"), Err(Amf0Error::Truncated(5)));
        assert_eq!(decode_all(b"\x0a\xff\xff\xff\xff\x05"), Err(Amf0Error::Truncated(6)));
        let deep = [STRICT_ARRAY, 0, 0, 0, 1].repeat(1000);
        assert!(matches!(decode_all(&deep), Err(Amf0Error::TooDeep(_))));
        assert_eq!(
            decode_all(b"\x07\x00\x01"),
            Err(Amf0Error::Unsupported { marker: 7, at: 0 })
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let whole = encoded(&metadata());
        for len in 0..whole.len() {
            let _ = decode_all(&whole[..len]);
        }
        crate::fuzz_bytes(&whole, 20_000, |bytes| {
            let _ = decode_all(bytes);
        });
    }
}
