//! Opening a live source for reading without ever blocking forever.
//!
//! libav polls an interrupt callback while it connects, probes and reads. Ours answers "stop"
//! when the caller's cancel flag is set or when a deadline passes: the open timeout while the
//! source starts, then the stall timeout, pushed forward every time a packet arrives. A source
//! that never starts and one that stops sending mid-stream thus end in distinct typed errors
//! ([`Error::LiveNeverStarted`], [`Error::LiveDropped`]) instead of a hang.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use ffmpeg::{Dictionary, Packet, format};
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};
use crate::source;

/// A capture device libavdevice reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureDevice {
    /// libavfilter sources as input: `lavfi:testsrc2=size=320x240:rate=25`. Video and audio
    /// together with labelled outputs: `lavfi:testsrc2=rate=25[out0];sine=frequency=440[out1]`.
    Lavfi,
    /// A Video4Linux2 camera: `v4l2:/dev/video0`.
    V4l2,
    /// An X11 screen: `x11grab::0.0` (the display name after the first colon).
    X11grab,
}

impl CaptureDevice {
    /// The name of libavdevice's input format.
    fn format_name(self) -> &'static str {
        match self {
            CaptureDevice::Lavfi => "lavfi",
            CaptureDevice::V4l2 => "video4linux2",
            CaptureDevice::X11grab => "x11grab",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            CaptureDevice::Lavfi => "lavfi",
            CaptureDevice::V4l2 => "v4l2",
            CaptureDevice::X11grab => "x11grab",
        }
    }
}

/// Where live media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveSource {
    /// A URL libav opens itself: `rtmp://`, `srt://`, `http(s)://` (live HLS or DASH), `tcp://`…
    Url(String),
    /// A plain file, read as it is.
    File(PathBuf),
    /// A capture device and what it is told to open (`--capture DEVICE:SPEC`).
    Capture { device: CaptureDevice, spec: String },
}

impl LiveSource {
    /// A URL when the text has a scheme (`rtmp://…`), a file otherwise.
    pub fn parse(text: &str) -> LiveSource {
        if crate::progressive::is_url(text) {
            LiveSource::Url(text.to_owned())
        } else {
            LiveSource::File(PathBuf::from(text))
        }
    }

    /// A `--capture` spec: `lavfi:GRAPH`, `v4l2:DEVICE` or `x11grab:DISPLAY`.
    pub fn capture(text: &str) -> Result<LiveSource> {
        let (prefix, spec) = text.split_once(':').unwrap_or((text, ""));
        let device = [CaptureDevice::Lavfi, CaptureDevice::V4l2, CaptureDevice::X11grab]
            .into_iter()
            .find(|d| d.prefix() == prefix)
            .ok_or_else(|| {
                Error::InvalidOption(format!(
                    "--capture {text}: expected lavfi:GRAPH, v4l2:DEVICE or x11grab:DISPLAY"
                ))
            })?;
        if spec.is_empty() {
            return Err(Error::InvalidOption(format!(
                "--capture {text}: says which device but not what to capture"
            )));
        }
        Ok(LiveSource::Capture {
            device,
            spec: spec.to_owned(),
        })
    }

    /// Protocol options that make libav's own I/O give up too, in microseconds: `rw_timeout`
    /// for every network protocol; `timeout` where it means the connect/read timeout (for RTMP
    /// it would make libav listen as a server). RTMP asks for a live stream, as `-rtmp_live live`.
    fn options(&self, stall: Duration) -> Dictionary<'static> {
        let mut options = Dictionary::new();
        let LiveSource::Url(url) = self else {
            return options;
        };
        let micros = stall.as_micros().to_string();
        let scheme = url.split_once("://").map_or("", |(s, _)| s).to_ascii_lowercase();
        options.set("rw_timeout", &micros);
        match scheme.as_str() {
            "tcp" | "http" | "https" => options.set("timeout", &micros),
            "rtmp" | "rtmps" | "rtmpt" | "rtmpts" => options.set("rtmp_live", "live"),
            _ => {}
        }
        options
    }
}

impl std::fmt::Display for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveSource::Url(url) => f.write_str(url),
            LiveSource::File(path) => write!(f, "{}", path.display()),
            LiveSource::Capture { device, spec } => write!(f, "{}:{spec}", device.prefix()),
        }
    }
}

/// How long to wait, and the flag that stops waiting.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// From connecting until the streams are known.
    pub open_timeout: Duration,
    /// Without a packet, after which the source counts as dropped.
    pub stall_timeout: Duration,
    /// Set it (Ctrl-C, a time limit) to stop a blocked open or read promptly.
    pub cancel: Arc<AtomicBool>,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            open_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(10),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// What the interrupt callback checks: the cancel flag and a deadline the reader moves.
struct Watchdog {
    epoch: Instant,
    /// Nanoseconds after `epoch`.
    deadline: AtomicU64,
    cancel: Arc<AtomicBool>,
}

impl Watchdog {
    fn new(cancel: Arc<AtomicBool>) -> Watchdog {
        Watchdog {
            epoch: Instant::now(),
            deadline: AtomicU64::new(u64::MAX),
            cancel,
        }
    }

