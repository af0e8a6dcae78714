//! Chunk downloads for `concat-flv --list`: N at a time, each retried with exponential backoff
//! when the failure may pass (a connection error, a 5xx, 408 or 429; see [`crate::output::retry`]),
//! streamed to disk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::output::retry::{Failure, RetryPolicy, retry};

/// How downloads run.
#[derive(Debug, Clone, Copy)]
pub struct DownloadOptions {
    /// Downloads at once.
    pub jobs: usize,
    /// Further attempts after a failure that may pass.
    pub retries: u32,
    /// The wait before the first retry; each later one waits about twice as long (with jitter).
    pub backoff: Duration,
    /// The most a single attempt may take.
    pub timeout: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            jobs: 4,
            retries: 3,
            backoff: Duration::from_millis(500),
            timeout: Duration::from_secs(120),
        }
    }
}

/// The most a list of chunk URLs may hold: some 100,000 URLs.
const LIST_LIMIT: u64 = 16 << 20;

/// The URLs of a list file: one per line; blank lines and lines starting with `#` are skipped.
pub fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = crate::input::sidefile::read_text(path, LIST_LIMIT).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::InputMissing { path: path.to_owned() },
        std::io::ErrorKind::FileTooLarge => Error::InvalidOption {
            option: "list",
            reason: format!("{}: {e}", path.display()),
        },
        std::io::ErrorKind::InvalidData => Error::InputUnreadable {
            path: path.to_owned(),
            reason: "not a text file of URLs".into(),
        },
        _ => Error::Io {
            path: path.to_owned(),
            source: e,
        },
    })?;
    let urls: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if urls.is_empty() {
        return Err(Error::InputEmpty { path: path.to_owned() });
    }
    if let Some((number, bad)) = urls
        .iter()
        .enumerate()
        .find(|(_, url)| !matches!(Location::parse(url), Location::Http(_)))
    {
        return Err(Error::InputCorrupt {
            path: path.to_owned(),
            reason: format!("URL {} is not http(s): {bad}", number + 1),
        });
    }
    Ok(urls)
}

/// Downloads every URL into `dir` as `chunk00000.flv`, `chunk00001.flv`… and returns the files
/// in the list's order. The first download that fails for good stops the rest.
pub fn download_all(urls: &[String], dir: &Path, options: DownloadOptions) -> Result<Vec<PathBuf>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(options.timeout))
        .build()
        .into();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<(usize, Error)>> = Mutex::new(None);
    let paths: Vec<PathBuf> = (0..urls.len()).map(|i| dir.join(format!("chunk{i:05}.flv"))).collect();
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.clamp(1, urls.len()) {
            scope.spawn(|| {
                while !failed.load(Ordering::SeqCst) {
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    let Some(url) = urls.get(index) else { break };
                    if let Err(error) = fetch(&agent, url, &paths[index], options, &failed) {
                        failed.store(true, Ordering::SeqCst);
                        let mut slot = first_error.lock().expect("error slot");
                        // Report the failure earliest in the list, whichever thread saw it first.
                        if slot.as_ref().is_none_or(|(at, _)| index < *at) {
                            *slot = Some((index, error));
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().expect("error slot") {
        Some((_, error)) => Err(error),
        None => Ok(paths),
    }
}

fn fetch(agent: &ureq::Agent, url: &str, path: &Path, options: DownloadOptions, stop: &AtomicBool) -> Result<()> {
    let policy = RetryPolicy {
        attempts: options.retries + 1,
        first_wait: options.backoff,
    };
    retry(
        policy,
        stop,
        || attempt_once(agent, url, path),
        |failure, wait| {
            tracing::info!("{url}: {}; trying again in {wait:.2?}", failure.reason);
        },
    )
    .map_err(|failure| Error::Remote {
        url: url.to_owned(),
        reason: failure.reason,
    })
}

fn attempt_once(agent: &ureq::Agent, url: &str, path: &Path) -> Result<(), Failure> {
    let mut response = agent.get(url).call().map_err(|e| Failure::transient(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure::status(status));
    }
    let mut file = std::fs::File::create(path).map_err(|e| Failure::permanent(format!("{}: {e}", path.display())))?;
    // Streamed to disk; the reader fails if the body ends before its Content-Length.
    std::io::copy(&mut response.body_mut().as_reader(), &mut file)
        .map_err(|e| Failure::transient(format!("the download broke off: {e}")))?;
    Ok(())
}
