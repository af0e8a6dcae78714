//! Live capture from a websocket (tungstenite; `wss://` through rustls with the webpki roots).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::http::{HeaderName, HeaderValue};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::error::{Error, Result};
use crate::location::Location;
use crate::progress::Cancel;

/// What to capture.
#[derive(Debug, Clone)]
pub struct WebSocketSource {
    /// `ws://` or `wss://`.
    pub url: String,
    /// How long to capture; `None` until the server closes or the capture is stopped.
    pub duration: Option<Duration>,
    /// Extra request headers (`Origin`, `Cookie`…) some servers insist on.
    pub headers: Vec<(String, String)>,
    /// Text messages sent once connected (some servers start streaming on a `ping`).
    pub send: Vec<String>,
}

/// Why a capture stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The requested duration passed.
    TimeUp,
    /// The server closed the connection.
    Closed,
    /// The caller asked to stop (Ctrl-C).
    Stopped,
    /// The connection broke; what was received until then is kept.
    Broken(String),
}

/// How often a quiet connection checks the clock and the stop flag.
const POLL: Duration = Duration::from_millis(200);

impl WebSocketSource {
    fn remote(&self, reason: impl std::fmt::Display) -> Error {
        Error::Remote {
            url: self.url.clone(),
            reason: reason.to_string(),
        }
    }

    /// Connects and hands every binary message to `on_message` until the duration passes, the
    /// server closes, `cancel` is cancelled, or the connection breaks.
    pub fn capture(&self, cancel: &Cancel, mut on_message: impl FnMut(&[u8]) -> Result<()>) -> Result<Stop> {
        if !matches!(Location::parse(&self.url).scheme().as_deref(), Some("ws" | "wss")) {
            return Err(Error::InvalidOption {
                option: "websocket_url",
                reason: format!("{}: not a ws:// or wss:// URL", self.url),
            });
        }
        let mut request = self.url.as_str().into_client_request().map_err(|e| self.remote(e))?;
        for (name, value) in &self.headers {
            let refused = |e: &dyn std::fmt::Display| Error::InvalidOption {
                option: "headers",
                reason: format!("{name}: {e}"),
            };
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| refused(&e))?;
            let value = HeaderValue::from_str(value).map_err(|e| refused(&e))?;
            request.headers_mut().insert(name, value);
        }
        let (mut socket, _) = tungstenite::connect(request).map_err(|e| self.remote(e))?;
        set_read_timeout(&socket, POLL).map_err(|e| self.remote(e))?;
        for text in &self.send {
            socket.send(Message::text(text.as_str())).map_err(|e| self.remote(e))?;
        }
        let deadline = self.duration.map(|d| Instant::now() + d);
        let why = loop {
            if cancel.is_cancelled() {
                break Stop::Stopped;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break Stop::TimeUp;
            }
            match socket.read() {
                Ok(Message::Binary(bytes)) => on_message(&bytes)?,
                Ok(Message::Close(_)) => break Stop::Closed,
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break Stop::Closed,
                Err(e) => break Stop::Broken(e.to_string()),
            }
        };
        if why != Stop::Closed {
            // Best effort: the capture is complete whether or not the server hears the close.
            let _ = socket.close(None);
            let _ = socket.flush();
        }
        Ok(why)
    }
}

fn set_read_timeout(socket: &WebSocket<MaybeTlsStream<TcpStream>>, timeout: Duration) -> std::io::Result<()> {
    match socket.get_ref() {
        MaybeTlsStream::Plain(stream) => stream.set_read_timeout(Some(timeout)),
        MaybeTlsStream::Rustls(stream) => stream.sock.set_read_timeout(Some(timeout)),
        _ => Ok(()),
    }
}
