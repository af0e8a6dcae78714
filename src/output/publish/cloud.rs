//! Object storage as destinations and inputs: S3 (and S3-compatible servers), Google Cloud
//! Storage and Azure Blob Storage, all through the object_store crate, so one store serves every
//! cloud. object_store is async: each store owns a small tokio runtime and the publishing threads
//! block on it, so tokio stays inside this file. Retries are object_store's own, set to the job's
//! policy (it retries connection errors, 5xx, 408 and 429 with backoff and jitter, logging each
//! with tracing).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientConfigKey, GetOptions, ObjectStore, ObjectStoreExt, PutOptions,
    PutPayload, RetryConfig,
};

use super::{PublishOptions, Store, content_type};
use crate::error::{Error, Result};
use crate::location::Cloud;
use crate::output::retry::Failure;

/// The environment variables a client of this cloud needs, for messages.
fn credentials(cloud: Cloud) -> &'static str {
    match cloud {
        Cloud::S3 => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        Cloud::Gcs => "GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_SERVICE_ACCOUNT or GOOGLE_SERVICE_ACCOUNT_KEY",
        Cloud::Azure => "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY, or AZURE_STORAGE_USE_EMULATOR=true",
    }
}

pub(crate) struct BucketStore {
    store: Box<dyn ObjectStore>,
    /// `scheme://bucket/prefix`, for messages.
    base: String,
    /// Empty or ends in `/`.
    prefix: String,
    runtime: tokio::runtime::Runtime,
}

impl BucketStore {
    pub fn new(cloud: Cloud, bucket: &str, prefix: &str, options: &PublishOptions) -> Result<BucketStore> {
        let base = format!("{cloud}://{bucket}/{prefix}");
        Ok(BucketStore {
            store: client(cloud, bucket, options)?,
            runtime: runtime(&base)?,
            base,
            prefix: prefix.to_owned(),
        })
    }

    fn key(&self, relative: &str) -> Result<ObjectPath, Failure> {
        ObjectPath::parse(format!("{}{relative}", self.prefix))
            .map_err(|e| Failure::permanent(format!("not a usable object name: {e}")))
    }
}

impl Store for BucketStore {
    fn url(&self, relative: &str) -> String {
        format!("{}{relative}", self.base)
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

impl BucketStore {
    /// The object named `relative`, or `None` where there is none.
    pub fn get(&self, relative: &str) -> Result<Option<Bytes>, Failure> {
        let key = self.key(relative)?;
        let got = self.runtime.block_on(async {
            let object = self.store.get_opts(&key, GetOptions::default()).await?;
            object.bytes().await
        });
        match got {
            Ok(bytes) => Ok(Some(bytes)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failure(e)),
        }
    }

    /// The names, as [`Store::put`] takes them, of every object below the folder `relative`.
    pub fn list(&self, relative: &str) -> Result<Vec<String>, Failure> {
        let mut names = Vec::new();
        let mut folders = vec![self.key(relative)?];
        while let Some(folder) = folders.pop() {
            let listed = self
                .runtime
                .block_on(self.store.list_with_delimiter(Some(&folder)))
                .map_err(failure)?;
            folders.extend(listed.common_prefixes);
            names.extend(listed.objects.iter().filter_map(|object| {
                let name: &str = object.location.as_ref();
                name.strip_prefix(&self.prefix).map(str::to_owned)
            }));
        }
        Ok(names)
    }
}

/// A client for `bucket` configured from the cloud's standard environment variables
/// (credentials, region, endpoints, emulators), with the job's retries and timeout.
fn client(cloud: Cloud, bucket: &str, options: &PublishOptions) -> Result<Box<dyn ObjectStore>> {
    let refused = |reason: String| Error::Usage(format!("{cloud}://{bucket}/: {reason}"));
    let timeout = humantime::format_duration(options.timeout).to_string();
    let built = match cloud {
        Cloud::S3 => {
            // Without a key, object_store asks AWS's instance metadata service, which no other
            // server has: say what is missing instead of failing on the metadata service's address.
            if let Some(endpoint) = &options.s3_endpoint
                && std::env::var_os("AWS_ACCESS_KEY_ID").is_none_or(|key| key.is_empty())
            {
                return Err(refused(format!(
                    "at {endpoint}: no credentials: set {}",
                    credentials(cloud)
                )));
            }
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                // Requests name the bucket in the path, which every S3-compatible server understands.
                .with_virtual_hosted_style_request(false)
                .with_retry(retry_config(options))
                .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), timeout);
            if let Some(endpoint) = &options.s3_endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"));
            }
            builder.build().map(|store| Box::new(store) as Box<dyn ObjectStore>)
        }
        Cloud::Gcs => GoogleCloudStorageBuilder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry_config(options))
            .with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), timeout)
            .build()
            .map(|store| Box::new(store) as Box<dyn ObjectStore>),
        Cloud::Azure => MicrosoftAzureBuilder::from_env()
            .with_container_name(bucket)
            .with_retry(retry_config(options))
            .with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), timeout)
            .build()
            .map(|store| Box::new(store) as Box<dyn ObjectStore>),
    };
    built.map_err(|e| refused(format!("{}; set {}", one_line(&e), credentials(cloud))))
}

