//! nginx as a WebDAV-style server on 127.0.0.1 (Debian's nginx-light has the dav module): its own
//! config, pid, logs and document root in a temporary folder. `/` takes PUT, DELETE and MKCOL;
//! `/readonly/` takes none (nginx answers 405).

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::daemon::{Daemon, free_port, nginx};

pub struct Dav {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The document root: what was published, as files.
    pub root: PathBuf,
    dir: TempDir,
    daemon: Daemon,
}

/// One access-log line: when the request began and ended (seconds, millisecond resolution).
#[derive(Debug, Clone)]
pub struct Request {
    pub start: f64,
    pub end: f64,
    pub method: String,
    pub path: String,
    pub status: u16,
}

impl Dav {
    /// A server that creates missing folders on PUT (`create_full_put_path on`).
    pub fn start() -> Dav {
        Dav::start_on(free_port(), true)
    }

    /// A server on `port`; with `create_full_put_path` off, a PUT into a missing folder fails.
    pub fn start_on(port: u16, create_full_put_path: bool) -> Dav {
        let dir = tempfile::tempdir().expect("a folder for nginx");
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("readonly")).unwrap();
        let daemon = nginx(
            "nginx",
            dir.path(),
            "",
            &config(dir.path(), &root, port, create_full_put_path),
            port,
        );
        Dav {
            base: format!("http://127.0.0.1:{port}"),
            root,
            dir,
            daemon,
        }
    }

    /// `http://127.0.0.1:PORT/PATH`
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Waits until `file` has been published (fails the test after 20 s).
    pub fn wait_for(&self, file: &Path) {
        self.daemon
            .wait_until(|| file.exists(), &format!("{} to appear", file.display()));
    }

    /// Kills nginx, as a crash would.
    pub fn stop(&self) {
        self.daemon.stop();
    }

    /// The requests served so far, in the order they ended.
    pub fn requests(&self) -> Vec<Request> {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [end, took, method, path, status] = fields[..] else {
                    panic!("unexpected access-log line: {line}");
                };
                let end: f64 = end.parse().unwrap();
                Request {
                    start: end - took.parse::<f64>().unwrap(),
                    end,
                    method: method.to_owned(),
                    path: path.to_owned(),
                    status: status.parse().unwrap(),
                }
            })
            .collect()
    }
}

/// The `http` block: a document root that takes PUT, DELETE and MKCOL, and an access log of
/// when each request ended and how long it took.
fn config(dir: &Path, root: &Path, port: u16, create_full_put_path: bool) -> String {
    let dir = dir.display();
    let root = root.display();
    let full_path = if create_full_put_path { "on" } else { "off" };
    format!(
        r#"http {{
    log_format order '$msec $request_time $request_method $uri $status';
    access_log {dir}/access.log order;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        client_max_body_size 0;
        location / {{
            dav_methods PUT DELETE MKCOL;
            create_full_put_path {full_path};
            dav_access user:rw group:r all:r;
        }}
        location /readonly/ {{
        }}
    }}
}}
"#
    )
}
