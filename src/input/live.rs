//! Opening a live source for reading without ever blocking forever, under the watchdog every
//! input has ([`crate::input::watchdog`]): a source that never starts and one that stops sending
//! mid-stream end in distinct typed errors ([`Error::LiveNeverStarted`], [`Error::LiveDropped`])
//! instead of a hang.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

use ffmpeg::{Dictionary, Packet, format};
use ffmpeg_next as ffmpeg;

use crate::error::{Error, Result};
use crate::input::watchdog::{self, Failure, InputOptions, WatchedInput};
use crate::location::Location;

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
        if Location::parse(text).is_url() {
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
            .ok_or_else(|| Error::InvalidOption {
                option: "capture",
                reason: format!("{text}: expected lavfi:GRAPH, v4l2:DEVICE or x11grab:DISPLAY"),
            })?;
        if spec.is_empty() {
            return Err(Error::InvalidOption {
                option: "capture",
                reason: format!("{text}: says which device but not what to capture"),
            });
        }
        Ok(LiveSource::Capture {
            device,
            spec: spec.to_owned(),
        })
    }

    /// The watchdog's protocol options (none for a device); RTMP asks for a live stream, as
    /// `-rtmp_live live`.
    fn options(&self, stall: Duration) -> Dictionary<'static> {
        let url = match self {
            LiveSource::Capture { .. } => return Dictionary::new(),
            LiveSource::File(path) => return watchdog::protocol_options(&Location::File(path.clone()), stall),
            LiveSource::Url(url) => Location::parse(url),
        };
        let mut options = watchdog::protocol_options(&url, stall);
        if matches!(url.scheme().as_deref(), Some("rtmp" | "rtmps" | "rtmpt" | "rtmpts")) {
            options.set("rtmp_live", "live");
        }
        options
    }

    /// What libav opens, and in which input format when it cannot tell.
    fn target(&self) -> (&OsStr, Option<&'static str>) {
        match self {
            LiveSource::Url(url) => (OsStr::new(url), None),
            LiveSource::File(path) => (path.as_os_str(), None),
            LiveSource::Capture { device, spec } => (OsStr::new(spec), Some(device.format_name())),
        }
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

/// An open live source. Derefs to libav's input for its streams; read with [`LiveInput::read`],
/// which keeps the stall deadline moving.
pub struct LiveInput {
    input: WatchedInput,
    source: LiveSource,
}

impl LiveInput {
    /// Opens `source` and reads its stream facts, giving up after `options.open_timeout`.
    pub fn open(source: &LiveSource, options: &InputOptions) -> Result<LiveInput> {
        watchdog::init()?;
        if matches!(source, LiveSource::Capture { .. }) {
            static DEVICES: Once = Once::new();
            DEVICES.call_once(ffmpeg::device::register_all);
        }
        let (target, format) = source.target();
        let dictionary = source.options(options.stall_timeout);
        // A live source may lose a segment and go on: only a silence of the stall timeout ends it.
        let input =
            WatchedInput::open(target, format, options, dictionary, false).map_err(|failure| match failure {
                Failure::Cancelled => Error::Cancelled,
                Failure::NeverStarted(waited) => Error::LiveNeverStarted {
                    url: source.to_string(),
                    waited,
                },
                Failure::Libav(e) => open_error(source, e),
                other => Error::Remote {
                    url: source.to_string(),
                    reason: watchdog::failure_reason(other),
                },
            })?;
        Ok(LiveInput {
            input,
            source: source.clone(),
        })
    }

    /// The next packet; `None` when the source ends. A source silent for the stall timeout, or
    /// failing to read, is [`Error::LiveDropped`]; a cancelled job is [`Error::Cancelled`].
    pub fn read(&mut self) -> Result<Option<Packet>> {
        self.input.read().map_err(|failure| match failure {
            Failure::Cancelled => Error::Cancelled,
            failure => Error::LiveDropped {
                url: self.source.to_string(),
                reason: watchdog::failure_reason(failure),
            },
        })
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

/// An open that failed for a reason of its own, not a timeout.
fn open_error(source: &LiveSource, error: ffmpeg::Error) -> Error {
    match source {
        LiveSource::File(path) => watchdog::check_file(path)
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
    use std::time::Instant;

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
        for bad in ["dshow:video=x", "lavfi:"] {
            assert!(matches!(
                LiveSource::capture(bad),
                Err(Error::InvalidOption { option: "capture", .. })
            ));
        }
    }

    #[test]
    fn a_lavfi_capture_yields_video_and_audio_packets() {
        let source =
            LiveSource::capture("lavfi:testsrc2=size=160x120:rate=25[out0];sine=frequency=440:sample_rate=48000[out1]")
                .unwrap();
        let mut input = LiveInput::open(&source, &InputOptions::default()).unwrap();
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
                let options = InputOptions {
                    open_timeout: timeout,
                    ..InputOptions::default()
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
        let options = InputOptions {
            open_timeout: Duration::from_secs(60),
            ..InputOptions::default()
        };
        let cancel = options.cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            cancel.cancel();
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
