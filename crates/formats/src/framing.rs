//! The tagged websocket framing of fragmented MP4 (seed 002, DESIGN.md §5), and the capture file
//! that stores its messages.
//!
//! A capture file holds each websocket message as a 4-byte big-endian length and the message.
//! A message's first byte is its tag: 250 carries an 8-byte header and then the init segment
//! (ftyp + moov); every other message has a 4-byte header. Per fragment: 249 begins it, 252
//! carries the mdat payload, one or more 251 carry pieces of the moof, 254 the mdat box header,
//! and 255 ends it. A fragment is written as moof + mdat header + mdat payload.
//!
//! Hand-written: the framing is this one server's. Every length is checked against a limit
//! before anything is allocated for it.

use std::io::{self, Read, Write};

use thiserror::Error;

use crate::bmff::{self, TrackDefaults};

/// The largest message accepted; a fragment of a few seconds of HD video is a few MiB.
pub const MAX_MESSAGE: u32 = 64 << 20;
/// The largest moof accepted, all its pieces together.
pub const MAX_MOOF: usize = 16 << 20;

pub const INIT: u8 = 250;
pub const BEGIN: u8 = 249;
pub const MOOF: u8 = 251;
pub const PAYLOAD: u8 = 252;
pub const MDAT_HEADER: u8 = 254;
pub const END: u8 = 255;

const INIT_HEADER: usize = 8;
const HEADER: usize = 4;

#[derive(Debug, Error)]
pub enum FramingError {
    #[error("the message at byte {at} declares {len} bytes, more than the limit of {MAX_MESSAGE}")]
    Limit { at: u64, len: u64 },
    #[error("the capture ends inside the message at byte {at}: it needs {needed} bytes, {available} are there")]
    Truncated { at: u64, needed: u64, available: u64 },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads the messages of a capture file one at a time into one reused buffer.
pub struct MessageReader<R> {
    inner: R,
    position: u64,
    message: Vec<u8>,
}

impl<R: Read> MessageReader<R> {
    pub fn new(inner: R) -> MessageReader<R> {
        MessageReader {
            inner,
            position: 0,
            message: Vec::new(),
        }
    }

    /// The next message and the byte offset of its length prefix; `None` at the end.
    pub fn next_message(&mut self) -> Result<Option<(u64, &[u8])>, FramingError> {
        let at = self.position;
        let mut prefix = Vec::with_capacity(4);
        (&mut self.inner).take(4).read_to_end(&mut prefix)?;
        match prefix.len() {
            0 => return Ok(None),
            4 => {}
            got => {
                return Err(FramingError::Truncated {
                    at,
                    needed: 4,
                    available: got as u64,
                });
            }
        }
        let len = u64::from(u32::from_be_bytes(prefix.try_into().expect("4 bytes")));
        if len > u64::from(MAX_MESSAGE) {
            return Err(FramingError::Limit { at, len });
        }
        self.message.clear();
        let got = (&mut self.inner).take(len).read_to_end(&mut self.message)? as u64;
        if got < len {
            return Err(FramingError::Truncated {
                at,
                needed: 4 + len,
                available: 4 + got,
            });
        }
        self.position += 4 + len;
        Ok(Some((at, &self.message)))
    }
}

/// Writes messages as a capture file stores them.
pub fn write_message(out: &mut impl Write, message: &[u8]) -> io::Result<()> {
    let len = u32::try_from(message.len())
        .ok()
        .filter(|len| *len <= MAX_MESSAGE)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "message over the limit"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(message)
}

#[derive(Debug, Error)]
pub enum AssembleError {
    /// A message that breaks the framing: its number, counting from 1, and why.
    #[error("message {number}: {reason}")]
    Message { number: u64, reason: String },
    #[error("writing the fragmented MP4: {0}")]
    Write(#[from] io::Error),
}

/// A fragment being assembled.
#[derive(Default)]
struct OpenFragment {
    /// The number of its 249 message.
    begun_at: u64,
    moof: Vec<u8>,
    mdat_header: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

impl OpenFragment {
    fn bytes(&self) -> usize {
        self.moof.len() + self.mdat_header.as_ref().map_or(0, Vec::len) + self.payload.as_ref().map_or(0, Vec::len)
    }
}

/// Turns tagged messages, in order, into a fragmented MP4 written to `out`.
pub struct Assembler<W> {
    out: W,
    messages: u64,
    init: Option<Vec<u8>>,
    defaults: Vec<TrackDefaults>,
    open: Option<OpenFragment>,
    fragments: u64,
    last_sequence: Option<u32>,
    sequence_gaps: u64,
    bytes: u64,
}

/// What the assembler saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assembled {
    pub messages: u64,
    pub fragments: u64,
    /// Bytes of fMP4 written: init segment and fragments.
    pub bytes: u64,
    /// mfhd sequence numbers that did not follow the one before by 1 (fragments lost upstream).
    pub sequence_gaps: u64,
    /// A fragment begun but never ended (cut off): its first message and the bytes dropped.
    pub incomplete: Option<(u64, usize)>,
}

impl<W: Write> Assembler<W> {
    pub fn new(out: W) -> Assembler<W> {
        Assembler {
            out,
            messages: 0,
            init: None,
            defaults: Vec::new(),
            open: None,
            fragments: 0,
            last_sequence: None,
            sequence_gaps: 0,
            bytes: 0,
        }
    }

