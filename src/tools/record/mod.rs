//! `record`: a live source copied, without re-encoding, into files that survive a crash.
//!
//! Packets go into MPEG-TS beside the target (`show.mp4.part.ts`), flushed packet by packet, so a
//! kill leaves a playable file. When a file is done it is remuxed to the container the target's
//! extension names, in the background, and the part file is removed. A source that drops is
//! reopened with exponential backoff; timestamps of the new connection (and of a publisher that
//! restarted its clock on the same connection) are moved to continue right after the last packet,
//! starting at a keyframe, so the file plays across the gap.

pub mod schedule;
pub mod time;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ffmpeg::{Dictionary, Packet, Rational, Rescale, format, media};
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};
use crate::input::live::{LiveInput, LiveSource};
use crate::input::watchdog::InputOptions;
use crate::location::Location;
use crate::output::staging::StagedFile;
use crate::package::{codec_string, segment};
use crate::progress::{Cancel, Monitor};
use crate::tools::remux;
use time::wait_until;

/// What to record, when, and for how long.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub source: LiveSource,
    /// `.mp4`/`.mov` (index at the front), `.ts`, `.mkv` or `.flv`.
    pub output: PathBuf,
    /// When to start; `None`: now.
    pub start: Option<SystemTime>,
    /// How long to record, gaps included; `None`: until the source is gone.
    pub duration: Option<Duration>,
    /// A new file every this long, cut at a keyframe: `show-000.mp4`, `show-001.mp4`…
    pub split: Option<Duration>,
    /// For the first connection (all attempts together) and for each reconnection attempt.
    pub open_timeout: Duration,
    /// Silence after which the source counts as dropped.
    pub stall_timeout: Duration,
    /// Without `duration`: how long to keep reconnecting before finishing the file.
    pub reconnect_window: Duration,
    /// Replace existing outputs and part files.
    pub force: bool,
}

impl RecordOptions {
    pub fn new(source: LiveSource, output: impl Into<PathBuf>) -> RecordOptions {
        RecordOptions {
            source,
            output: output.into(),
            start: None,
            duration: None,
            split: None,
            open_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(10),
            reconnect_window: Duration::from_secs(30),
            force: false,
        }
    }
}

/// What a recording is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Waiting,
    Connecting,
    Recording,
    Reconnecting,
    Finishing,
}

/// One progress report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordProgress {
    pub phase: Phase,
    /// Seconds of media recorded.
    pub recorded: f64,
    /// Bytes written, all files together.
    pub bytes: u64,
    pub reconnects: u32,
}

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// `duration` passed.
    TimeUp,
    /// The source ended (end of file, end of a live playlist).
    SourceEnded,
    /// The source dropped and did not come back within the reconnect window.
    SourceGone,
    /// The cancel flag was set (Ctrl-C).
    Stopped,
}

/// What a recording wrote.
#[derive(Debug, Clone)]
pub struct RecordReport {
    pub outputs: Vec<PathBuf>,
    pub recorded: f64,
    pub bytes: u64,
    pub reconnects: u32,
    /// Times the source's clock jumped and was stitched over.
    pub discontinuities: u32,
    pub ended: Ended,
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ended::TimeUp => "its time was up",
            Ended::SourceEnded => "the source ended",
            Ended::SourceGone => "the source dropped and did not come back",
            Ended::Stopped => "stopped (Ctrl-C)",
        })
    }
}

/// A timestamp that jumps by more than this between two packets of a stream is a new clock.
const MAX_JUMP_MICROS: i64 = 1_000_000;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
const REPORT_INTERVAL: Duration = Duration::from_millis(250);
const MICROS: Rational = Rational(1, 1_000_000);

/// Records `options.source`; cancelling `cancel` stops the wait or the recording, which then
/// finishes what it has. Progress goes to `progress` a few times a second.
pub fn record(
    options: &RecordOptions,
    cancel: &Cancel,
    progress: &mut dyn Monitor<RecordProgress>,
) -> Result<RecordReport> {
    let names = check_outputs(options)?;
    if let Some(at) = options.start {
        progress.report(&RecordProgress {
            phase: Phase::Waiting,
            recorded: 0.0,
            bytes: 0,
            reconnects: 0,
        });
        wait_until(at, cancel)?;
    }
    // The job's own stop: the caller's cancel, or the end of the duration.
    let stop = Cancel::new();
    let finished = AtomicBool::new(false);
    let deadline = options.duration.map(|d| Instant::now() + d);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                if cancel.is_cancelled() || deadline.is_some_and(|d| Instant::now() >= d) {
                    stop.cancel();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let mut recorder = Recorder::new(options, names, deadline, cancel, stop.clone());
        let ended = recorder.run(scope, progress);
        let report = recorder.finish(ended, progress);
        finished.store(true, Ordering::SeqCst);
        report
    })
}

