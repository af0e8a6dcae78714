//! Inputs libav cannot read itself: an object in a bucket (`s3://`, `gs://`, `az://`) is downloaded
//! to a temporary file before it is opened, its progress reported as [`Stage::Fetch`].
//!
//! [`Stage::Fetch`]: crate::progress::Stage::Fetch

use std::path::Path;

use tempfile::TempPath;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::output::publish::{self, PublishOptions};
use crate::progress::{Monitor, Progress};

/// Downloads `input` when it is an object in a bucket, with `storage`'s client settings (the S3
/// endpoint, retries, timeout): the temporary file it is in, deleted when dropped. `None` for any
/// other input, which libav opens as it is.
pub fn fetch(input: &Location, storage: &PublishOptions, monitor: &mut dyn Monitor) -> Result<Option<TempPath>> {
    let Location::Cloud { cloud, bucket, key } = input else {
        return Ok(None);
    };
    if bucket.is_empty() || key.is_empty() {
        return Err(Error::Remote {
            url: input.to_string(),
            reason: "give s3://, gs:// or az://bucket/key".into(),
        });
    }
    // The key's extension is kept: libav guesses some formats from it.
    let suffix = Path::new(key)
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let file = tempfile::Builder::new()
        .prefix(".stream-pack-input-")
        .suffix(&suffix)
        .tempfile()
        .map_err(Error::io(std::env::temp_dir()))?
        .into_temp_path();
    publish::fetch(*cloud, bucket, key, &file, storage, |bytes, total| {
        monitor.report(&Progress::fetch(bytes, total));
    })?;
    Ok(Some(file))
}
