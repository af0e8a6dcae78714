//! A WebDAV-style HTTP destination (nginx's dav module, origin ingest servers): files by `PUT`,
//! removals by `DELETE`. Not every server makes missing folders for a `PUT` (WebDAV answers 409
//! Conflict, nginx without `create_full_put_path` 500), so before the first file into a folder
//! the folders on the way are made with `MKCOL`. A server that does not know `MKCOL`, or makes
//! folders itself, may refuse it: the `PUT` then tells whether the file got there.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use ureq::http::{Method, Request, Response, StatusCode};

use super::{PublishOptions, Store, content_type};
use crate::output::retry::Failure;

pub(super) struct HttpStore {
    /// Ends in `/`.
    base: String,
    agent: ureq::Agent,
    /// Folders known to exist (their URLs, ending in `/`).
    folders: Mutex<HashSet<String>>,
}

impl HttpStore {
    pub fn new(base: &str, options: &PublishOptions) -> HttpStore {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .allow_non_standard_methods(true)
            .timeout_global(Some(options.timeout))
            .timeout_connect(Some(Duration::from_secs(10)))
            .build()
            .into();
        HttpStore {
            base: base.to_owned(),
            agent,
            folders: Mutex::new(HashSet::new()),
        }
    }

    fn send_put(&self, relative: &str, body: &Bytes) -> Result<StatusCode, Failure> {
        let response = self
            .agent
            .put(self.url(relative))
            .header("Content-Type", content_type(relative))
            .send(&body[..]);
        status(response)
    }

    /// Makes every folder on the way to `url` not tried yet, from the top down. No answer is a
    /// failure: 201 made it, 405 means it exists, and a server that refuses `MKCOL` may still take
    /// the `PUT`.
    fn make_folders(&self, url: &str) {
        let path_start = url.find("://").map_or(0, |i| i + 3);
        let path_start = url[path_start..].find('/').map_or(url.len(), |i| path_start + i);
        for (end, _) in url.match_indices('/').filter(|(end, _)| *end > path_start) {
            let folder = &url[..=end];
            if self.folders.lock().expect("folder set lock").contains(folder) {
                continue;
            }
            let Ok(request) = Request::builder()
                .method(Method::from_bytes(b"MKCOL").expect("a valid method name"))
                .uri(folder)
                .body(())
            else {
                return;
            };
            // Any answer settles the folder (made, there already, or left to the PUT); no answer
            // leaves it to be tried again with the next file.
            if status(self.agent.run(request)).is_err() {
                return;
            }
            self.folders.lock().expect("folder set lock").insert(folder.to_owned());
        }
    }
}

impl Store for HttpStore {
    fn url(&self, relative: &str) -> String {
        format!("{}{relative}", self.base)
    }

    fn put(&self, relative: &str, body: &Bytes) -> Result<(), Failure> {
        self.make_folders(&self.url(relative));
        success(self.send_put(relative, body)?)
    }

    fn delete(&self, relative: &str) -> Result<(), Failure> {
        match status(self.agent.delete(self.url(relative)).call())? {
            StatusCode::NOT_FOUND => Ok(()),
            answer => success(answer),
        }
    }
}

/// The status of a response, its body read off so the connection can be used again; a request
/// that got no response may succeed when tried again.
fn status(response: Result<Response<ureq::Body>, ureq::Error>) -> Result<StatusCode, Failure> {
    let mut response = response.map_err(|e| Failure::transient(e.to_string()))?;
    // The body (an error page, at most) tells nothing the status does not.
    let _ = response.body_mut().read_to_vec();
    Ok(response.status())
}

fn success(status: StatusCode) -> Result<(), Failure> {
    if status.is_success() {
        Ok(())
    } else {
        Err(Failure::status(status))
    }
}
