//! Publishing a package while it is made: every file goes to each remote destination as soon as
//! it is complete, manifests only once what they name is there.
//!
//! A destination is a local folder (built in a staging folder and renamed into place: see
//! [`crate::output::staging`]), a WebDAV-style HTTP server (`http(s)://host/path/`: files by `PUT`,
//! removals by `DELETE`) or a bucket of object storage (`s3://`, `gs://` or
//! `az://bucket/prefix/`, with the object_store crate; credentials from each cloud's standard
//! environment variables).
//!
//! A [`Publisher`] fans out to every remote destination. Each destination has its own queue and
//! `concurrency` uploads in flight. The order it keeps, at every destination:
//!
//! - files given one after another are uploaded concurrently, in any order;
//! - a manifest or a removal is carried out only once everything given before it is done at
//!   that destination, and before anything given after it starts;
//! - once anything fails for good (after retries) at any destination, nothing more is carried out
//!   anywhere.
//!
//! So a manifest is never visible before the files it names, a removed segment has left the
//! playlist first, and a failed job publishes no manifest naming a file that is missing.

mod cloud;
mod http;
mod lane;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::location::{Cloud, Location};
use crate::output::retry::{Failure, RetryPolicy};
use lane::{Lane, Op, Shared};

pub(crate) use cloud::BucketStore;
pub use cloud::fetch;

/// Where `-o` puts a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A folder on this machine.
    Local(PathBuf),
    Remote(Remote),
}

/// A destination on another machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// A WebDAV-style server: files by `PUT` below this URL (which ends in `/`), removals by `DELETE`.
    Http(String),
    /// A bucket (an Azure container) of object storage, objects named `prefix` + the file's path
    /// in the package (`prefix` is empty or ends in `/`).
    Bucket {
        cloud: Cloud,
        bucket: String,
        prefix: String,
    },
}

impl FromStr for Destination {
    type Err = Error;

    /// `http(s)://host/path/` and `s3://`, `gs://` or `az://bucket/prefix/` are remote (a missing
    /// final `/` is added: the URL names a folder); anything without a `scheme://` is a local path.
    fn from_str(value: &str) -> Result<Destination> {
        let remote = match Location::parse(value) {
            Location::File(path) => return Ok(Destination::Local(path)),
            Location::Http(url) => http_destination(&url)?,
            Location::Cloud { cloud, bucket, .. } if bucket.is_empty() => {
                return Err(Error::Usage(format!(
                    "{value}: no bucket: give {cloud}://bucket/prefix/"
                )));
            }
            Location::Cloud { cloud, bucket, key } => Remote::Bucket {
                cloud,
                bucket,
                prefix: folder(&key),
            },
            other => {
                return Err(Error::Usage(format!(
                    "{value}: stream-pack publishes to a folder, http(s)://, s3://, gs:// or az://, not {}://",
                    other.scheme().unwrap_or_default()
                )));
            }
        };
        Ok(Destination::Remote(remote))
    }
}

/// A WebDAV-style destination: a URL with a host and a path (the folder), without a query.
fn http_destination(url: &str) -> Result<Remote> {
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| Error::Usage(format!("{url}: not a usable URL ({e})")))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some(scheme), Some(authority)) if uri.host().is_some_and(|h| !h.is_empty()) && uri.query().is_none() => {
            Ok(Remote::Http(format!("{scheme}://{authority}/{}", folder(uri.path()))))
        }
        _ => Err(Error::Usage(format!(
            "{url}: give a URL with a host and a path, without a query"
        ))),
    }
}

/// A path as a folder of objects: empty, or ending in `/`.
fn folder(path: &str) -> String {
    match path.trim_matches('/') {
        "" => String::new(),
        inner => format!("{inner}/"),
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Http(base) => f.write_str(base),
            Remote::Bucket { cloud, bucket, prefix } => write!(f, "{cloud}://{bucket}/{prefix}"),
        }
    }
}

