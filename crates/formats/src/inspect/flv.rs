//! The FLV walk: every tag listed, and the checks of PreviousTagSize, stream ids, each stream's
//! timestamps, and the onMetaData tags.

use std::io::Read;

use super::{Problems, Walk};
use crate::amf0;
use crate::flv::{self, Content, FlvReader, TagInfo};

/// A step in one stream's timestamps this many times its usual step (and at least a second) is a jump.
const JUMP_FACTOR: i64 = 10;

/// The onMetaData tags seen: the first's offset and declared duration, and how many.
#[derive(Default)]
struct Metadata {
    first: Option<(u64, f64)>,
    count: u64,
}

/// Walks the tags of an FLV.
pub(super) fn walk<R: Read>(reader: R, walk: &mut Walk) {
    let (_, mut reader) = match FlvReader::new(reader) {
        Ok(opened) => opened,
        Err(e) => {
            walk.problems.push(e.to_string());
            return;
        }
    };
    // Per stream (audio, video): the last timestamp and the last step.
    let mut last: [Option<(u32, i64)>; 2] = [None, None];
    let mut metadata = Metadata::default();
    let mut end_ms = 0u32;
    loop {
        let (info, payload) = match reader.next_tag() {
            Ok(Some(tag)) => tag,
            Ok(None) => break,
            Err(e) => {
                walk.problems.push(e.to_string());
                break;
            }
        };
        let content = flv::classify(info.kind, payload);
        let name = match info.kind {
            flv::AUDIO => "audio",
            flv::VIDEO => "video",
            _ => "script",
        };
        walk.entry(
            0,
            info.offset,
            flv::tag_len(info.size as usize),
            name.into(),
            tag_detail(info.timestamp, &content),
        );
        let problems = &mut walk.problems;
        check_header(&info, problems);
        if let Content::Script(Some(name)) = &content
            && name == flv::ON_METADATA
        {
            metadata.count += 1;
            metadata
                .first
                .get_or_insert_with(|| (info.offset, declared_duration(payload)));
        }
        let stream = match content {
            Content::AudioFrame => 0,
            Content::VideoFrame { .. } => 1,
            _ => continue,
        };
        end_ms = end_ms.max(info.timestamp);
        check_step(&mut last[stream], name, info.offset, info.timestamp, problems);
    }
    check_metadata(&metadata, &last, end_ms, &mut walk.problems);
}

/// Flags a PreviousTagSize that is not the tag's size, and a stream id other than 0.
fn check_header(info: &TagInfo, problems: &mut Problems) {
    if info.previous_size != info.size + 11 {
        problems.push(format!(
            "tag at byte {}: PreviousTagSize is {}, the tag is {} bytes",
            info.offset,
            info.previous_size,
            info.size + 11
        ));
    }
    if info.stream_id != 0 {
        problems.push(format!(
            "tag at byte {}: stream id {} (must be 0)",
            info.offset, info.stream_id
        ));
    }
}

/// The duration an onMetaData tag declares, NaN when it declares none.
fn declared_duration(payload: &[u8]) -> f64 {
    let duration = flv::metadata(payload)
        .and_then(std::result::Result::ok)
        .and_then(|m| match m.get("duration") {
            Some(amf0::Value::Number(d)) => Some(*d),
            _ => None,
        });
    duration.unwrap_or(f64::NAN)
}

fn tag_detail(timestamp: u32, content: &Content) -> String {
    let what = match content {
        Content::AudioConfig => "sequence header".to_owned(),
        Content::VideoConfig => "sequence header".to_owned(),
        Content::AudioFrame => String::new(),
        Content::VideoFrame {
            keyframe,
            composition_offset,
        } => {
            let key = if *keyframe { "keyframe" } else { "" };
            match composition_offset {
                Some(cts) if *cts != 0 => format!("{key} cts {cts}").trim().to_owned(),
                _ => key.to_owned(),
            }
        }
        Content::VideoEnd => "end of sequence".to_owned(),
        Content::VideoOther => "info".to_owned(),
        Content::Script(name) => name.clone().unwrap_or_default(),
        Content::Empty => "empty".to_owned(),
    };
    format!("{timestamp} ms {what}").trim_end().to_owned()
}

/// Flags a timestamp that goes back or jumps far ahead of the stream's usual step.
fn check_step(last: &mut Option<(u32, i64)>, name: &str, offset: u64, ts: u32, problems: &mut Problems) {
    let Some((previous, step)) = *last else {
        *last = Some((ts, 0));
        return;
    };
    let delta = i64::from(ts) - i64::from(previous);
    if delta < 0 {
        problems.push(format!(
            "tag at byte {offset}: {name} timestamp goes back from {previous} to {ts} ms"
        ));
    } else if step > 0 && delta > (JUMP_FACTOR * step).max(1000) {
        problems.push(format!(
            "tag at byte {offset}: {name} timestamps jump {delta} ms (from {previous} to {ts} ms)"
        ));
    }
    *last = Some((ts, if delta > 0 { delta } else { step }));
}

/// More than one onMetaData, or a duration far from the tags', is worth knowing.
fn check_metadata(metadata: &Metadata, last: &[Option<(u32, i64)>; 2], end_ms: u32, problems: &mut Problems) {
    if metadata.count > 1 {
        problems.push(format!(
            "{} onMetaData tags (players use the first): chunks joined without care?",
            metadata.count
        ));
    }
    let step = last.iter().flatten().map(|(_, step)| *step).max().unwrap_or(0);
    let end = f64::from(end_ms) / 1000.0 + step as f64 / 1000.0;
    if let Some((offset, declared)) = metadata.first
        && declared.is_finite()
        && (declared - end).abs() > 1.0
    {
        problems.push(format!(
            "onMetaData at byte {offset} says the duration is {declared:.3} s; the tags last {end:.3} s"
        ));
    }
}
