//! `concat-flv`: FLV chunks of one stream joined into one file, done right (the ustream-dl case).
//!
//! Every chunk starts with its own header, onMetaData and codec sequence headers, and its
//! timestamps often restart at 0. The join keeps one header; drops the later onMetaData and any
//! sequence header identical to the one in force (a changed one is kept); offsets the timestamps
//! of a chunk that would go backwards so the result is monotonic, and leaves the rest (and every
//! AVC composition offset) alone; recomputes every PreviousTagSize; and writes an onMetaData with
//! the real duration, file size and keyframe index.
//!
//! Two passes over the chunks, tag by tag, so memory stays at one tag: the first plans (sizes,
//! timestamps, keyframes) without writing, the second writes the onMetaData built from the plan,
//! then the same tags.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use stream_pack_formats::amf0::Value;
use stream_pack_formats::flv::{self, Content, FileHeader, FlvError, FlvReader, FlvWriter};

use crate::error::{Error, Result};
use crate::location::Location;
use crate::output::staging::{self, StagedFile};
use crate::tools::remux::{self, RemuxReport};

/// What a join did.
#[derive(Debug, Clone, Default)]
pub struct ConcatReport {
    pub output: PathBuf,
    pub chunks: usize,
    /// Chunks whose timestamps went back (restarted) and were offset.
    pub restarts: usize,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Seconds, from the first tag to the end of the last frame.
    pub duration: f64,
    pub dropped_metadata: usize,
    pub dropped_sequence_headers: usize,
    /// Sequence headers kept because they differ from the one before.
    pub changed_sequence_headers: usize,
    /// Things the user should know about the result, one sentence each.
    pub notes: Vec<String>,
    /// For an `.mp4` output, the remux of the joined FLV.
    pub remux: Option<RemuxReport>,
}

/// Joins `chunks`, in order, into `output`: an `.flv`, or an `.mp4` remuxed from the joined FLV
/// without re-encoding. An existing `output` is refused unless `replace`.
pub fn concat_flv(chunks: &[PathBuf], output: &Path, replace: bool) -> Result<ConcatReport> {
    let to_mp4 = match output.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase) {
        Some(e) if e == "flv" => false,
        Some(e) if e == "mp4" => true,
        _ => {
            return Err(Error::Usage(format!(
                "-o {}: the output must end in .flv or .mp4",
                output.display()
            )));
        }
    };
    if chunks.is_empty() {
        return Err(Error::Usage("concat-flv: no chunks to join".into()));
    }
    staging::refuse_overlap(output, chunks.iter().map(|chunk| ("the chunk", chunk.as_path())))?;
    let staged = StagedFile::new(output, replace)?;
    let mut report = if to_mp4 {
        // The joined FLV goes beside the output under a hidden name, removed when done.
        let joined = staging::scratch_file(output, ".flv")?;
        let mut report = join(chunks, &joined)?;
        let remuxed = remux::remux_into(&Location::File(joined.to_path_buf()), staged.path())?;
        if report.changed_sequence_headers > 0 {
            report.notes.push(
                "the codec configuration changes mid-stream; MP4 keeps only the first one, so frames after \
                 the change may not decode: use an .flv output to keep every configuration"
                    .into(),
            );
        }
        report.remux = Some(remuxed);
        report
    } else {
        join(chunks, staged.path())?
    };
    report.output = staged.put_in_place()?;
    Ok(report)
}

/// Joins `chunks` into the FLV file at `path`.
fn join(chunks: &[PathBuf], path: &Path) -> Result<ConcatReport> {
    let mut plan = Plan::default();
    let planned = Joiner::new(chunks.len()).run(chunks, &mut plan)?;
    let file = File::create(path).map_err(Error::io(path))?;
    let mut writer = FlvWriter::new(BufWriter::new(file), plan.has_audio, plan.has_video).map_err(Error::io(path))?;
    let (metadata, note) = plan.metadata(writer.position());
    writer.write_tag(flv::SCRIPT, 0, &metadata).map_err(Error::io(path))?;
    let body_start = writer.position();
    let mut output = FileWriter { flv: writer, path };
    let written = Joiner::new(chunks.len()).run(chunks, &mut output)?;
    let end = output.flv.position();
    output.flv.into_inner().flush().map_err(Error::io(path))?;
    if end - body_start != plan.body_len || written.video_frames != planned.video_frames {
        return Err(Error::InputCorrupt {
            path: chunks[0].clone(),
            reason: "the chunks changed while they were being joined".into(),
        });
    }
    let mut report = planned;
    report.notes.extend(note);
    Ok(report)
}