    /// Takes the next message; writes the init segment or a fragment when one is complete.
    pub fn push(&mut self, message: &[u8]) -> Result<(), AssembleError> {
        self.messages += 1;
        let Some(&tag) = message.first() else {
            return Err(self.error("an empty message"));
        };
        if tag == INIT {
            return self.init(message);
        }
        if self.init.is_none() {
            return Err(self.error(&format!("tag {tag} before the init segment (tag {INIT})")));
        }
        let body = message
            .get(HEADER..)
            .ok_or_else(|| self.error(&format!("tag {tag}: shorter than its {HEADER}-byte header")))?;
        match tag {
            BEGIN => {
                if let Some(open) = &self.open {
                    let begun = open.begun_at;
                    return Err(self.error(&format!(
                        "a new fragment begins while the one begun at message {begun} has not ended"
                    )));
                }
                self.open = Some(OpenFragment {
                    begun_at: self.messages,
                    ..OpenFragment::default()
                });
                Ok(())
            }
            MOOF => {
                let open = self.open_fragment(tag)?;
                if open.moof.len() + body.len() > MAX_MOOF {
                    return Err(self.error(&format!("the moof grows past the limit of {MAX_MOOF} bytes")));
                }
                open.moof.extend_from_slice(body);
                Ok(())
            }
            PAYLOAD => self.set_once(tag, body, |open| &mut open.payload),
            MDAT_HEADER => self.set_once(tag, body, |open| &mut open.mdat_header),
            END => {
                let open = self
                    .open
                    .take()
                    .ok_or_else(|| self.error("an end (tag 255) with no fragment begun"))?;
                self.write_fragment(open)
            }
            other => Err(self.error(&format!("unknown tag {other}"))),
        }
    }

    /// What was assembled; a fragment still open is reported as incomplete, not written.
    pub fn finish(mut self) -> io::Result<(Assembled, W)> {
        self.out.flush()?;
        let incomplete = self.open.as_ref().map(|open| (open.begun_at, open.bytes()));
        let assembled = Assembled {
            messages: self.messages,
            fragments: self.fragments,
            bytes: self.bytes,
            sequence_gaps: self.sequence_gaps,
            incomplete,
        };
        Ok((assembled, self.out))
    }

    fn error(&self, reason: &str) -> AssembleError {
        AssembleError::Message {
            number: self.messages,
            reason: reason.to_owned(),
        }
    }

    fn open_fragment(&mut self, tag: u8) -> Result<&mut OpenFragment, AssembleError> {
        if self.open.is_none() {
            return Err(self.error(&format!("tag {tag} outside a fragment (no tag {BEGIN} before it)")));
        }
        Ok(self.open.as_mut().expect("checked"))
    }

    fn set_once(
        &mut self,
        tag: u8,
        body: &[u8],
        field: fn(&mut OpenFragment) -> &mut Option<Vec<u8>>,
    ) -> Result<(), AssembleError> {
        let slot = field(self.open_fragment(tag)?);
        if slot.is_some() {
            return Err(self.error(&format!("a second tag {tag} in one fragment")));
        }
        *slot = Some(body.to_vec());
        Ok(())
    }