/// Refuses, before anything starts, a target of an unknown container or one whose first file
/// (or its part file) is already there without `force`.
pub(crate) fn check_outputs(options: &RecordOptions) -> Result<Names> {
    if let LiveSource::File(path) = &options.source {
        crate::output::staging::refuse_overlap(&options.output, [("the input", path.as_path())])?;
    }
    let names = Names::new(&options.output, options.split.is_some())?;
    names.check(0, options.force)?;
    Ok(names)
}

/// The files a recording writes: the target, or `stem-000.ext`… when split or continued after
/// the source changed codecs.
pub(crate) struct Names {
    target: PathBuf,
    numbered: bool,
}

impl Names {
    fn new(target: &Path, numbered: bool) -> Result<Names> {
        container(target)?;
        Ok(Names {
            target: target.to_owned(),
            numbered,
        })
    }

    fn output(&self, index: usize) -> PathBuf {
        if !self.numbered && index == 0 {
            return self.target.clone();
        }
        let stem = self.target.file_stem().unwrap_or_default().to_string_lossy();
        let name = match self.target.extension() {
            Some(ext) => format!("{stem}-{index:03}.{}", ext.to_string_lossy()),
            None => format!("{stem}-{index:03}"),
        };
        self.target.with_file_name(name)
    }

    /// The crash-safe file beside an output: `show.mp4.part.ts`.
    fn part(output: &Path) -> PathBuf {
        let mut name = output.file_name().unwrap_or_default().to_owned();
        name.push(".part.ts");
        output.with_file_name(name)
    }

    /// Refuses to overwrite an output or a part file an earlier run left, unless `force`.
    fn check(&self, index: usize, force: bool) -> Result<()> {
        let output = self.output(index);
        for path in [Names::part(&output), output] {
            if path.exists() && !force {
                return Err(Error::OutputExists { path });
            }
        }
        Ok(())
    }
}

/// libav's muxer for the target's extension; `None` for MPEG-TS, which the part file already is.
fn container(target: &Path) -> Result<Option<&'static str>> {
    let extension = target
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "mp4" | "m4v" => Ok(Some("mp4")),
        "mov" => Ok(Some("mov")),
        "mkv" => Ok(Some("matroska")),
        "flv" => Ok(Some("flv")),
        "ts" | "m2ts" => Ok(None),
        _ => Err(Error::Usage(format!(
            "{}: record writes .mp4, .mov, .ts, .mkv or .flv",
            target.display()
        ))),
    }
}

/// What makes two connections' streams the same: the packets of one can follow the other's.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    medium: media::Type,
    codec: ffmpeg::codec::Id,
    width: i32,
    height: i32,
    sample_rate: i32,
    channels: i32,
    extradata: Vec<u8>,
}

impl Fingerprint {
    /// Whether this is `recorded`'s stream with part of its parameters not known yet.
    fn lacks_what(&self, recorded: &Fingerprint) -> bool {
        let unknown = |seen: i32, known: i32| seen <= 0 && known > 0;
        self.medium == recorded.medium
            && self.codec == recorded.codec
            && (unknown(self.width, recorded.width)
                || unknown(self.height, recorded.height)
                || unknown(self.sample_rate, recorded.sample_rate)
                || unknown(self.channels, recorded.channels)
                || (self.extradata.is_empty() && !recorded.extradata.is_empty()))
    }