/// One pass over the tags of the joined stream, in order: the plan, then the writing.
trait Pass {
    fn tag(&mut self, kind: u8, timestamp: u32, payload: &[u8], keyframe: bool) -> Result<()>;
    /// The first chunk's onMetaData properties, offered once.
    fn metadata(&mut self, _properties: Vec<(String, Value)>) {}
    /// The end of the last frame, in milliseconds, once every tag is in.
    fn end(&mut self, _end_ms: i64) {}
}

/// The first pass: sizes, keyframes and the end time, nothing written.
#[derive(Default)]
struct Plan {
    body_len: u64,
    /// Keyframes' times (ms) and byte offsets from the start of the body.
    keyframes: Vec<(u32, u64)>,
    has_audio: bool,
    has_video: bool,
    end_ms: i64,
    template: Option<Vec<(String, Value)>>,
}

/// A metadata tag must fit the 24-bit tag size: each keyframe takes two 9-byte numbers.
const MAX_INDEXED_KEYFRAMES: usize = 800_000;

/// onMetaData properties that describe one chunk and would be wrong for the joined file.
const STALE: [&str; 10] = [
    "duration",
    "filesize",
    "keyframes",
    "datasize",
    "videosize",
    "audiosize",
    "lasttimestamp",
    "lastkeyframetimestamp",
    "lastkeyframelocation",
    "hasKeyframes",
];

impl Plan {
    /// The onMetaData payload for a file whose first tag (this one) starts at `start`, and a note
    /// when the keyframe index had to be left out.
    fn metadata(&self, start: u64) -> (Vec<u8>, Option<String>) {
        let indexed = self.keyframes.len() <= MAX_INDEXED_KEYFRAMES;
        let note = (!indexed).then(|| {
            format!(
                "{} keyframes are more than an onMetaData tag can index; the keyframe index is left out",
                self.keyframes.len()
            )
        });
        // Numbers are 9 bytes whatever their value, so a draft with zeros has the final size.
        let draft = self.properties(0, 0, indexed);
        let body_start = start + flv::tag_len(flv::metadata_payload(draft).len());
        let properties = self.properties(body_start, body_start + self.body_len, indexed);
        (flv::metadata_payload(properties), note)
    }

    fn properties(&self, body_start: u64, file_size: u64, indexed: bool) -> Vec<(String, Value)> {
        let mut properties: Vec<(String, Value)> = self
            .template
            .iter()
            .flatten()
            .filter(|(key, _)| !STALE.contains(&key.as_str()))
            .cloned()
            .collect();
        properties.push(("duration".into(), Value::Number(self.end_ms as f64 / 1000.0)));
        properties.push(("filesize".into(), Value::Number(file_size as f64)));
        if self.has_video && indexed {
            let numbers = |values: Vec<f64>| Value::StrictArray(values.into_iter().map(Value::Number).collect());
            let times = self.keyframes.iter().map(|(t, _)| f64::from(*t) / 1000.0).collect();
            let positions = self.keyframes.iter().map(|(_, at)| (body_start + at) as f64).collect();
            properties.push(("hasKeyframes".into(), Value::Boolean(!self.keyframes.is_empty())));
            properties.push((
                "keyframes".into(),
                Value::Object(vec![
                    ("times".into(), numbers(times)),
                    ("filepositions".into(), numbers(positions)),
                ]),
            ));
        }
        properties
    }
}

impl Pass for Plan {
    fn tag(&mut self, kind: u8, timestamp: u32, payload: &[u8], keyframe: bool) -> Result<()> {
        if keyframe {
            self.keyframes.push((timestamp, self.body_len));
        }
        self.has_audio |= kind == flv::AUDIO;
        self.has_video |= kind == flv::VIDEO;
        self.body_len += flv::tag_len(payload.len());
        Ok(())
    }

    fn metadata(&mut self, properties: Vec<(String, Value)>) {
        self.template = Some(properties);
    }

    fn end(&mut self, end_ms: i64) {
        self.end_ms = end_ms;
    }
}

/// The second pass: the tags written to the joined file.
struct FileWriter<'a> {
    flv: FlvWriter<BufWriter<File>>,
    path: &'a Path,
}

impl Pass for FileWriter<'_> {
    fn tag(&mut self, kind: u8, timestamp: u32, payload: &[u8], _keyframe: bool) -> Result<()> {
        self.flv
            .write_tag(kind, timestamp, payload)
            .map_err(Error::io(self.path))
    }
}

const STREAMS: usize = 2;
const AUDIO: usize = 0;
const VIDEO: usize = 1;

/// One stream's timeline in the output, in milliseconds.
#[derive(Debug, Default, Clone, Copy)]
struct Track {
    first: Option<i64>,
    last: Option<i64>,
    frames: u64,
}

