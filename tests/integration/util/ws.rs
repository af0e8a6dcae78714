//! A websocket server on 127.0.0.1 for the live-capture tests (tungstenite's server side): it
//! takes one connection, sends the messages it was given, then closes or holds the connection.

use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tungstenite::Message;

pub enum After {
    /// Close the connection once every message is sent.
    Close,
    /// Keep the connection open (sending nothing more) until the client goes.
    Hold,
}

pub struct WsServer {
    /// `ws://127.0.0.1:PORT/live`
    pub url: String,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WsServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the test websocket server thread");
        }
    }
}

/// Serves one client: sends `messages` as binary messages, then does as `after` says.
pub fn serve(messages: Vec<Vec<u8>>, after: After) -> WsServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let url = format!("ws://{}/live", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("no client came: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut socket = tungstenite::accept(stream).expect("websocket handshake");
        for message in messages {
            socket.send(Message::binary(message)).expect("send a message");
        }
        if let After::Close = after {
            let _ = socket.close(None);
        }
        // Until the client closes (or the connection ends): answers its close handshake.
        while socket.read().is_ok() {}
    });
    WsServer {
        url,
        thread: Some(thread),
    }
}
