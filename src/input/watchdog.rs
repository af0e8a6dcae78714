//! Opening and reading any input (a file, a URL, a manifest, a live source, a device) without
//! ever blocking forever, and without following it anywhere without end.
//!
//! libav polls an interrupt callback while it connects, probes and reads. Ours answers "stop"
//! when the caller's cancel flag is set or when a deadline passes: the open timeout while the
//! input opens, then the stall timeout, pushed forward every time a packet is asked for.
//!
//! Every URL libav opens for the input (the input itself, a manifest's playlists, segments and
//! keys) goes through `counted_open`. It bounds the requests made while the input opens: libav's
//! HLS demuxer follows a master playlist that names a master playlist (itself, say) in a loop,
//! keeping each in memory (5.8 GB in 10 s). And it remembers a piece that could not be opened:
//! libav's HLS and DASH demuxers skip such a segment with no more than a log line, so a reader
//! would see a clean end with a hole in the media.
//!
//! Every opener, of a file or a live source, also starts here: libav set up once and quiet
//! (`init`), a missing, empty or special file refused by name (`check_file`), and a failure told
//! in words (`failure_reason`).

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr, c_char, c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::location::Location;
use crate::progress::Cancel;
use ffmpeg::{Dictionary, Packet, ffi, format, media};
use ffmpeg_next as ffmpeg;

/// How long to wait, and the flag that stops waiting.
#[derive(Debug, Clone)]
pub struct InputOptions {
    /// From connecting until the streams are known.
    pub open_timeout: Duration,
    /// Without a packet, after which the input counts as lost.
    pub stall_timeout: Duration,
    /// Cancel it (Ctrl-C, a time limit) to stop a blocked open or read promptly.
    pub cancel: Cancel,
    /// Whether a manifest on disk may name pieces over HTTP(S), which libav otherwise refuses (a
    /// file reaches only files): for `convert`'s own copy of an MPD on the web.
    pub web_from_file: bool,
}

impl Default for InputOptions {
    fn default() -> InputOptions {
        InputOptions {
            open_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(10),
            cancel: Cancel::new(),
            web_from_file: false,
        }
    }
}

/// Libav prints its own diagnostics on stderr; stream-pack reports errors itself in one line, so
/// libav stays quiet unless `STREAM_PACK_LIBAV_LOG` asks for its log (e.g. `=warning`).
pub fn init() -> Result<()> {
    ffmpeg::init().map_err(Error::ffmpeg("initialising libav"))?;
    let level = match std::env::var("STREAM_PACK_LIBAV_LOG").as_deref() {
        Ok("debug") => ffmpeg::log::Level::Debug,
        Ok("info") => ffmpeg::log::Level::Info,
        Ok("warning") => ffmpeg::log::Level::Warning,
        Ok("error") => ffmpeg::log::Level::Error,
        _ => ffmpeg::log::Level::Quiet,
    };
    ffmpeg::log::set_level(level);
    Ok(())
}

/// Refuses a missing file, a folder or an empty file with an error that says so.
pub(crate) fn check_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::InputMissing { path: path.to_owned() },
        _ => Error::Io {
            path: path.to_owned(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        return Err(Error::InputUnreadable {
            path: path.to_owned(),
            reason: "it is a directory".into(),
        });
    }
    // A FIFO or a device reports no size: it is no empty file, and it cannot be read twice as
    // a file can, which probing and packaging need.
    if !meta.is_file() {
        return Err(Error::InputUnreadable {
            path: path.to_owned(),
            reason: format!("it is {}, not a regular file", special_kind(&meta.file_type())),
        });
    }
    if meta.len() == 0 {
        return Err(Error::InputEmpty { path: path.to_owned() });
    }
    Ok(())
}

fn special_kind(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// What went wrong, in words, for a message that names the input.
pub(crate) fn failure_reason(failure: Failure) -> String {
    match failure {
        Failure::Cancelled => "cancelled".into(),
        Failure::NeverStarted(waited) => format!("sent nothing within {} s", waited.as_secs_f64()),
        Failure::Stalled(waited) => format!("sent nothing for {} s", waited.as_secs_f64()),
        Failure::Runaway(reason) => reason,
        Failure::Missing { url, reason } => format!("{url}: {reason}"),
        Failure::Hole { from, to } => format!("the media jumps from {from:.2} s to {to:.2} s"),
        Failure::Libav(e) => e.to_string(),
    }
}

/// Requests for one URL while the input opens beyond which it counts as a loop. A live playlist
/// is reloaded a few times while libav probes it; a master playlist that names itself is
/// requested a thousand times a second.
const REPEATS_WHILE_OPENING: usize = 16;

/// Requests in all while the input opens: a master playlist with dozens of renditions needs a
/// few per rendition (its playlist and the segments probed).
const REQUESTS_WHILE_OPENING: usize = 500;

/// Why an open or a read stopped.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The cancel flag was set.
    Cancelled,
    /// The open timeout (given) passed before the streams were known.
    NeverStarted(Duration),
    /// Nothing was read for the stall timeout (given).
    Stalled(Duration),
    /// Opening requested URLs without end (see [`REPEATS_WHILE_OPENING`]).
    Runaway(String),
    /// A piece of the input (a segment, a playlist, a key) could not be opened.
    Missing { url: String, reason: String },
    /// A stream of a playlist or manifest jumps over a stretch of media (seconds from its start).
    Hole { from: f64, to: f64 },
    /// libav's own error.
    Libav(ffmpeg::Error),
}