impl Track {
    /// How long a frame lasts: the mean step so far, which millisecond rounding does not skew
    /// the way a single step (21 or 22 ms for 48 kHz AAC) does.
    fn step(&self) -> f64 {
        match (self.first, self.last) {
            (Some(first), Some(last)) if self.frames > 1 && last > first => {
                (last - first) as f64 / (self.frames - 1) as f64
            }
            _ => 1.0,
        }
    }

    /// When the last frame ends.
    fn end(&self) -> Option<f64> {
        self.last.map(|last| last as f64 + self.step())
    }

    fn add(&mut self, ts: i64) {
        self.first.get_or_insert(ts);
        self.last = Some(self.last.map_or(ts, |last| last.max(ts)));
        self.frames += 1;
    }
}

/// The decisions of a join, made identically in both passes.
struct Joiner {
    chunk_count: usize,
    /// Added to every timestamp of the current chunk.
    offset: i64,
    tracks: [Track; STREAMS],
    /// The latest timestamp written, for tags that must not go before it.
    written: i64,
    /// The sequence header in force for audio and video.
    configs: [Option<Vec<u8>>; STREAMS],
    seen_metadata: bool,
    report: ConcatReport,
    bad_previous_sizes: u64,
    backwards: u64,
}

impl Joiner {
    fn new(chunk_count: usize) -> Joiner {
        Joiner {
            chunk_count,
            offset: 0,
            tracks: [Track::default(); STREAMS],
            written: 0,
            configs: [None, None],
            seen_metadata: false,
            report: ConcatReport::default(),
            bad_previous_sizes: 0,
            backwards: 0,
        }
    }

    fn run(mut self, chunks: &[PathBuf], pass: &mut dyn Pass) -> Result<ConcatReport> {
        for (number, path) in chunks.iter().enumerate() {
            self.chunk(number, path, pass)?;
        }
        self.report.chunks = chunks.len();
        if self.bad_previous_sizes > 0 {
            self.report.notes.push(format!(
                "{} PreviousTagSize values in the chunks were wrong; the output's are recomputed",
                self.bad_previous_sizes
            ));
        }
        if self.backwards > 0 {
            self.report.notes.push(format!(
                "{} tags inside the chunks go back in time relative to the tag before them; left as they are",
                self.backwards
            ));
        }
        let end = self.tracks.iter().filter_map(Track::end).fold(0.0, f64::max).round() as i64;
        self.report.duration = end as f64 / 1000.0;
        pass.end(end);
        Ok(self.report)
    }

    fn chunk(&mut self, number: usize, path: &Path, pass: &mut dyn Pass) -> Result<()> {
        let first = first_media_times(path)?;
        self.offset = self.chunk_offset(number, first);
        let (_, mut reader) = open_chunk(path)?;
        let last_chunk = number + 1 == self.chunk_count;
        while let Some((info, payload)) = reader.next_tag().map_err(|e| chunk_error(path, e))? {
            if info.previous_size != info.size + 11 {
                self.bad_previous_sizes += 1;
            }
            let ts = i64::from(info.timestamp) + self.offset;
            match flv::classify(info.kind, payload) {
                Content::Script(Some(name)) if name == flv::ON_METADATA => {
                    self.metadata(path, payload, pass);
                }
                Content::AudioConfig => self.config(AUDIO, ts, info.kind, payload, pass)?,
                Content::VideoConfig => self.config(VIDEO, ts, info.kind, payload, pass)?,
                // Libav ends every FLV with an end-of-sequence tag: only the last one stays.
                Content::VideoEnd if !last_chunk => {}
                Content::AudioFrame => self.frame(AUDIO, ts, info.kind, payload, false, pass)?,
                Content::VideoFrame { keyframe, .. } => self.frame(VIDEO, ts, info.kind, payload, keyframe, pass)?,
                Content::Script(_) | Content::VideoEnd | Content::VideoOther | Content::Empty => {
                    let ts = ts.max(self.written);
                    self.emit(info.kind, ts, payload, false, pass)?;
                }
            }
        }
        Ok(())
    }

    /// The offset for a chunk whose streams' first media timestamps are `first`. The first
    /// chunk starts the output at 0. A later chunk keeps the offset in force if every stream
    /// goes on forward from where it was (the chunk continues the timeline, gaps and all);
    /// otherwise (it restarts) it is placed right after the previous chunk: its first video
    /// frame where the last one ended (video steps are the most regular), or failing video its
    /// audio likewise, and never at or before any stream's last frame.
    fn chunk_offset(&mut self, number: usize, first: [Option<i64>; STREAMS]) -> i64 {
        let earliest = first.iter().flatten().min().copied();
        if number == 0 || self.tracks.iter().all(|t| t.last.is_none()) {
            return earliest.map_or(0, |t| -t);
        }
        let Some(earliest) = earliest else {
            return self.offset;
        };
        let shared: Vec<(usize, i64, i64)> = (0..STREAMS)
            .filter_map(|s| Some((s, first[s]?, self.tracks[s].last?)))
            .collect();
        let latest_end = self.tracks.iter().filter_map(Track::end).fold(0.0, f64::max).round() as i64;
        let continues = if shared.is_empty() {
            earliest + self.offset >= latest_end
        } else {
            shared.iter().all(|&(_, first, last)| first + self.offset > last)
        };
        if continues {
            return self.offset;
        }
        self.report.restarts += 1;
        let Some(&(leader, leader_first, _)) = shared.iter().find(|(s, ..)| *s == VIDEO).or(shared.first()) else {
            return latest_end - earliest;
        };
        let end = self.tracks[leader].end().expect("a shared stream has frames");
        let placed = (end - leader_first as f64).round() as i64;
        shared
            .iter()
            .map(|&(_, first, last)| last + 1 - first)
            .fold(placed, i64::max)
    }

