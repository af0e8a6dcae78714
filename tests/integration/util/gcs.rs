//! gcp-storage-emulator, a Google Cloud Storage emulator from PyPI (installed by scripts/test.sh
//! in tests/servers/.venv, pinned by tests/servers/requirements.txt), on 127.0.0.1, in memory,
//! with the bucket `media`.
//!
//! It stores and serves objects over the XML API object_store's GCS client uses, but leaves out
//! the `ETag` and `Last-Modified` headers GCS always sends and object_store requires (it fails an
//! upload or a download without them). stream-pack therefore talks to it through a small
//! forwarder here that adds those two headers where missing; requests, bodies and statuses pass
//! unchanged. It has no XML `DELETE`, so removals are not tested on it. The tests' own requests
//! are curl's, on the emulator's JSON API, without the forwarder.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::daemon::{Daemon, free_port};
use super::download::run_curl;

pub struct Gcs {
    /// `http://127.0.0.1:PORT`, the emulator itself.
    pub endpoint: String,
    pub bucket: String,
    /// `http://127.0.0.1:PORT`, the forwarder stream-pack is given.
    forwarder: String,
    _daemon: Daemon,
    _dir: TempDir,
}

impl Gcs {
    pub fn start() -> Gcs {
        let (dir, port) = (tempfile::tempdir().expect("a folder for the emulator"), free_port());
        let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/servers/.venv/bin/gcp-storage-emulator");
        let mut command = Command::new(program);
        command
            .args(["start", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--in-memory", "--default-bucket", "media"]);
        let daemon = Daemon::start("gcp-storage-emulator", &mut command, &dir.path().join("log"), port);
        let endpoint = format!("http://127.0.0.1:{port}");
        Gcs {
            forwarder: forward_adding_validators(endpoint.clone()),
            endpoint,
            bucket: "media".into(),
            _daemon: daemon,
            _dir: dir,
        }
    }

    /// The environment a stream-pack process needs to reach the emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        emulator_env(&self.forwarder)
    }

    /// `gs://media/PREFIX`
    pub fn gs_url(&self, prefix: &str) -> String {
        format!("gs://{}/{prefix}", self.bucket)
    }

    /// Uploads `file` as the object `name` (a JSON API media upload), with curl.
    pub fn put(&self, file: &Path, name: &str) {
        let upload = ["--header", "Content-Type: application/octet-stream", "--data-binary"];
        let body = PathBuf::from(format!("@{}", file.display()));
        run_curl(
            upload.iter().map(PathBuf::from).chain([body]),
            &format!(
                "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
                self.endpoint,
                self.bucket,
                escape(name)
            ),
        );
    }

    /// The object `name`'s bytes.
    pub fn get(&self, name: &str) -> Vec<u8> {
        run_curl::<&str>(
            [],
            &format!(
                "{}/download/storage/v1/b/{}/o/{}?alt=media",
                self.endpoint,
                self.bucket,
                escape(name)
            ),
        )
    }

    /// Every object whose name starts with `prefix`, and its `contentType`, from the bucket's
    /// listing (one page: the tests' packages have far fewer than 1000 files).
    pub fn list(&self, prefix: &str) -> BTreeMap<String, String> {
        let listing = run_curl::<&str>(
            [],
            &format!(
                "{}/storage/v1/b/{}/o?prefix={}",
                self.endpoint,
                self.bucket,
                escape(prefix)
            ),
        );
        let listing: serde_json::Value = serde_json::from_slice(&listing).expect("a JSON object listing");
        let text = |item: &serde_json::Value, field: &str| item[field].as_str().unwrap_or_default().to_owned();
        listing["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|item| (text(item, "name"), text(item, "contentType")))
            .collect()
    }
}

/// The environment that points object_store's GCS client at an emulator at `endpoint`: a
/// service account key (object_store's documented way) whose `disable_oauth` makes it send an
/// empty bearer token instead of asking Google for one.
pub fn emulator_env(endpoint: &str) -> Vec<(&'static str, String)> {
    let key = serde_json::json!({
        "gcs_base_url": endpoint,
        "disable_oauth": true,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    });
    vec![("GOOGLE_SERVICE_ACCOUNT_KEY", key.to_string())]
}

/// Listens on a free loopback port and forwards each request (one per connection) to
/// `upstream`, adding `ETag` and `Last-Modified` to answers that lack them. Returns its URL; it
/// runs until the test process ends.
fn forward_adding_validators(upstream: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (agent, upstream) = (agent.clone(), upstream.clone());
            std::thread::spawn(move || forward(stream, &agent, &upstream));
        }
    });
    url
}

fn forward(stream: TcpStream, agent: &ureq::Agent, upstream: &str) {
    let mut reader = BufReader::new(stream.try_clone().expect("share the connection"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{upstream}{target}"));
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).expect("a request header");
        let Some((name, value)) = header.trim_end().split_once(':') else {
            break;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().expect("a Content-Length"),
            "host" | "connection" => {}
            _ => request = request.header(name, value),
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("the request body");
    let response = if body.is_empty() {
        agent.run(request.body(()).unwrap())
    } else {
        agent.run(request.body(body).unwrap())
    };
    let mut response = response.expect("the emulator's answer");
    let status = response.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        if !["content-length", "transfer-encoding", "connection"].contains(&name.as_str()) {
            head += &format!("{name}: {}\r\n", value.to_str().unwrap_or_default());
        }
    }
    if !response.headers().contains_key("etag") {
        head += "ETag: \"gcp-storage-emulator\"\r\n";
    }
    if !response.headers().contains_key("last-modified") {
        head += "Last-Modified: Thu, 01 Jan 2026 00:00:00 GMT\r\n";
    }
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .expect("the emulator's body");
    head += &format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body));
}

/// An object name as one URL path segment or query value.
fn escape(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