/// What the interrupt callback and [`counted_open`] check and record.
struct Watchdog {
    epoch: Instant,
    /// Nanoseconds after `epoch`.
    deadline: AtomicU64,
    cancel: Cancel,
    /// Set when opening ran away: every further request and read is stopped.
    runaway: AtomicBool,
    requests: Mutex<Requests>,
}

#[derive(Default)]
struct Requests {
    /// Requests are counted only while the input opens; a live input reloads for ever after.
    opened: bool,
    total: usize,
    per_url: HashMap<String, usize>,
    runaway: Option<String>,
    /// The first piece libav could not open, after the input itself.
    missing: Option<(String, String)>,
}

impl Watchdog {
    fn new(cancel: Cancel) -> Watchdog {
        Watchdog {
            epoch: Instant::now(),
            deadline: AtomicU64::new(u64::MAX),
            cancel,
            runaway: AtomicBool::new(false),
            requests: Mutex::new(Requests::default()),
        }
    }

    fn arm(&self, within: Duration) {
        let at = (self.epoch.elapsed() + within).as_nanos();
        self.deadline
            .store(u64::try_from(at).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    fn expired(&self) -> bool {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) >= self.deadline.load(Ordering::SeqCst)
    }

    fn interrupt(&self) -> bool {
        self.cancelled() || self.expired() || self.runaway.load(Ordering::SeqCst)
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, Requests> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a request for `url`; false when opening has made too many.
    fn request(&self, url: &str) -> bool {
        let mut requests = self.requests();
        if requests.opened {
            return true;
        }
        requests.total += 1;
        let repeats = requests.per_url.entry(url.to_owned()).or_insert(0);
        *repeats += 1;
        let reason = if *repeats > REPEATS_WHILE_OPENING {
            format!("requested {url} more than {REPEATS_WHILE_OPENING} times: does a master playlist name itself?")
        } else if requests.total > REQUESTS_WHILE_OPENING {
            format!(
                "made more than {REQUESTS_WHILE_OPENING} requests (the last for {url}): do master playlists nest \
                 without end?"
            )
        } else {
            return true;
        };
        requests.runaway.get_or_insert(reason);
        self.runaway.store(true, Ordering::SeqCst);
        false
    }

    /// Remembers the first piece that could not be opened, unless the input itself.
    fn refused(&self, url: &str, code: c_int) {
        let mut requests = self.requests();
        if requests.total > 1 || requests.opened {
            requests
                .missing
                .get_or_insert_with(|| (url.to_owned(), ffmpeg::Error::from(code).to_string()));
        }
    }

    /// Why opening or reading stopped, from what the watchdog saw and libav's error.
    fn failure(&self, error: ffmpeg::Error, timed_out: Failure) -> Failure {
        let mut requests = self.requests();
        if let Some(reason) = requests.runaway.take() {
            Failure::Runaway(reason)
        } else if self.cancelled() {
            Failure::Cancelled
        } else if self.expired() || error == ffmpeg::Error::Exit {
            timed_out
        } else if let Some((url, reason)) = requests.missing.take() {
            Failure::Missing { url, reason }
        } else {
            Failure::Libav(error)
        }
    }
}

/// libav's own `io_open`, which [`counted_open`] calls after counting.
type IoOpen = unsafe extern "C" fn(
    *mut ffi::AVFormatContext,
    *mut *mut ffi::AVIOContext,
    *const c_char,
    c_int,
    *mut *mut ffi::AVDictionary,
) -> c_int;

static DEFAULT_IO_OPEN: OnceLock<IoOpen> = OnceLock::new();

/// The `io_open` of every input context: counts the request, refuses it when opening runs away,
/// and remembers a piece that could not be opened.
unsafe extern "C" fn counted_open(
    context: *mut ffi::AVFormatContext,
    pb: *mut *mut ffi::AVIOContext,
    url: *const c_char,
    flags: c_int,
    options: *mut *mut ffi::AVDictionary,
) -> c_int {
    let Some(default) = DEFAULT_IO_OPEN.get() else {
        return ffi::AVERROR_EXIT;
    };
    // SAFETY: libav passes its context and the URL it opens (NUL-terminated); nested contexts
    // share the top one's `opaque`, which is the watchdog `open` set and the context keeps alive.
    unsafe {
        let watchdog = (*context).opaque.cast::<Watchdog>().cast_const();
        if watchdog.is_null() || url.is_null() {
            return default(context, pb, url, flags, options);
        }
        let watchdog = &*watchdog;
        let text = CStr::from_ptr(url).to_string_lossy();
        if !watchdog.request(&text) {
            return ffi::AVERROR_EXIT;
        }
        let opened = default(context, pb, url, flags, options);
        if opened < 0 && !watchdog.interrupt() {
            watchdog.refused(&text, opened);
        }
        opened
    }
}

/// An open input, read under the watchdog. Derefs to libav's input for its streams.
pub struct WatchedInput {
    input: format::context::Input,
    watchdog: Arc<Watchdog>,
    stall_timeout: Duration,
    /// Whether a piece that could not be opened is an error (a live source may lose one).
    complete: bool,
    /// For a complete playlist or manifest, where each audio and video stream has got to.
    continuity: Option<Continuity>,
}

/// A segment cut short or empty is read by libav's HLS and DASH demuxers without a word; the
/// next segment's timestamps then jump past what is missing. Per stream: the end of the last
/// packet and the longest packet, in the stream's time base.
#[derive(Default)]
struct Continuity(HashMap<usize, (i64, i64)>);

/// The step between packets of a stream beyond which media is missing, in seconds, unless the
/// stream's packets are longer (a slideshow): then three of them.
const LARGEST_STEP: f64 = 0.5;

/// How long an empty read (`EAGAIN` from a device) waits before asking again.
const RETRY_EMPTY: Duration = Duration::from_millis(5);

/// What libav may open for an input on the web: HTTP(S) over TCP/TLS (or a proxy), HLS's
/// AES-128 layer and data URIs.
pub(crate) const WEB_PROTOCOLS: &str = "http,https,httpproxy,tcp,tls,crypto,data";

/// Protocol options that make libav's own I/O give up too, in microseconds: `rw_timeout` for
/// every network protocol, `timeout` where it means the connect/read timeout (for RTMP it would
/// make libav listen as a server). The HLS demuxer is kept from reusing connections and from
/// opening the next segment ahead: a request on a kept-alive connection would bypass
/// [`counted_open`], and a segment that failed to open ahead is opened again later.
pub(crate) fn protocol_options(target: &Location, stall: Duration) -> Dictionary<'static> {
    let mut options = Dictionary::new();
    let micros = stall.as_micros().to_string();
    options.set("rw_timeout", &micros);
    if matches!(target, Location::Http(_)) || target.scheme().as_deref() == Some("tcp") {
        options.set("timeout", &micros);
    }
    // A playlist or MPD on the web names only web pieces: never this machine's files.
    if matches!(target, Location::Http(_)) {
        options.set("protocol_whitelist", WEB_PROTOCOLS);
    }
    options.set("http_persistent", "0");
    options.set("http_multiple", "0");
    options
}

impl WatchedInput {
    /// Opens `target` (in the input format named `format`, or the one libav finds) and reads its
    /// stream facts, giving up after `options.open_timeout`. With `complete`, a piece of the input
    /// that cannot be opened fails the open or the read that meets it.
    pub(crate) fn open(
        target: &OsStr,
        format: Option<&str>,
        options: &InputOptions,
        dictionary: Dictionary,
        complete: bool,
    ) -> Result<WatchedInput, Failure> {
        let watchdog = Arc::new(Watchdog::new(options.cancel.clone()));
        watchdog.arm(options.open_timeout);
        let input = open_watched(target, format, &watchdog, dictionary)
            .map_err(|e| watchdog.failure(e, Failure::NeverStarted(options.open_timeout)))?;
        watchdog.requests().opened = true;
        let adaptive = matches!(input.format().name(), "hls" | "dash");
        let mut input = WatchedInput {
            input,
            watchdog,
            stall_timeout: options.stall_timeout,
            complete,
            continuity: (complete && adaptive).then(Continuity::default),
        };
        input.check_missing()?;
        input.watchdog.arm(input.stall_timeout);
        Ok(input)
    }