    fn of(stream: &format::stream::Stream) -> Fingerprint {
        let params = stream.parameters();
        // SAFETY: plain fields of the stream's codec parameters, and its extradata buffer of
        // `extradata_size` bytes when not null.
        unsafe {
            let p = params.as_ptr();
            let extradata = if (*p).extradata.is_null() || (*p).extradata_size <= 0 {
                Vec::new()
            } else {
                std::slice::from_raw_parts((*p).extradata, (*p).extradata_size as usize).to_vec()
            };
            Fingerprint {
                medium: params.medium(),
                codec: params.id(),
                width: (*p).width,
                height: (*p).height,
                sample_rate: (*p).sample_rate,
                channels: (*p).ch_layout.nb_channels,
                extradata,
            }
        }
    }
}

/// The streams recorded from a connection: its best video and audio, in that order.
fn chosen_streams(input: &format::context::Input) -> Vec<usize> {
    [media::Type::Video, media::Type::Audio]
        .into_iter()
        .filter_map(|kind| {
            input
                .streams()
                .best(kind)
                .filter(|s| !s.disposition().contains(format::stream::Disposition::ATTACHED_PIC))
                .map(|s| s.index())
        })
        .collect()
}

/// Refuses raw video and PCM audio (what capture devices deliver): recording copies streams as
/// they come, and uncompressed ones neither fit MPEG-TS nor keep up with a disk.
fn check_compressed(input: &LiveInput, chosen: &[usize]) -> Result<()> {
    for &index in chosen {
        let id = input.stream(index).expect("chosen stream exists").parameters().id();
        if id == ffmpeg::codec::Id::RAWVIDEO || id.name().starts_with("pcm_") {
            return Err(Error::Usage(format!(
                "{}: stream #{index} is uncompressed {}; record copies compressed streams without \
                 re-encoding (package a capture device with hls/dash instead)",
                input.source(),
                id.name()
            )));
        }
    }
    Ok(())
}

/// One file being written: MPEG-TS into its part file.
struct PartWriter {
    muxer: format::context::Output,
    output: PathBuf,
    part: PathBuf,
    streams: Vec<Fingerprint>,
    /// Where each output stream's packets last were, in its time base, to keep them increasing.
    last_dts: Vec<Option<i64>>,
    /// First and last-ending timestamps written, in microseconds of the timeline.
    first: Option<i64>,
}

impl PartWriter {
    fn create(output: PathBuf, input: &format::context::Input, chosen: &[usize]) -> Result<PartWriter> {
        let part = Names::part(&output);
        let context = || format!("{}: writing the recording", part.display());
        let mut muxer = format::output_as(&part, "mpegts").map_err(Error::ffmpeg(context()))?;
        let mut streams = Vec::new();
        for &index in chosen {
            let stream = input.stream(index).expect("chosen stream exists");
            let mut out = muxer.add_stream(None).map_err(Error::ffmpeg(context()))?;
            out.set_parameters(stream.parameters());
            out.set_time_base(stream.time_base());
            // FLV's codec tags mean nothing to TS.
            codec_string::set_codec_tag(&mut out.parameters(), None);
            streams.push(Fingerprint::of(&stream));
        }
        let mut options = Dictionary::new();
        // Every packet reaches the file at once: a kill loses at most the packet being written.
        options.set("flush_packets", "1");
        segment::write_header(&mut muxer, options, &part, "mpegts")?;
        let count = streams.len();
        Ok(PartWriter {
            muxer,
            output,
            part,
            streams,
            last_dts: vec![None; count],
            first: None,
        })
    }

    fn accepts(&self, input: &format::context::Input, chosen: &[usize]) -> bool {
        let theirs: Vec<Fingerprint> = chosen
            .iter()
            .map(|&i| Fingerprint::of(&input.stream(i).expect("chosen stream exists")))
            .collect();
        theirs == self.streams
    }

    /// Whether the connection shows less than the recording has: libav's FLV demuxer adds a
    /// stream at its first packet and learns a stream's parameters from its first packets, so a
    /// probe made as a broadcast comes back can miss the audio, or see a video of no size or
    /// without its parameter sets (measured: such a probe started a second file, whose MP4
    /// muxer then refused a video of no size). Such a connection is retried, not taken for a
    /// change of streams.
    fn misses_streams(&self, input: &format::context::Input, chosen: &[usize]) -> bool {
        chosen.len() < self.streams.len()
            || chosen.iter().zip(&self.streams).any(|(&index, recorded)| {
                let seen = Fingerprint::of(&input.stream(index).expect("chosen stream exists"));
                seen.lacks_what(recorded)
            })
    }

