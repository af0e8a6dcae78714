//! A tiny HTTP/1.1 server on 127.0.0.1 for the download tests: each path answers with a file,
//! with failures before the file, or with a status only. It counts the requests per path and
//! stops when dropped. Or a slow upload destination.

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
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let counted = Arc::clone(&hits);
    serve_with(hits, move |stream| answer(stream, &routes, &counted))
}

/// Takes uploads: each `PUT /PATH` is written to `dir/PATH` only after `delay`, then answered
/// `201`; `DELETE` removes the file. A slow remote destination, as the far side of an ocean is.
pub fn serve_uploads(dir: &Path, delay: Duration) -> Server {
    let dir = dir.to_owned();
    let hits = Arc::new(Mutex::new(HashMap::new()));
    serve_with(hits, move |stream| take_upload(stream, &dir, delay))
}

fn serve_with(hits: Arc<Mutex<HashMap<String, usize>>>, handle: impl Fn(TcpStream) + Send + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => handle(stream),
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
    serve(dir_routes(dir))
}

/// A route `/NAME` to each file of `dir`.
pub fn dir_routes(dir: &Path) -> HashMap<String, Route> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = format!("/{}", path.file_name().unwrap().to_string_lossy());
            (name, Route::File(std::fs::read(&path).unwrap()))
        })
        .collect()
}

/// The request's head (up to the blank line) and what was read of its body after it.
fn read_head(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let body = request.split_off(end + 4);
            return Some((String::from_utf8_lossy(&request).into_owned(), body));
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
}

/// The method and path of a request's head.
fn request_line(head: &str) -> (String, String) {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let method = words.next().unwrap_or_default().to_owned();
    (method, words.next().unwrap_or("/").to_owned())
}

fn take_upload(mut stream: TcpStream, dir: &Path, delay: Duration) {
    let Some((head, mut body)) = read_head(&mut stream) else {
        return;
    };
    let (method, path) = request_line(&head);
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut buffer = [0u8; 4096];
    while body.len() < length {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&buffer[..n]),
        }
    }
    let file = dir.join(path.trim_start_matches('/'));
    let status = match method.as_str() {
        "PUT" => {
            std::thread::sleep(delay);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, &body).unwrap();
            201
        }
        "DELETE" => {
            let _ = std::fs::remove_file(&file);
            204
        }
        _ => 405,
    };
    let head = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
}

fn answer(mut stream: TcpStream, routes: &HashMap<String, Route>, hits: &Mutex<HashMap<String, usize>>) {
    let Some((head, _)) = read_head(&mut stream) else {
        return;
    };
    let (_, path) = request_line(&head);
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