    /// The next packet; `None` at the end.
    pub(crate) fn read(&mut self) -> Result<Option<Packet>, Failure> {
        self.watchdog.arm(self.stall_timeout);
        let mut packet = Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => break,
                Err(ffmpeg::Error::Eof) => {
                    self.check_missing()?;
                    return Ok(None);
                }
                Err(ffmpeg::Error::Other { errno })
                    if errno == ffmpeg::util::error::EAGAIN && !self.watchdog.interrupt() =>
                {
                    std::thread::sleep(RETRY_EMPTY);
                }
                Err(e) => return Err(self.watchdog.failure(e, Failure::Stalled(self.stall_timeout))),
            }
        }
        self.check_missing()?;
        self.check_continuity(&packet)?;
        Ok(Some(packet))
    }

    fn check_continuity(&mut self, packet: &Packet) -> Result<(), Failure> {
        let (Some(Continuity(streams)), Some(dts)) = (&mut self.continuity, packet.dts()) else {
            return Ok(());
        };
        let Some(stream) = self.input.stream(packet.stream()) else {
            return Ok(());
        };
        if !matches!(stream.parameters().medium(), media::Type::Audio | media::Type::Video) {
            return Ok(());
        }
        let seconds = f64::from(stream.time_base());
        let duration = packet.duration().max(0);
        let (end, longest) = streams.entry(packet.stream()).or_insert((dts, duration));
        let step = (dts - *end) as f64 * seconds;
        let largest = LARGEST_STEP.max(3.0 * *longest as f64 * seconds);
        if step > largest {
            // SAFETY: reads a plain field of the open input context.
            let start = unsafe { (*self.input.as_ptr()).start_time };
            let start = if start == ffi::AV_NOPTS_VALUE {
                0.0
            } else {
                start as f64 / 1e6
            };
            return Err(Failure::Hole {
                from: *end as f64 * seconds - start,
                to: dts as f64 * seconds - start,
            });
        }
        *end = (*end).max(dts + duration);
        *longest = (*longest).max(duration);
        Ok(())
    }

    fn check_missing(&mut self) -> Result<(), Failure> {
        if !self.complete {
            return Ok(());
        }
        match self.watchdog.requests().missing.take() {
            Some((url, reason)) => Err(Failure::Missing { url, reason }),
            None => Ok(()),
        }
    }
}