    fn has_video(&self) -> bool {
        self.streams.first().is_some_and(|s| s.medium == media::Type::Video)
    }

    /// Writes a packet already on the timeline; `false` if it would not move its stream forward.
    fn write(&mut self, mut packet: Packet, input_time_base: Rational, output: usize, at: i64) -> Result<bool> {
        let time_base = self.muxer.stream(output).expect("output stream exists").time_base();
        packet.rescale_ts(input_time_base, time_base);
        let dts = packet.dts().or(packet.pts()).expect("timed packet");
        if self.last_dts[output].is_some_and(|last| dts <= last) {
            return Ok(false);
        }
        self.last_dts[output] = Some(dts);
        self.first.get_or_insert(at);
        packet.set_stream(output);
        packet.set_position(-1);
        packet
            .write_interleaved(&mut self.muxer)
            .map_err(Error::ffmpeg(format!("{}: writing a packet", self.part.display())))?;
        Ok(true)
    }

    fn bytes(&self) -> u64 {
        std::fs::metadata(&self.part).map_or(0, |m| m.len())
    }

    /// Completes the part file; its conversion to the target is [`finalise`].
    fn close(mut self) -> Result<(PathBuf, PathBuf)> {
        self.muxer.write_trailer().map_err(Error::ffmpeg(format!(
            "{}: finishing the recording",
            self.part.display()
        )))?;
        Ok((self.part, self.output))
    }
}

/// Turns a complete part file into its output and removes it; on failure the part file stays.
fn finalise(part: &Path, output: &Path, replace: bool) -> Result<PathBuf> {
    let staged = StagedFile::new(output, replace)?;
    match container(output)? {
        None => std::fs::rename(part, staged.path()).map_err(Error::io(part))?,
        Some(muxer) => {
            remux::remux_as(&Location::File(part.to_owned()), staged.path(), muxer)?;
            std::fs::remove_file(part).map_err(Error::io(part))?;
        }
    }
    staged.put_in_place()
}

/// How the source's timestamps map onto the recording's single timeline (microseconds).
#[derive(Default)]
struct Timeline {
    /// Added to a source timestamp; `None` while waiting for a keyframe to resume at.
    offset: Option<i64>,
    /// The end of the latest packet written.
    end: i64,
    /// The last source timestamp of each input stream, to see the clock jump.
    last_seen: Vec<Option<i64>>,
    discontinuities: u32,
}

impl Timeline {
    /// A new connection: its clock is unrelated to the last one's.
    fn reconnect(&mut self, streams: usize) {
        self.offset = None;
        self.last_seen = vec![None; streams];
    }

    /// The packet's timeline timestamp (its dts), or `None` to drop it: it precedes the
    /// keyframe the recording resumes at.
    fn place(&mut self, input: usize, at: i64, resumable: bool) -> Option<i64> {
        let jumped = self.last_seen[input].is_some_and(|last| at < last || at > last + MAX_JUMP_MICROS);
        self.last_seen[input] = Some(at);
        if jumped && self.offset.is_some() {
            self.offset = None;
            self.discontinuities += 1;
        }
        if self.offset.is_none() {
            if !resumable {
                return None;
            }
            self.offset = Some(self.end - at);
        }
        self.offset.map(|offset| at + offset)
    }

    fn extend(&mut self, end: i64) {
        self.end = self.end.max(end);
    }
}

/// Why a connection stopped.
enum Dropped {
    /// Reconnect, if time allows.
    Lost,
    /// The source finished (`Some`), or the job was stopped (`None`).
    Over(Option<Ended>),
}

struct Recorder<'a> {
    options: &'a RecordOptions,
    names: Names,
    started: Instant,
    deadline: Option<Instant>,
    /// The caller's (Ctrl-C).
    cancel: &'a Cancel,
    /// The job's: the caller's cancel or the end of the duration.
    stop: Cancel,
    writer: Option<PartWriter>,
    file_index: usize,
    timeline: Timeline,
    reconnects: u32,
    /// Bytes of the files already closed.
    closed_bytes: u64,
    first_packet: Option<i64>,
    finalising: Vec<std::thread::ScopedJoinHandle<'a, Result<Option<PathBuf>>>>,
    last_report: Option<Instant>,
}