fn retry_config(options: &PublishOptions) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: options.retry.first_wait,
            max_backoff: Duration::from_secs(15),
            base: 2.0,
        },
        max_retries: options.retry.attempts.saturating_sub(1) as usize,
        retry_timeout: options.timeout,
    }
}

fn runtime(destination: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("object-store")
        .enable_all()
        .build()
        .map_err(|e| Error::Publish {
            url: destination.to_owned(),
            reason: format!("starting the storage client: {e}"),
        })
}

/// object_store has retried already what may pass: what it returns is final.
fn failure(error: object_store::Error) -> Failure {
    Failure::permanent(one_line(&error))
}

/// An error and its causes on one line, without the XML of an S3 or Azure error body.
fn one_line(error: &dyn std::error::Error) -> String {
    let text = error.to_string();
    let text = match text.find("<?xml") {
        Some(start) => text[..start].trim_end().trim_end_matches(':').to_owned(),
        None => text,
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Downloads the object `key` of `bucket` to `target` in pieces (each within the request
/// timeout), calling `progress(done, total)` after each. Every piece after the first must come
/// from the same version of the object, so one replaced meanwhile is an error rather than a mix
/// of two.
pub fn fetch(
    cloud: Cloud,
    bucket: &str,
    key: &str,
    target: &Path,
    options: &PublishOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<()> {
    let url = format!("{cloud}://{bucket}/{key}");
    let remote = |reason: String| Error::Remote {
        url: url.clone(),
        reason,
    };
    let store = client(cloud, bucket, options)?;
    let runtime = runtime(&url)?;
    let key = ObjectPath::parse(key).map_err(|e| remote(format!("not a usable object name: {e}")))?;
    let mut file = std::fs::File::create(target).map_err(Error::io(target))?;
    const PIECE: u64 = 8 << 20;
    let (mut done, mut size, mut version) = (0, u64::MAX, None);
    while done < size {
        let piece = GetOptions {
            range: Some((done..done + PIECE).into()),
            if_match: version.clone(),
            ..GetOptions::default()
        };
        let piece = runtime
            .block_on(async {
                let piece = store.get_opts(&key, piece).await?;
                Ok::<_, object_store::Error>((piece.meta.clone(), piece.bytes().await?))
            })
            .map_err(|e| remote(one_line(&e)))?;
        let (meta, bytes) = piece;
        if bytes.is_empty() {
            return Err(remote(format!(
                "the server sent nothing from byte {done} of {}",
                meta.size
            )));
        }
        file.write_all(&bytes).map_err(Error::io(target))?;
        (size, version) = (meta.size, meta.e_tag);
        done += bytes.len() as u64;
        progress(done, size);
    }
    file.sync_all().map_err(Error::io(target))
}