    fn metadata(&mut self, path: &Path, payload: &[u8], pass: &mut dyn Pass) {
        if self.seen_metadata {
            self.report.dropped_metadata += 1;
            return;
        }
        self.seen_metadata = true;
        match flv::metadata(payload) {
            Some(Ok(Value::EcmaArray(properties) | Value::Object(properties))) => pass.metadata(properties),
            Some(Err(e)) => self.report.notes.push(format!(
                "{}: its onMetaData could not be read ({e}); the output's is made anew",
                path.display()
            )),
            _ => {}
        }
    }

    /// A codec sequence header: dropped when it repeats the one in force.
    fn config(&mut self, stream: usize, ts: i64, kind: u8, payload: &[u8], pass: &mut dyn Pass) -> Result<()> {
        match &self.configs[stream] {
            Some(current) if current == payload => {
                self.report.dropped_sequence_headers += 1;
                return Ok(());
            }
            Some(_) => self.report.changed_sequence_headers += 1,
            None => {}
        }
        self.configs[stream] = Some(payload.to_vec());
        let ts = ts.max(self.written);
        self.emit(kind, ts, payload, false, pass)
    }

    fn frame(
        &mut self,
        stream: usize,
        ts: i64,
        kind: u8,
        payload: &[u8],
        keyframe: bool,
        pass: &mut dyn Pass,
    ) -> Result<()> {
        let ts = ts.max(0);
        let track = &mut self.tracks[stream];
        if track.last.is_some_and(|last| ts < last) {
            self.backwards += 1;
        }
        track.add(ts);
        if stream == VIDEO {
            self.report.video_frames += 1;
        } else {
            self.report.audio_frames += 1;
        }
        self.emit(kind, ts, payload, keyframe, pass)
    }

    fn emit(&mut self, kind: u8, ts: i64, payload: &[u8], keyframe: bool, pass: &mut dyn Pass) -> Result<()> {
        let timestamp = u32::try_from(ts.max(0)).map_err(|_| {
            Error::Usage(format!(
                "the joined timestamps pass {ts} ms, beyond what FLV can hold (49.7 days)"
            ))
        })?;
        self.written = self.written.max(ts);
        pass.tag(kind, timestamp, payload, keyframe)
    }
}

/// Opens a chunk after the checks that name a missing or empty file plainly.
fn open_chunk(path: &Path) -> Result<(FileHeader, FlvReader<BufReader<File>>)> {
    crate::input::watchdog::check_file(path)?;
    let file = File::open(path).map_err(Error::io(path))?;
    FlvReader::new(BufReader::new(file)).map_err(|e| chunk_error(path, e))
}

fn chunk_error(path: &Path, error: FlvError) -> Error {
    match error {
        FlvError::NotFlv => Error::InputUnreadable {
            path: path.to_owned(),
            reason: error.to_string(),
        },
        FlvError::Io(source) => Error::Io {
            path: path.to_owned(),
            source,
        },
        other => Error::InputCorrupt {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

/// How many tags to look through for each stream's first frame.
const SCAN_TAGS: usize = 1000;

/// The timestamps of the first audio and video frames of a chunk (sequence headers and
/// metadata, which writers often stamp 0 whatever the media's time, do not count).
fn first_media_times(path: &Path) -> Result<[Option<i64>; STREAMS]> {
    let (_, mut reader) = open_chunk(path)?;
    let mut first = [None; STREAMS];
    for _ in 0..SCAN_TAGS {
        let Some((info, payload)) = reader.next_tag().map_err(|e| chunk_error(path, e))? else {
            break;
        };
        let stream = match flv::classify(info.kind, payload) {
            Content::AudioFrame => AUDIO,
            Content::VideoFrame { .. } => VIDEO,
            _ => continue,
        };
        first[stream].get_or_insert(i64::from(info.timestamp));
        if first.iter().all(Option::is_some) {
            break;
        }
    }
    Ok(first)
}