/// The one local folder (if any) and the remote destinations of a job's `-o` values. More than one
/// local folder, or none at all, is refused.
pub fn split(destinations: Vec<Destination>) -> Result<(Option<PathBuf>, Vec<Remote>)> {
    let mut local: Option<PathBuf> = None;
    let mut remotes = Vec::new();
    for destination in destinations {
        match destination {
            Destination::Local(path) => {
                if let Some(first) = &local {
                    return Err(Error::InvalidOption {
                        option: "output",
                        reason: format!(
                            "{}: only one local folder per job (the first was {})",
                            path.display(),
                            first.display()
                        ),
                    });
                }
                local = Some(path);
            }
            Destination::Remote(remote) => remotes.push(remote),
        }
    }
    if local.is_none() && remotes.is_empty() {
        return Err(Error::Usage("no destination: give -o".into()));
    }
    Ok((local, remotes))
}

/// How publishing runs.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Uploads in flight at once, per destination.
    pub concurrency: usize,
    /// How failures that may pass (connection errors, 5xx, 408, 429) are retried.
    pub retry: RetryPolicy,
    /// The most one request may take.
    pub timeout: Duration,
    /// For `s3://`: the URL of a non-AWS server (`http://127.0.0.1:3900`); otherwise AWS, or
    /// `AWS_ENDPOINT` when set.
    pub s3_endpoint: Option<String>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            concurrency: 4,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(120),
            s3_endpoint: None,
        }
    }
}

/// Where a job's package goes besides, or instead of, its local folder.
#[derive(Debug, Clone, Default)]
pub struct Publishing {
    pub remotes: Vec<Remote>,
    pub options: PublishOptions,
    /// No local copy: the package is built in a temporary folder, deleted at the end.
    pub remote_only: bool,
}

impl Publishing {
    /// A publisher for the remote destinations, if there are any.
    pub fn start(&self) -> Result<Option<Publisher>> {
        match self.remotes.as_slice() {
            [] => Ok(None),
            remotes => Publisher::start(remotes, &self.options).map(Some),
        }
    }
}

/// What has been published so far, every destination together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PublishCounts {
    /// Files and manifests uploaded (a file sent to two destinations counts twice).
    pub uploads: u64,
    /// Bytes of those uploads.
    pub bytes: u64,
    /// Files removed.
    pub deletes: u64,
    /// Attempts that failed and were tried again.
    pub retries: u64,
}

/// One place a publisher sends to: it puts and deletes files named by their path in the package.
pub(crate) trait Store: Send + Sync {
    /// The full URL of a file of the package, for messages.
    fn url(&self, relative: &str) -> String;
    fn put(&self, relative: &str, body: &Bytes) -> Result<(), Failure>;
    /// Removes a file; one that is already gone counts as removed.
    fn delete(&self, relative: &str) -> Result<(), Failure>;
}

/// Publishes one job's files and manifests to every remote destination; see the module's notes
/// for the order it keeps. Dropping it without [`Publisher::finish`] stops publishing: what is
/// queued is left undone.
pub struct Publisher {
    lanes: Vec<Lane>,
    shared: Arc<Shared>,
}

impl Publisher {
    /// Starts a queue and `options.concurrency` uploaders for every destination.
    pub fn start(destinations: &[Remote], options: &PublishOptions) -> Result<Publisher> {
        if options.concurrency == 0 {
            return Err(Error::InvalidOption {
                option: "concurrency",
                reason: "0: must be at least 1".into(),
            });
        }
        let shared = Arc::new(Shared::new(options.retry));
        let lanes = destinations
            .iter()
            .map(|destination| {
                let store: Box<dyn Store> = match destination {
                    Remote::Http(base) => Box::new(http::HttpStore::new(base, options)),
                    Remote::Bucket { cloud, bucket, prefix } => {
                        Box::new(cloud::BucketStore::new(*cloud, bucket, prefix, options)?)
                    }
                };
                Lane::start(store, Arc::clone(&shared), options.concurrency)
            })
            .collect::<Result<_>>()?;
        Ok(Publisher { lanes, shared })
    }

    /// A complete file of the package at `local`, to appear as `relative` (`720p/segment00003.ts`)
    /// at every destination. It is read now (so it may be removed once this returns) and uploaded
    /// in the background; this blocks only while a destination has `concurrency` uploads queued
    /// already. An error once anything has failed for good, so the job stops early.
    pub fn file(&self, relative: &str, local: &Path) -> Result<()> {
        self.shared.check()?;
        let body = Bytes::from(std::fs::read(local).map_err(Error::io(local))?);
        self.send(|| Op::File {
            relative: relative.to_owned(),
            body: body.clone(),
        })
    }

