//! One destination's queue: a dispatcher thread takes operations in the order given and hands
//! files to `concurrency` uploaders; a manifest or a removal waits until the uploads in flight are
//! done and is carried out alone.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;

use super::{PublishCounts, Store};
use crate::error::{Error, Result};
use crate::output::retry::{Failure, RetryPolicy, retry};

pub(super) enum Op {
    File { relative: String, body: Bytes },
    Manifest { relative: String, body: Bytes },
    Delete { relative: String },
}

impl Op {
    fn relative(&self) -> &str {
        match self {
            Op::File { relative, .. } | Op::Manifest { relative, .. } | Op::Delete { relative } => relative,
        }
    }

    /// Whether it waits for everything before it and holds back everything after it.
    fn is_barrier(&self) -> bool {
        !matches!(self, Op::File { .. })
    }

    fn apply(&self, store: &dyn Store) -> Result<(), Failure> {
        match self {
            Op::File { relative, body } | Op::Manifest { relative, body } => store.put(relative, body),
            Op::Delete { relative } => store.delete(relative),
        }
    }
}

/// What every destination's queue shares: the counts, and the first failure, which stops them all.
pub(super) struct Shared {
    retry: RetryPolicy,
    stop: AtomicBool,
    failure: Mutex<Option<(String, String)>>,
    uploads: AtomicU64,
    bytes: AtomicU64,
    deletes: AtomicU64,
    retries: AtomicU64,
}

impl Shared {
    pub fn new(retry: RetryPolicy) -> Shared {
        Shared {
            retry,
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            uploads: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// Nothing more is carried out, anywhere.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The first failure, if anything has failed for good.
    pub fn check(&self) -> Result<()> {
        match &*self.failure.lock().expect("publish failure lock") {
            Some((url, reason)) => Err(Error::Publish {
                url: url.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    pub fn counts(&self) -> PublishCounts {
        PublishCounts {
            uploads: self.uploads.load(Ordering::SeqCst),
            bytes: self.bytes.load(Ordering::SeqCst),
            deletes: self.deletes.load(Ordering::SeqCst),
            retries: self.retries.load(Ordering::SeqCst),
        }
    }

    fn fail(&self, url: String, reason: String) {
        self.failure
            .lock()
            .expect("publish failure lock")
            .get_or_insert((url, reason));
        self.stop();
    }

    /// Carries out `op` with retries, unless publishing has stopped; a failure stops it.
    fn run(&self, store: &dyn Store, op: &Op) {
        if self.stop.load(Ordering::SeqCst) {
            return;
        }
        let outcome = retry(
            self.retry,
            &self.stop,
            || op.apply(store),
            |failure, wait| {
                self.retries.fetch_add(1, Ordering::SeqCst);
                tracing::info!(
                    "{}: {}; trying again in {wait:.2?}",
                    store.url(op.relative()),
                    failure.reason
                );
            },
        );
        match (outcome, op) {
            (Ok(()), Op::File { body, .. } | Op::Manifest { body, .. }) => {
                self.uploads.fetch_add(1, Ordering::SeqCst);
                self.bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
            }
            (Ok(()), Op::Delete { .. }) => {
                self.deletes.fetch_add(1, Ordering::SeqCst);
            }
            (Err(failure), _) => {
                let verb = if let Op::Delete { .. } = op {
                    "removal"
                } else {
                    "upload"
                };
                self.fail(store.url(op.relative()), format!("{verb} failed: {}", failure.reason));
            }
        }
    }
}

/// A destination's queue and its dispatcher thread.
pub(super) struct Lane {
    /// The destination's URL, ending in `/`.
    base: String,
    ops: Option<SyncSender<Op>>,
    dispatcher: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Lane {
    /// Starts the dispatcher; the queue holds `concurrency` operations beyond those in flight.
    pub fn start(store: Box<dyn Store>, shared: Arc<Shared>, concurrency: usize) -> Result<Lane> {
        let (ops, queue) = mpsc::sync_channel(concurrency);
        let for_thread = Arc::clone(&shared);
        let base = store.url("");
        let url = base.clone();
        let dispatcher = std::thread::Builder::new()
            .name("publish".into())
            .spawn(move || dispatch(queue, &*store, &for_thread, concurrency))
            .map_err(|e| Error::Publish {
                url,
                reason: format!("starting a publishing thread: {e}"),
            })?;
        Ok(Lane {
            base,
            ops: Some(ops),
            dispatcher: Some(dispatcher),
            shared,
        })
    }

    pub fn url(&self, relative: &str) -> String {
        format!("{}{relative}", self.base)
    }

    /// Queues `op`, waiting while the queue is full.
    pub fn send(&self, op: Op) {
        if let Some(ops) = &self.ops
            && ops.send(op).is_err()
        {
            self.shared
                .fail("publishing".into(), "a publishing thread stopped unexpectedly".into());
        }
    }

    /// Ends the queue and waits until what it holds is done (or skipped, once stopped).
    pub fn close(&mut self) {
        self.ops = None;
        if let Some(dispatcher) = self.dispatcher.take()
            && dispatcher.join().is_err()
        {
            self.shared
                .fail("publishing".into(), "a publishing thread stopped unexpectedly".into());
        }
    }
}

/// Takes operations in order until the queue ends: files go to the uploaders, at most
/// `concurrency` at once; a barrier waits for them all and runs here, alone.
fn dispatch(queue: Receiver<Op>, store: &dyn Store, shared: &Shared, concurrency: usize) {
    let (work, jobs) = mpsc::channel::<Op>();
    let (done, finished) = mpsc::channel::<()>();
    let jobs = Mutex::new(jobs);
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            let done = done.clone();
            let jobs = &jobs;
            scope.spawn(move || {
                loop {
                    // The lock is held only to take a job, not while it runs.
                    let job = jobs.lock().expect("publish job queue lock").recv();
                    let Ok(op) = job else { break };
                    shared.run(store, &op);
                    if done.send(()).is_err() {
                        break;
                    }
                }
            });
        }
        // Only the uploaders hold `done` now: should they all die, waiting for them ends.
        drop(done);
        let mut in_flight = 0;
        for op in queue {
            let allowed = if op.is_barrier() { 0 } else { concurrency - 1 };
            while in_flight > allowed && finished.recv().is_ok() {
                in_flight -= 1;
            }
            if op.is_barrier() {
                shared.run(store, &op);
            } else if work.send(op).is_ok() {
                in_flight += 1;
            }
        }
        drop(work);
    });
}
