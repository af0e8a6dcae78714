//! An S3-compatible destination, and S3 inputs, with the object_store crate. object_store is
//! async: each store owns a small tokio runtime and the publishing threads block on it, so tokio
//! stays inside this file. Retries are object_store's own, set to the job's policy (it retries
//! connection errors, 5xx, 408 and 429 with backoff and jitter, logging each with tracing).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
    RetryConfig,
};

use super::{PublishOptions, Store, content_type};
use crate::error::{Error, Result};
use crate::retry::Failure;

pub(super) struct S3Store {
    store: AmazonS3,
    bucket: String,
    /// Empty or ends in `/`.
    prefix: String,
    runtime: tokio::runtime::Runtime,
}

impl S3Store {
    pub fn new(bucket: &str, prefix: &str, options: &PublishOptions) -> Result<S3Store> {
        Ok(S3Store {
            store: client(bucket, options)?,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            runtime: runtime(&format!("s3://{bucket}/{prefix}"))?,
        })
    }

    fn key(&self, relative: &str) -> Result<ObjectPath, Failure> {
        ObjectPath::parse(format!("{}{relative}", self.prefix))
            .map_err(|e| Failure::permanent(format!("not a usable object name: {e}")))
    }
}

impl Store for S3Store {
    fn url(&self, relative: &str) -> String {
        format!("s3://{}/{}{relative}", self.bucket, self.prefix)
    }

    fn put(&self, relative: &str, body: &Bytes) -> Result<(), Failure> {
        let key = self.key(relative)?;
        let options = PutOptions {
            attributes: Attributes::from_iter([(Attribute::ContentType, content_type(relative))]),
            ..PutOptions::default()
        };
        self.runtime
            .block_on(self.store.put_opts(&key, PutPayload::from(body.clone()), options))
            .map(drop)
            .map_err(failure)
    }

    fn delete(&self, relative: &str) -> Result<(), Failure> {
        let key = self.key(relative)?;
        match self.runtime.block_on(self.store.delete(&key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failure(e)),
        }
    }
}

/// A client for `bucket` from the standard AWS environment variables (credentials, region,
/// `AWS_ENDPOINT`), `options.s3_endpoint` overriding the endpoint; requests name the bucket in
/// the path, which every S3-compatible server understands.
fn client(bucket: &str, options: &PublishOptions) -> Result<AmazonS3> {
    // Without a key, object_store asks AWS's instance metadata service, which no other server
    // has: say what is missing instead of failing on the metadata service's address.
    if let Some(endpoint) = &options.s3_endpoint
        && std::env::var_os("AWS_ACCESS_KEY_ID").is_none_or(|key| key.is_empty())
    {
        return Err(Error::InvalidOption(format!(
            "s3://{bucket}/ at {endpoint}: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )));
    }
    let policy = options.retry;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_virtual_hosted_style_request(false)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: policy.first_wait,
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: policy.attempts.saturating_sub(1) as usize,
            retry_timeout: options.timeout,
        })
        .with_client_options(ClientOptions::new().with_timeout(options.timeout));
    if let Some(endpoint) = &options.s3_endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    builder
        .build()
        .map_err(|e| Error::InvalidOption(format!("s3://{bucket}/: {}", one_line(&e))))
}

fn runtime(destination: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("s3")
        .enable_all()
        .build()
        .map_err(|e| Error::Publish {
            url: destination.to_owned(),
            reason: format!("starting the S3 client: {e}"),
        })
}

/// object_store has retried already what may pass: what it returns is final.
fn failure(error: object_store::Error) -> Failure {
    Failure::permanent(one_line(&error))
}

/// An error and its causes on one line, without the XML of an S3 error body.
fn one_line(error: &dyn std::error::Error) -> String {
    let text = error.to_string();
    let text = match text.find("<?xml") {
        Some(start) => text[..start].trim_end().trim_end_matches(':').to_owned(),
        None => text,
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Downloads `s3://bucket/key` to `target` in pieces, calling `progress(done, total)` after each.
pub fn fetch(url: &str, target: &Path, options: &PublishOptions, mut progress: impl FnMut(u64, u64)) -> Result<()> {
    let remote = |reason: String| Error::Remote {
        url: url.to_owned(),
        reason,
    };
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
        .ok_or_else(|| remote("give s3://bucket/key".into()))?;
    let store = client(bucket, options)?;
    let runtime = runtime(url)?;
    let key = ObjectPath::parse(key).map_err(|e| remote(format!("not a usable object name: {e}")))?;
    let size = runtime
        .block_on(store.head(&key))
        .map_err(|e| remote(one_line(&e)))?
        .size;
    let mut file = std::fs::File::create(target).map_err(Error::io(target))?;
    const PIECE: u64 = 8 << 20;
    let mut done = 0;
    while done < size {
        let end = (done + PIECE).min(size);
        let piece = runtime
            .block_on(store.get_range(&key, done..end))
            .map_err(|e| remote(one_line(&e)))?;
        file.write_all(&piece).map_err(Error::io(target))?;
        done = end;
        progress(done, size);
    }
    file.sync_all().map_err(Error::io(target))
}