    /// A manifest (playlist or MPD), published at each destination once every file given before
    /// it is there. A later call for the same `relative` replaces it (live playlists).
    pub fn manifest(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        let body = Bytes::from(bytes);
        self.send(|| Op::Manifest {
            relative: relative.to_owned(),
            body: body.clone(),
        })
    }

    /// Removes `relative` at every destination once everything given before it is done there
    /// (a live segment that left the window, after the playlist without it).
    pub fn delete(&self, relative: &str) -> Result<()> {
        self.send(|| Op::Delete {
            relative: relative.to_owned(),
        })
    }

    /// The URLs `relative` is published at.
    pub fn urls(&self, relative: &str) -> Vec<String> {
        self.lanes.iter().map(|lane| lane.url(relative)).collect()
    }

    /// What has been published so far.
    pub fn counts(&self) -> PublishCounts {
        self.shared.counts()
    }

    /// Waits until everything given is published; the first failure that retries could not fix.
    pub fn finish(mut self) -> Result<PublishCounts> {
        for lane in &mut self.lanes {
            lane.close();
        }
        self.shared.check()?;
        Ok(self.shared.counts())
    }

    fn send(&self, op: impl Fn() -> Op) -> Result<()> {
        self.shared.check()?;
        for lane in &self.lanes {
            lane.send(op());
        }
        Ok(())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shared.stop();
        for lane in &mut self.lanes {
            lane.close();
        }
    }
}

/// The `Content-Type` of a file of a package, by its extension.
fn content_type(relative: &str) -> &'static str {
    match relative.rsplit_once('.').map(|(_, extension)| extension) {
        Some("m3u8") => "application/vnd.apple.mpegurl",
        Some("mpd") => "application/dash+xml",
        Some("ts") => "video/mp2t",
        Some("m4s") => "video/iso.segment",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(value: &str) -> Remote {
        match value.parse::<Destination>().unwrap() {
            Destination::Remote(remote) => remote,
            Destination::Local(path) => panic!("{value} parsed as the local {}", path.display()),
        }
    }

    #[test]
    fn destinations_parse() {
        assert_eq!(
            "out/pkg".parse::<Destination>().unwrap(),
            Destination::Local("out/pkg".into())
        );
        assert_eq!(
            remote("http://127.0.0.1:8080/live/pkg"),
            Remote::Http("http://127.0.0.1:8080/live/pkg/".into())
        );
        assert_eq!(
            remote("https://cdn.example/"),
            Remote::Http("https://cdn.example/".into())
        );
        assert_eq!(
            remote("s3://bucket/a/b/"),
            Remote::Bucket {
                cloud: Cloud::S3,
                bucket: "bucket".into(),
                prefix: "a/b/".into()
            }
        );
        assert_eq!(
            remote("s3://bucket"),
            Remote::Bucket {
                cloud: Cloud::S3,
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            remote("gs://bucket/a/b"),
            Remote::Bucket {
                cloud: Cloud::Gcs,
                bucket: "bucket".into(),
                prefix: "a/b/".into()
            }
        );
        assert_eq!(remote("AZ://media/live/").to_string(), "az://media/live/");
        for bad in [
            "ftp://host/x",
            "s3:///prefix",
            "gs://",
            "az:///x",
            "http:///x",
            "http://host/x?a=b",
        ] {
            assert!(
                matches!(bad.parse::<Destination>(), Err(Error::Usage(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn one_local_folder_at_most() {
        let parse = |values: &[&str]| split(values.iter().map(|v| v.parse().unwrap()).collect());
        let (local, remotes) = parse(&["out", "s3://b/p/", "http://h/p/"]).unwrap();
        assert_eq!(local, Some(PathBuf::from("out")));
        assert_eq!(remotes.len(), 2);
        assert!(matches!(
            parse(&["a", "b"]),
            Err(Error::InvalidOption { option: "output", .. })
        ));
        assert!(matches!(parse(&[]), Err(Error::Usage(_))));
    }
}
