//! A tiny HTTP/1.1 server on 127.0.0.1 for the download tests: each path answers with a file,
//! with failures before the file, or with a status only. It counts the requests per path and
//! stops when dropped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub enum Route {
    File(Vec<u8>),
    /// `503 Service Unavailable` this many times, then the file.
    FailFirst(usize, Vec<u8>),
    /// This status every time.
    Status(u16),
}

pub struct Server {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Requests made for `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the test HTTP server thread");
        }
    }
}

/// Serves `routes` (path → answer) until the server is dropped.
pub fn serve(routes: HashMap<String, Route>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (hits, stop) = (Arc::clone(&hits), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &routes, &hits),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })
    };
    Server {
        base,
        hits,
        stop,
        thread: Some(thread),
    }
}

/// Serves every file of `dir` at `/NAME`.
pub fn serve_dir(dir: &Path) -> Server {
    let routes = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = format!("/{}", path.file_name().unwrap().to_string_lossy());
            (name, Route::File(std::fs::read(&path).unwrap()))
        })
        .collect();
    serve(routes)
}

fn answer(mut stream: TcpStream, routes: &HashMap<String, Route>, hits: &Mutex<HashMap<String, usize>>) {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let count = {
        let mut hits = hits.lock().unwrap();
        let count = hits.entry(path.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let (status, body): (u16, &[u8]) = match routes.get(&path) {
        Some(Route::File(body)) => (200, body),
        Some(Route::FailFirst(failures, body)) if count > *failures => (200, body),
        Some(Route::FailFirst(..)) => (503, b""),
        Some(Route::Status(status)) => (*status, b""),
        None => (404, b""),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body));
}