impl std::ops::Deref for WatchedInput {
    type Target = format::context::Input;

    fn deref(&self) -> &format::context::Input {
        &self.input
    }
}

impl std::ops::DerefMut for WatchedInput {
    fn deref_mut(&mut self) -> &mut format::context::Input {
        &mut self.input
    }
}

/// Opens with the watchdog as libav's interrupt callback and [`counted_open`] as its `io_open`,
/// both set before anything can block. ffmpeg-next's `input_with_interrupt_and_dictionary` sets
/// neither `io_open` nor an input format, so this is that function with both.
fn open_watched(
    target: &OsStr,
    format: Option<&str>,
    watchdog: &Arc<Watchdog>,
    options: Dictionary,
) -> Result<format::context::Input, ffmpeg::Error> {
    let url = CString::new(target.as_bytes()).map_err(|_| ffmpeg::Error::InvalidData)?;
    let format = match format {
        Some(name) => {
            let name = CString::new(name).map_err(|_| ffmpeg::Error::InvalidData)?;
            // SAFETY: looks a name up in libav's static table.
            let found = unsafe { ffi::av_find_input_format(name.as_ptr()) };
            if found.is_null() {
                return Err(ffmpeg::Error::DemuxerNotFound);
            }
            found
        }
        None => std::ptr::null(),
    };
    let callback = {
        let watchdog = Arc::clone(watchdog);
        move || watchdog.interrupt()
    };
    // SAFETY: the context is allocated here and either handed to `Input` (which frees it) or
    // freed by avformat_open_input / avformat_close_input on failure. The interrupt's closure
    // lives in its guard, which the `Input` owns, as long as the context can call it; it holds
    // the watchdog that `opaque` points at, so the watchdog outlives the context too.
    unsafe {
        let mut context = ffi::avformat_alloc_context();
        if context.is_null() {
            return Err(ffmpeg::Error::Other {
                errno: ffmpeg::util::error::ENOMEM,
            });
        }
        if let Some(default) = (*context).io_open {
            DEFAULT_IO_OPEN.get_or_init(|| default);
            (*context).io_open = Some(counted_open);
        }
        (*context).opaque = Arc::as_ptr(watchdog).cast_mut().cast::<c_void>();
        let interrupt = ffmpeg::util::interrupt::new(Box::new(callback));
        (*context).interrupt_callback = interrupt.interrupt;
        let mut raw_options = options.disown();
        let opened = ffi::avformat_open_input(&mut context, url.as_ptr(), format, &mut raw_options);
        Dictionary::own(raw_options);
        if opened < 0 {
            return Err(ffmpeg::Error::from(opened));
        }
        let probed = ffi::avformat_find_stream_info(context, std::ptr::null_mut());
        if probed < 0 {
            ffi::avformat_close_input(&mut context);
            return Err(ffmpeg::Error::from(probed));
        }
        Ok(format::context::Input::wrap_with_interrupt(context, interrupt.guard))
    }
}