impl<'a> Recorder<'a> {
    fn new(
        options: &'a RecordOptions,
        names: Names,
        deadline: Option<Instant>,
        cancel: &'a Cancel,
        stop: Cancel,
    ) -> Recorder<'a> {
        Recorder {
            options,
            names,
            started: Instant::now(),
            deadline,
            cancel,
            stop,
            writer: None,
            file_index: 0,
            timeline: Timeline::default(),
            reconnects: 0,
            closed_bytes: 0,
            first_packet: None,
            finalising: Vec::new(),
            last_report: None,
        }
    }

    fn live_options(&self, open_timeout: Duration) -> InputOptions {
        InputOptions {
            open_timeout,
            stall_timeout: self.options.stall_timeout,
            cancel: self.stop.clone(),
            web_from_file: false,
        }
    }

    /// Why the job stopped.
    fn halted(&self) -> Ended {
        if self.cancel.is_cancelled() {
            Ended::Stopped
        } else {
            Ended::TimeUp
        }
    }

    /// Connects, records, reconnects.
    fn run<'scope>(
        &mut self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        progress: &mut dyn Monitor<RecordProgress>,
    ) -> Result<Ended>
    where
        'scope: 'a,
    {
        self.report(Phase::Connecting, progress, true);
        let Some(mut input) = self.connect(Instant::now() + self.options.open_timeout)? else {
            return Ok(self.halted());
        };
        loop {
            match self.record_connection(&mut input, scope, progress)? {
                Dropped::Over(Some(ended)) => return Ok(ended),
                Dropped::Over(None) => return Ok(self.halted()),
                Dropped::Lost => {}
            }
            self.report(Phase::Reconnecting, progress, true);
            let window_end = self
                .deadline
                .unwrap_or_else(|| Instant::now() + self.options.reconnect_window);
            match self.connect(window_end) {
                Ok(Some(next)) => {
                    self.reconnects += 1;
                    input = next;
                }
                Ok(None) => return Ok(self.halted()),
                // Without a duration the source is given the reconnect window; with one, the
                // window was the rest of the duration.
                Err(_) if self.deadline.is_none() => return Ok(Ended::SourceGone),
                Err(_) => return Ok(Ended::TimeUp),
            }
        }
    }

    /// Opens the source, retrying with backoff until `until`; `None` when stopped. When time
    /// runs out, the last attempt's error.
    fn connect(&self, until: Instant) -> Result<Option<LiveInput>> {
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let options = self.live_options(left.clamp(Duration::from_millis(100), self.options.open_timeout));
            match LiveInput::open(&self.options.source, &options) {
                Ok(input) => return Ok(Some(input)),
                Err(_) if self.stop.is_cancelled() => return Ok(None),
                Err(Error::LiveNeverStarted { url, .. }) if Instant::now() + backoff >= until => {
                    // The whole wait, not the last attempt's share of it.
                    return Err(Error::LiveNeverStarted {
                        url,
                        waited: self.options.open_timeout.max(until - started),
                    });
                }
                Err(e) if Instant::now() + backoff >= until => return Err(e),
                Err(_) => {}
            }
            if !self.pause(backoff) {
                return Ok(None);
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Sleeps `pause` unless stopped first; `false` when stopped.
    fn pause(&self, pause: Duration) -> bool {
        let wake = Instant::now() + pause;
        while Instant::now() < wake {
            if self.stop.is_cancelled() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(wake - Instant::now()));
        }
        true
    }

    /// Copies the connection's packets until it drops, ends, or the job stops.
    fn record_connection<'scope>(
        &mut self,
        input: &mut LiveInput,
        scope: &'scope std::thread::Scope<'scope, '_>,
        progress: &mut dyn Monitor<RecordProgress>,
    ) -> Result<Dropped>
    where
        'scope: 'a,
    {
        let chosen = chosen_streams(input);
        if chosen.is_empty() {
            return Err(Error::NoMediaStreams {
                path: PathBuf::from(input.source().to_string()),
            });
        }
        check_compressed(input, &chosen)?;
        if self.writer.as_ref().is_some_and(|w| w.misses_streams(input, &chosen)) {
            return Ok(Dropped::Lost);
        }
        if self.writer.as_ref().is_some_and(|w| !w.accepts(input, &chosen)) {
            // New codec parameters cannot follow the old ones in one file: start the next.
            self.rotate(None, scope)?;
        }
        if self.writer.is_none() {
            self.open_writer(input, &chosen)?;
        }
        let mut map: Vec<Option<usize>> = vec![None; input.streams().count()];
        for (output, &index) in chosen.iter().enumerate() {
            map[index] = Some(output);
        }
        let time_bases: Vec<Rational> = input.streams().map(|s| s.time_base()).collect();
        self.timeline.reconnect(map.len());
        self.report(Phase::Recording, progress, true);
        loop {
            let packet = match input.read() {
                Ok(Some(packet)) => packet,
                Ok(None) if ends_for_good(input.source()) => return Ok(Dropped::Over(Some(Ended::SourceEnded))),
                Ok(None) | Err(Error::LiveDropped { .. }) => return Ok(Dropped::Lost),
                Err(Error::Cancelled) => return Ok(Dropped::Over(None)),
                Err(e) => return Err(e),
            };
            let Some(output) = map.get(packet.stream()).copied().flatten() else {
                continue;
            };
            let time_base = time_bases[packet.stream()];
            self.take(packet, output, time_base, &chosen, input, scope)?;
            self.report(Phase::Recording, progress, false);
        }
    }

    fn open_writer(&mut self, input: &LiveInput, chosen: &[usize]) -> Result<()> {
        if self.file_index > 0 {
            self.names.check(self.file_index, self.options.force)?;
        }
        self.writer = Some(PartWriter::create(self.names.output(self.file_index), input, chosen)?);
        Ok(())
    }

    /// Places a packet on the timeline and writes it, starting the next file first when a
    /// split is due at this keyframe.
    fn take<'scope>(
        &mut self,
        mut packet: Packet,
        output: usize,
        time_base: Rational,
        chosen: &[usize],
        input: &LiveInput,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> Result<()>
    where
        'scope: 'a,
    {
        let Some(source_dts) = packet.dts().or(packet.pts()) else {
            return Ok(());
        };
        let writer = self.writer.as_ref().expect("a file is open while recording");
        let video = writer.has_video() && output == 0;
        // Resume, and cut, only where a decoder can start: a video keyframe (any packet without video).
        let cut_point = !writer.has_video() || (video && packet.is_key());
        let at = source_dts.rescale(time_base, MICROS);
        let Some(placed) = self.timeline.place(packet.stream(), at, cut_point) else {
            return Ok(());
        };
        let split_due = self
            .options
            .split
            .zip(writer.first)
            .is_some_and(|(split, first)| placed - first >= split.as_micros() as i64);
        if cut_point && split_due {
            self.rotate(Some((input, chosen)), scope)?;
        }
        // A frame shown after later-decoded ones ends at its pts: the next connection must
        // start after every frame's display time, not only after the last decode time.
        let shown = packet
            .pts()
            .map_or(placed, |pts| (pts - source_dts).rescale(time_base, MICROS) + placed);
        let end = placed.max(shown) + packet.duration().max(0).rescale(time_base, MICROS);
        let offset = (placed - at).rescale(MICROS, time_base);
        packet.set_pts(packet.pts().map(|t| t + offset));
        packet.set_dts(packet.dts().map(|t| t + offset));
        let writer = self.writer.as_mut().expect("a file is open while recording");
        if writer.write(packet, time_base, output, placed)? {
            self.timeline.extend(end);
            self.first_packet.get_or_insert(placed);
        }
        Ok(())
    }

    /// Closes the current file and finalises it in the background; opens the next one from
    /// `next` if given.
    fn rotate<'scope>(
        &mut self,
        next: Option<(&LiveInput, &[usize])>,
        scope: &'scope std::thread::Scope<'scope, '_>,
    ) -> Result<()>
    where
        'scope: 'a,
    {
        if let Some(writer) = self.writer.take() {
            self.closed_bytes += writer.bytes();
            let (part, output) = writer.close()?;
            let replace = self.options.force;
            self.finalising
                .push(scope.spawn(move || finalise(&part, &output, replace).map(Some)));
            self.file_index += 1;
        }
        if let Some((input, chosen)) = next {
            self.open_writer(input, chosen)?;
        }
        Ok(())
    }

    fn recorded(&self) -> f64 {
        self.first_packet
            .map_or(0.0, |first| (self.timeline.end - first) as f64 / 1e6)
    }

    fn report(&mut self, phase: Phase, progress: &mut dyn Monitor<RecordProgress>, now: bool) {
        let due = self.last_report.is_none_or(|t| t.elapsed() >= REPORT_INTERVAL);
        if !(now || due) {
            return;
        }
        self.last_report = Some(Instant::now());
        progress.report(&RecordProgress {
            phase,
            recorded: self.recorded(),
            bytes: self.closed_bytes + self.writer.as_ref().map_or(0, PartWriter::bytes),
            reconnects: self.reconnects,
        });
    }

    /// Closes and finalises the last file, waits for every file to be finalised, and reports.
    /// An error of the recording is returned once what it recorded is safe.
    fn finish(mut self, ended: Result<Ended>, progress: &mut dyn Monitor<RecordProgress>) -> Result<RecordReport> {
        self.report(Phase::Finishing, progress, true);
        let bytes = self.closed_bytes + self.writer.as_ref().map_or(0, PartWriter::bytes);
        let last = self.writer.take().map(|w| self.finalise_last(w));
        let mut outputs = Vec::new();
        let mut failures = Vec::new();
        let finalised = self.finalising.drain(..).map(|h| h.join().expect("finalising thread"));
        for result in finalised.chain(last) {
            match result {
                Ok(Some(path)) => outputs.push(path),
                Ok(None) => {}
                Err(e) => failures.push(e),
            }
        }
        let ended = ended?;
        if let Some(failure) = failures.into_iter().next() {
            return Err(failure);
        }
        if outputs.is_empty() {
            return Err(match ended {
                Ended::Stopped => Error::Cancelled,
                _ => Error::LiveNeverStarted {
                    url: self.options.source.to_string(),
                    waited: self.started.elapsed(),
                },
            });
        }
        Ok(RecordReport {
            outputs,
            recorded: self.recorded(),
            bytes,
            reconnects: self.reconnects,
            discontinuities: self.timeline.discontinuities,
            ended,
        })
    }

    /// The last file, finalised here; a file no packet reached is removed.
    fn finalise_last(&self, writer: PartWriter) -> Result<Option<PathBuf>> {
        let empty = writer.first.is_none();
        let (part, output) = writer.close()?;
        if empty {
            std::fs::remove_file(&part).map_err(Error::io(&part))?;
            return Ok(None);
        }
        finalise(&part, &output, self.options.force).map(Some)
    }
}