    fn arm(&self, within: Duration) {
        let at = (self.epoch.elapsed() + within).as_nanos();
        self.deadline
            .store(u64::try_from(at).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    fn expired(&self) -> bool {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX) >= self.deadline.load(Ordering::SeqCst)
    }

    fn interrupt(&self) -> bool {
        self.cancelled() || self.expired()
    }
}

/// An open live source. Derefs to libav's input for its streams; read with [`LiveInput::read`],
/// which keeps the stall deadline moving.
pub struct LiveInput {
    input: format::context::Input,
    watchdog: Arc<Watchdog>,
    source: LiveSource,
    stall_timeout: Duration,
}

/// How long an empty read (`EAGAIN` from a device) waits before asking again.
const RETRY_EMPTY: Duration = Duration::from_millis(5);

impl LiveInput {
    /// Opens `source` and reads its stream facts, giving up after `options.open_timeout`.
    pub fn open(source: &LiveSource, options: &LiveOptions) -> Result<LiveInput> {
        source::init()?;
        let watchdog = Arc::new(Watchdog::new(Arc::clone(&options.cancel)));
        watchdog.arm(options.open_timeout);
        let input = open_interruptible(source, options.stall_timeout, &watchdog).map_err(|e| {
            if watchdog.cancelled() {
                Error::Cancelled
            } else if watchdog.expired() || e == ffmpeg::Error::Exit {
                Error::LiveNeverStarted {
                    url: source.to_string(),
                    waited: options.open_timeout,
                }
            } else {
                open_error(source, e)
            }
        })?;
        watchdog.arm(options.stall_timeout);
        Ok(LiveInput {
            input,
            watchdog,
            source: source.clone(),
            stall_timeout: options.stall_timeout,
        })
    }

    /// The next packet; `None` when the source ends. A source silent for the stall timeout, or
    /// failing to read, is [`Error::LiveDropped`]; a set cancel flag is [`Error::Cancelled`].
    pub fn read(&mut self) -> Result<Option<Packet>> {
        self.watchdog.arm(self.stall_timeout);
        let mut packet = Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => return Ok(Some(packet)),
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno })
                    if errno == ffmpeg::util::error::EAGAIN && !self.watchdog.interrupt() =>
                {
                    std::thread::sleep(RETRY_EMPTY);
                }
                Err(_) if self.watchdog.cancelled() => return Err(Error::Cancelled),
                Err(e) => return Err(self.dropped(e)),
            }
        }
    }

    fn dropped(&self, error: ffmpeg::Error) -> Error {
        let reason = if self.watchdog.expired() {
            format!("sent nothing for {} s", self.stall_timeout.as_secs_f64())
        } else {
            error.to_string()
        };
        Error::LiveDropped {
            url: self.source.to_string(),
            reason,
        }
    }

    /// The flag that stops a blocked read: shared with whoever may cancel.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.watchdog.cancel)
    }

    pub fn source(&self) -> &LiveSource {
        &self.source
    }
}

impl std::ops::Deref for LiveInput {
    type Target = format::context::Input;

    fn deref(&self) -> &format::context::Input {
        &self.input
    }
}

impl std::ops::DerefMut for LiveInput {
    fn deref_mut(&mut self) -> &mut format::context::Input {
        &mut self.input
    }
}

/// Opens with the watchdog as libav's interrupt callback, set before anything can block.
fn open_interruptible(
    source: &LiveSource,
    stall: Duration,
    watchdog: &Arc<Watchdog>,
) -> std::result::Result<format::context::Input, ffmpeg::Error> {
    let callback = {
        let watchdog = Arc::clone(watchdog);
        move || watchdog.interrupt()
    };
    let options = source.options(stall);
    match source {
        LiveSource::Url(url) => format::input_with_interrupt_and_dictionary(url, callback, options),
        LiveSource::File(path) => format::input_with_interrupt_and_dictionary(path, callback, options),
        LiveSource::Capture { device, spec } => open_device(*device, spec, callback, options),
    }
}