    fn init(&mut self, message: &[u8]) -> Result<(), AssembleError> {
        let init = message
            .get(INIT_HEADER..)
            .ok_or_else(|| self.error(&format!("tag {INIT}: shorter than its {INIT_HEADER}-byte header")))?;
        if let Some(previous) = &self.init {
            // A server may repeat the init segment; a different one is a different stream.
            return if previous == init {
                Ok(())
            } else {
                Err(self.error("a second, different init segment: the stream changed mid-capture"))
            };
        }
        let boxes = bmff::children(init, 0, init.len()).map_err(|e| self.error(&format!("the init segment: {e}")))?;
        let moov = boxes
            .iter()
            .find(|b| &b.kind == b"moov")
            .ok_or_else(|| self.error("the init segment has no moov"))?;
        let moov = &init[moov.start..moov.end];
        if bmff::child(moov, 8, moov.len(), b"mvex").ok().flatten().is_none() {
            return Err(self.error("the init segment's moov has no mvex: it is not a fragmented MP4"));
        }
        self.defaults = bmff::track_defaults(moov).map_err(|e| self.error(&format!("the init segment: {e}")))?;
        self.write(init)?;
        self.init = Some(init.to_vec());
        Ok(())
    }

    fn write_fragment(&mut self, open: OpenFragment) -> Result<(), AssembleError> {
        let (Some(header), Some(payload)) = (&open.mdat_header, &open.payload) else {
            return Err(self.error(&format!(
                "the fragment begun at message {} ends without its mdat {}",
                open.begun_at,
                if open.mdat_header.is_none() {
                    "header (tag 254)"
                } else {
                    "payload (tag 252)"
                }
            )));
        };
        let moof = open.moof.as_slice();
        let what = |reason: String| format!("the fragment begun at message {}: {reason}", open.begun_at);
        let head = bmff::header(moof, 0).map_err(|e| self.error(&what(format!("its moof: {e}"))))?;
        if &head.kind != b"moof" || head.size != Some(moof.len() as u64) {
            return Err(self.error(&what(format!(
                "its moof pieces make {} bytes that are not one moof box",
                moof.len()
            ))));
        }
        let fragment =
            bmff::movie_fragment(moof, &self.defaults).map_err(|e| self.error(&what(format!("its moof: {e}"))))?;
        let mdat = bmff::header(header, 0).map_err(|e| self.error(&what(format!("its mdat header: {e}"))))?;
        let whole = (header.len() + payload.len()) as u64;
        if &mdat.kind != b"mdat" || mdat.len != header.len() || mdat.size != Some(whole) {
            return Err(self.error(&what(format!(
                "its mdat header does not announce the {} bytes of payload that came",
                payload.len()
            ))));
        }
        fragment
            .check_data(moof.len() as u64, header.len() as u64, payload.len() as u64)
            .map_err(|reason| self.error(&what(reason)))?;
        if let Some(sequence) = fragment.sequence {
            if self.last_sequence.is_some_and(|last| sequence != last.wrapping_add(1)) {
                self.sequence_gaps += 1;
            }
            self.last_sequence = Some(sequence);
        }
        self.write(moof)?;
        self.write(header)?;
        self.write(payload)?;
        self.fragments += 1;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), AssembleError> {
        self.out.write_all(bytes)?;
        self.bytes += bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxed;

    /// ftyp + moov(mvex(trex: track 1, 512 ticks per sample)).
    fn init() -> Vec<u8> {
        let trex = boxed(
            b"trex",
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        let moov = boxed(b"moov", &boxed(b"mvex", &trex));
        [boxed(b"ftyp", b"iso5\0\0\0\0iso6"), moov].concat()
    }

    /// moof(mfhd, traf(tfhd default-base-is-moof, tfdt, trun with data offset and two sizes))
    /// and its mdat's header and payload.
    fn fragment(sequence: u32) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let build = |offset: u32| {
            let mut trun = vec![0, 0, 2, 1, 0, 0, 0, 2];
            trun.extend_from_slice(&offset.to_be_bytes());
            trun.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 4]);
            let mut tfdt = vec![1, 0, 0, 0];
            tfdt.extend_from_slice(&(u64::from(sequence) * 1024).to_be_bytes());
            let traf = [
                boxed(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]),
                boxed(b"tfdt", &tfdt),
                boxed(b"trun", &trun),
            ]
            .concat();
            let mut mfhd = vec![0, 0, 0, 0];
            mfhd.extend_from_slice(&sequence.to_be_bytes());
            boxed(b"moof", &[boxed(b"mfhd", &mfhd), boxed(b"traf", &traf)].concat())
        };
        let moof = build(0);
        let moof = build(moof.len() as u32 + 8);
        let payload = vec![sequence as u8; 7];
        let header = boxed(b"mdat", &payload)[..8].to_vec();
        (moof, header, payload)
    }

    fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
        [vec![tag, 0, 0, 0], body.to_vec()].concat()
    }

    /// The messages of a capture in the server's order: init, then per fragment begin, payload,
    /// the moof in two pieces, mdat header, end.
    fn messages(fragments: u32) -> Vec<Vec<u8>> {
        let mut messages = vec![[vec![INIT, 0, 2, 0x86, 0xf1, 0x42, 0xc0, 0x1e], init()].concat()];
        for sequence in 1..=fragments {
            let (moof, header, payload) = fragment(sequence);
            let (a, b) = moof.split_at(10);
            messages.extend([
                tagged(BEGIN, &[]),
                tagged(PAYLOAD, &payload),
                tagged(MOOF, a),
                tagged(MOOF, b),
                tagged(MDAT_HEADER, &header),
                tagged(END, &[]),
            ]);
        }
        messages
    }

    fn assemble(messages: &[Vec<u8>]) -> Result<(Assembled, Vec<u8>), AssembleError> {
        let mut assembler = Assembler::new(Vec::new());
        for message in messages {
            assembler.push(message)?;
        }
        Ok(assembler.finish()?)
    }

    fn capture(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for message in messages {
            write_message(&mut bytes, message).unwrap();
        }
        bytes
    }

    #[test]
    fn reassembles_moof_mdat_header_payload_in_order() {
        let (assembled, out) = assemble(&messages(2)).unwrap();
        let mut expected = init();
        for sequence in 1..=2 {
            let (moof, header, payload) = fragment(sequence);
            expected.extend([moof, header, payload].concat());
        }
        assert_eq!(out, expected);
        assert_eq!(assembled.fragments, 2);
        assert_eq!(assembled.messages, 13);
        assert_eq!(assembled.incomplete, None);
        assert_eq!(assembled.sequence_gaps, 0);
    }

    #[test]
    fn a_cut_off_fragment_is_reported_not_written() {
        let all = messages(2);
        let (assembled, out) = assemble(&all[..all.len() - 2]).unwrap();
        assert_eq!(assembled.fragments, 1);
        // The mdat header and the end were cut off: the moof and the payload had come.
        let (moof, _, payload) = fragment(2);
        assert_eq!(assembled.incomplete, Some((8, moof.len() + payload.len())));
        assert_eq!(out.len() as u64, assembled.bytes);
    }

    fn refused(messages: &[Vec<u8>]) -> String {
        match assemble(messages) {
            Err(AssembleError::Message { number, reason }) => format!("{number}: {reason}"),
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn broken_framing_is_refused_naming_the_message() {
        let good = messages(1);
        assert!(refused(&good[1..]).starts_with("1: tag 249 before the init"));
        let mut unknown = good.clone();
        unknown[3][0] = 0x13;
        assert!(refused(&unknown).starts_with("4: unknown tag 19"));
        let mut short_payload = good.clone();
        short_payload[2].pop();
        assert!(refused(&short_payload).contains("mdat header does not announce"));
        let mut lost_piece = good.clone();
        lost_piece.remove(4);
        assert!(refused(&lost_piece).contains("not one moof box"));
        let mut twice = good.clone();
        twice.insert(2, good[2].clone());
        assert!(refused(&twice).starts_with("4: a second tag 252"));
        let mut changed_init = good.clone();
        changed_init.push(tagged(INIT, &[0; 20]));
        assert!(refused(&changed_init).contains("different init segment"));
    }

    #[test]
    fn capture_files_round_trip_and_truncation_is_reported() {
        let all = messages(2);
        let bytes = capture(&all);
        let mut reader = MessageReader::new(bytes.as_slice());
        let mut read = Vec::new();
        while let Some((_, message)) = reader.next_message().unwrap() {
            read.push(message.to_vec());
        }
        assert_eq!(read, all);
        let mut reader = MessageReader::new(&bytes[..bytes.len() - 1]);
        let result = std::iter::from_fn(|| reader.next_message().transpose().map(|r| r.map(|_| ()))).last();
        assert!(matches!(result, Some(Err(FramingError::Truncated { .. }))));
        let mut huge = MessageReader::new(&[0xff, 0xff, 0xff, 0xff, 0][..]);
        assert!(matches!(huge.next_message(), Err(FramingError::Limit { .. })));
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let bytes = capture(&messages(2));
        let run = |bytes: &[u8]| {
            let mut reader = MessageReader::new(bytes);
            let mut assembler = Assembler::new(Vec::new());
            while let Ok(Some((_, message))) = reader.next_message() {
                if assembler.push(message).is_err() {
                    break;
                }
            }
        };
        for len in 0..bytes.len() {
            run(&bytes[..len]);
        }
        crate::fuzz_bytes(&bytes, 20_000, run);
    }
}