/// Whether the end of the stream means the broadcast is over: files, devices and HTTP (a live
/// playlist that gained its end tag). An RTMP, SRT or TCP stream that ends may come back.
fn ends_for_good(source: &LiveSource) -> bool {
    match source {
        LiveSource::Url(url) => matches!(
            Location::parse(url).scheme().as_deref(),
            Some("http" | "https" | "file")
        ),
        LiveSource::File(_) | LiveSource::Capture { .. } => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(width: i32, extradata: &[u8]) -> Fingerprint {
        Fingerprint {
            medium: media::Type::Video,
            codec: ffmpeg::codec::Id::H264,
            width,
            height: width * 9 / 16,
            sample_rate: 0,
            channels: 0,
            extradata: extradata.to_vec(),
        }
    }

    #[test]
    fn a_probe_that_has_not_seen_a_streams_parameters_yet_lacks_them_a_changed_stream_does_not() {
        let recorded = video(640, &[1, 2, 3]);
        assert!(video(0, &[1, 2, 3]).lacks_what(&recorded));
        assert!(video(640, &[]).lacks_what(&recorded));
        assert!(!video(640, &[1, 2, 3]).lacks_what(&recorded));
        assert!(!video(1280, &[4, 5]).lacks_what(&recorded), "a new size is a change");
        let audio = Fingerprint {
            medium: media::Type::Audio,
            codec: ffmpeg::codec::Id::AAC,
            width: 0,
            height: 0,
            sample_rate: 48_000,
            channels: 2,
            extradata: vec![0x11, 0x90],
        };
        let unknown_rate = Fingerprint {
            sample_rate: 0,
            ..audio.clone()
        };
        assert!(unknown_rate.lacks_what(&audio));
        assert!(!video(0, &[]).lacks_what(&audio), "another medium is a change");
    }
}