/// ffmpeg-next opens a device only without an interrupt callback, so this is its
/// `input_with_interrupt_and_dictionary` with the device's input format named.
fn open_device(
    device: CaptureDevice,
    spec: &str,
    callback: impl FnMut() -> bool + Send + 'static,
    options: Dictionary,
) -> std::result::Result<format::context::Input, ffmpeg::Error> {
    static DEVICES: Once = Once::new();
    DEVICES.call_once(ffmpeg::device::register_all);
    let name = std::ffi::CString::new(device.format_name()).expect("no NUL in a format name");
    let url = std::ffi::CString::new(spec).map_err(|_| ffmpeg::Error::InvalidData)?;
    // SAFETY: the context is allocated here and either handed to `Input` (which frees it) or
    // freed by avformat_open_input / avformat_close_input on failure; the interrupt's closure
    // lives in its guard, which the `Input` owns, as long as the context can call it.
    unsafe {
        let format = ffmpeg::ffi::av_find_input_format(name.as_ptr());
        if format.is_null() {
            return Err(ffmpeg::Error::DemuxerNotFound);
        }
        let mut context = ffmpeg::ffi::avformat_alloc_context();
        if context.is_null() {
            return Err(ffmpeg::Error::Other {
                errno: ffmpeg::util::error::ENOMEM,
            });
        }
        let interrupt = ffmpeg::util::interrupt::new(Box::new(callback));
        (*context).interrupt_callback = interrupt.interrupt;
        let mut raw_options = options.disown();
        let opened = ffmpeg::ffi::avformat_open_input(&mut context, url.as_ptr(), format, &mut raw_options);
        Dictionary::own(raw_options);
        if opened < 0 {
            return Err(ffmpeg::Error::from(opened));
        }
        let probed = ffmpeg::ffi::avformat_find_stream_info(context, std::ptr::null_mut());
        if probed < 0 {
            ffmpeg::ffi::avformat_close_input(&mut context);
            return Err(ffmpeg::Error::from(probed));
        }
        Ok(format::context::Input::wrap_with_interrupt(context, interrupt.guard))
    }
}

/// An open that failed for a reason of its own, not a timeout.
fn open_error(source: &LiveSource, error: ffmpeg::Error) -> Error {
    match source {
        LiveSource::File(path) => source::check_file(path)
            .err()
            .unwrap_or_else(|| Error::InputUnreadable {
                path: path.clone(),
                reason: error.to_string(),
            }),
        _ => Error::Remote {
            url: source.to_string(),
            reason: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_from_their_text() {
        assert_eq!(
            LiveSource::parse("rtmp://h/live/a"),
            LiveSource::Url("rtmp://h/live/a".into())
        );
        assert_eq!(LiveSource::parse("show.flv"), LiveSource::File("show.flv".into()));
        assert_eq!(
            LiveSource::capture("x11grab::0.0").unwrap(),
            LiveSource::Capture {
                device: CaptureDevice::X11grab,
                spec: ":0.0".into()
            }
        );
        assert_eq!(
            LiveSource::capture("v4l2:/dev/video0").unwrap().to_string(),
            "v4l2:/dev/video0"
        );
        assert!(matches!(
            LiveSource::capture("dshow:video=x"),
            Err(Error::InvalidOption(_))
        ));
        assert!(matches!(LiveSource::capture("lavfi:"), Err(Error::InvalidOption(_))));
    }

    #[test]
    fn a_lavfi_capture_yields_video_and_audio_packets() {
        let source =
            LiveSource::capture("lavfi:testsrc2=size=160x120:rate=25[out0];sine=frequency=440:sample_rate=48000[out1]")
                .unwrap();
        let mut input = LiveInput::open(&source, &LiveOptions::default()).unwrap();
        let kinds: Vec<_> = input.streams().map(|s| s.parameters().medium()).collect();
        assert_eq!(kinds, [ffmpeg::media::Type::Video, ffmpeg::media::Type::Audio]);
        let mut seen = [0; 2];
        while seen.iter().any(|&n| n < 5) {
            let packet = input.read().unwrap().expect("a test source never ends");
            seen[packet.stream()] += 1;
        }
    }

    /// A server that accepts connections and never says a word, for as long as the test runs.
    fn silent_server() -> std::net::SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().collect();
            drop(held);
        });
        address
    }

    #[test]
    fn a_source_that_never_answers_times_out_with_a_clear_error() {
        let address = silent_server();
        let timeout = Duration::from_secs(1);
        let attempts: Vec<_> = [
            format!("rtmp://{address}/live/x"),
            format!("http://{address}/live.m3u8"),
        ]
        .into_iter()
        .map(|url| {
            std::thread::spawn(move || {
                let options = LiveOptions {
                    open_timeout: timeout,
                    ..LiveOptions::default()
                };
                let started = Instant::now();
                let result = LiveInput::open(&LiveSource::parse(&url), &options);
                (url, started.elapsed(), result.err())
            })
        })
        .collect();
        for attempt in attempts {
            let (url, took, error) = attempt.join().unwrap();
            assert!(
                took >= timeout && took < timeout + Duration::from_millis(1500),
                "{url}: gave up after {took:?}"
            );
            let error = error.expect("a silent server cannot be opened");
            assert!(matches!(error, Error::LiveNeverStarted { .. }), "{url}: {error}");
            assert_eq!(error.to_string(), format!("{url}: sent nothing within 1 s"));
            assert_eq!(error.exit_code(), crate::error::exit::INPUT);
        }
    }

    #[test]
    fn the_cancel_flag_stops_a_blocked_open_promptly() {
        let address = silent_server();
        let options = LiveOptions {
            open_timeout: Duration::from_secs(60),
            ..LiveOptions::default()
        };
        let cancel = Arc::clone(&options.cancel);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cancel.store(true, Ordering::SeqCst);
        });
        let started = Instant::now();
        let result = LiveInput::open(&LiveSource::parse(&format!("rtmp://{address}/live/x")), &options);
        assert!(matches!(result, Err(Error::Cancelled)));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
}
