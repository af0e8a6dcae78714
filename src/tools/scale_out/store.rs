//! The PLAN folder on shared storage, every access to it in one place: `plan.json`, and
//! `chunks/I/` per task. In a folder (a local or NFS path) each chunk is put in place whole by a
//! rename; folders whose names start with a dot are a task's work in progress (or a killed task's
//! leftovers), never read. In a bucket (`s3://`, `gs://`, `az://`) `plan.json` and every file of a
//! chunk are objects, a chunk's sidecar uploaded last (an object appears whole or not at all, and
//! the sidecar is what makes a chunk whole), and chunks are staged and read in a local copy.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::location::Location;
use crate::output::publish::{BucketStore, PublishOptions, Store};
use crate::output::retry::Failure;

pub const PLAN_FILE: &str = "plan.json";
pub const SIDECAR: &str = "chunk.json";
const CHUNKS: &str = "chunks";

/// A plan folder in a bucket: its client, and the local copy `root` of a bucket plan is in.
struct BucketPlan {
    store: BucketStore,
    url: String,
    _copy: tempfile::TempDir,
}

pub struct PlanFolder {
    /// The folder, or a bucket plan's local copy.
    root: PathBuf,
    bucket: Option<BucketPlan>,
}

impl PlanFolder {
    /// The folder at `root`, made absolute (a task may change its working folder afterwards), or
    /// the bucket `root` names, reached with the cloud's standard environment variables (for an
    /// S3-compatible server, `AWS_ENDPOINT`, as `--s3-endpoint` defaults to).
    pub fn at(root: &Path) -> Result<PlanFolder> {
        let (cloud, bucket, key) = match Location::of_path(root) {
            Location::File(_) => {
                let root = std::path::absolute(root).map_err(Error::io(root))?;
                return Ok(PlanFolder { root, bucket: None });
            }
            Location::Cloud { cloud, bucket, key } if !bucket.is_empty() => (cloud, bucket, key),
            _ => {
                return Err(Error::Plan {
                    path: root.to_owned(),
                    reason: "a plan folder is a path or s3://, gs:// or az://bucket/prefix/".into(),
                });
            }
        };
        let prefix = if key.is_empty() || key.ends_with('/') {
            key
        } else {
            format!("{key}/")
        };
        let options = PublishOptions {
            s3_endpoint: std::env::var("AWS_ENDPOINT").ok().filter(|url| !url.is_empty()),
            ..PublishOptions::default()
        };
        let store = BucketStore::new(cloud, &bucket, &prefix, &options)?;
        let copy = tempfile::Builder::new()
            .prefix(".stream-pack-plan-")
            .tempdir()
            .map_err(Error::io(std::env::temp_dir()))?;
        let chunks = copy.path().join(CHUNKS);
        std::fs::create_dir(&chunks).map_err(Error::io(&chunks))?;
        Ok(PlanFolder {
            root: copy.path().to_owned(),
            bucket: Some(BucketPlan {
                url: store.url(""),
                store,
                _copy: copy,
            }),
        })
    }

    /// `plan.json`'s path or URL, for messages.
    pub fn plan_path(&self) -> PathBuf {
        match &self.bucket {
            Some(bucket) => PathBuf::from(bucket.store.url(PLAN_FILE)),
            None => self.root.join(PLAN_FILE),
        }
    }

    /// Task `index`'s chunk's path or URL, for messages.
    pub fn chunk_name(&self, index: u64) -> PathBuf {
        match &self.bucket {
            Some(bucket) => PathBuf::from(format!("{}{CHUNKS}/{index}", bucket.url)),
            None => self.chunk(index),
        }
    }

    /// A new plan folder: refused where a plan already is, unless `replace`, which removes its
    /// chunks too (they belong to the plan replaced).
    pub fn create(&self, replace: bool) -> Result<()> {
        if let Some(bucket) = &self.bucket {
            return bucket.create(replace);
        }
        if self.plan_path().exists() {
            if !replace {
                return Err(Error::OutputExists { path: self.plan_path() });
            }
            let chunks = self.root.join(CHUNKS);
            if chunks.exists() {
                std::fs::remove_dir_all(&chunks).map_err(Error::io(&chunks))?;
            }
        }
        let chunks = self.root.join(CHUNKS);
        std::fs::create_dir_all(&chunks).map_err(Error::io(&chunks))
    }

    /// Writes `plan.json` under a temporary name and renames it into place.
    pub fn write_plan(&self, bytes: &[u8]) -> Result<()> {
        if let Some(bucket) = &self.bucket {
            return bucket.put(PLAN_FILE, Bytes::copy_from_slice(bytes));
        }
        let path = self.plan_path();
        let temporary = self.root.join(format!(".{PLAN_FILE}.{}", std::process::id()));
        std::fs::write(&temporary, bytes).map_err(Error::io(&temporary))?;
        std::fs::rename(&temporary, &path).map_err(Error::io(&path))
    }

    pub fn read_plan(&self) -> Result<Vec<u8>> {
        let path = self.plan_path();
        let read = match &self.bucket {
            Some(bucket) => bucket.get(PLAN_FILE)?.map(|bytes| bytes.to_vec()),
            None => match std::fs::read(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                read => Some(read.map_err(Error::io(&path))?),
            },
        };
        read.ok_or_else(|| Error::Plan {
            path: path.parent().map_or_else(PathBuf::new, Path::to_owned),
            reason: format!("no {PLAN_FILE}: not a plan folder (stream-pack plan writes one)"),
        })
    }

    /// Where task `index`'s chunk is read once complete (in a bucket plan's local copy, once
    /// [`PlanFolder::fetch_chunk`] has downloaded it).
    pub fn chunk(&self, index: u64) -> PathBuf {
        self.root.join(CHUNKS).join(index.to_string())
    }

    /// Task `index`'s chunk where it can be read: a bucket's downloaded into the local copy,
    /// sidecar first, so a chunk whose sidecar is missing is read as missing.
    pub fn fetch_chunk(&self, index: u64) -> Result<PathBuf> {
        let dir = self.chunk(index);
        let Some(bucket) = &self.bucket else {
            return Ok(dir);
        };
        let folder = format!("{CHUNKS}/{index}/");
        let Some(sidecar) = bucket.get(&format!("{folder}{SIDECAR}"))? else {
            return Ok(dir);
        };
        for name in bucket.list(&folder)? {
            let relative = name.strip_prefix(&folder).unwrap_or(&name);
            let path = dir.join(relative);
            let bytes = match relative {
                SIDECAR => sidecar.clone(),
                // An object listed then removed (a rerun replacing the chunk) is read as missing.
                _ => bucket.get(&name)?.unwrap_or_default(),
            };
            let parent = path.parent().unwrap_or(&dir);
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
            std::fs::write(&path, bytes).map_err(Error::io(&path))?;
        }
        Ok(dir)
    }

    /// A new, empty folder for task `index`'s work, deleted unless committed.
    pub fn stage(&self, index: u64) -> Result<tempfile::TempDir> {
        let chunks = self.root.join(CHUNKS);
        tempfile::Builder::new()
            .prefix(&format!(".{index}.tmp-"))
            .tempdir_in(&chunks)
            .map_err(Error::io(&chunks))
    }

    /// Puts a staged chunk in place: a chunk already there (a rerun's) is moved aside first and
    /// removed after, so `chunks/I` is always one whole chunk.
    pub fn commit(&self, staged: tempfile::TempDir, index: u64) -> Result<()> {
        if let Some(bucket) = &self.bucket {
            return bucket.upload_chunk(staged.path(), index);
        }
        let target = self.chunk(index);
        // Named after the staged folder: two runs of one task never move aside to one name.
        let mut aside = staged.path().as_os_str().to_owned();
        aside.push(".old");
        let aside = PathBuf::from(aside);
        let replaced = std::fs::rename(&target, &aside).is_ok();
        std::fs::rename(staged.path(), &target).map_err(Error::io(&target))?;
        let _ = staged.keep();
        if replaced {
            std::fs::remove_dir_all(&aside).map_err(Error::io(&aside))?;
        }
        Ok(())
    }

    /// Removes what killed tasks left in `chunks/`: called when no task runs any more.
    pub fn remove_leftovers(&self) -> Result<()> {
        if self.bucket.is_some() {
            return Ok(());
        }
        let chunks = self.root.join(CHUNKS);
        for entry in std::fs::read_dir(&chunks).map_err(Error::io(&chunks))? {
            let path = entry.map_err(Error::io(&chunks))?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                std::fs::remove_dir_all(&path).map_err(Error::io(&path))?;
            }
        }
        Ok(())
    }
}

impl BucketPlan {
    fn refused(&self, relative: &str) -> impl Fn(Failure) -> Error {
        let url = self.store.url(relative);
        move |failure| Error::Publish {
            url: url.clone(),
            reason: failure.reason,
        }
    }

    fn get(&self, relative: &str) -> Result<Option<Bytes>> {
        self.store.get(relative).map_err(self.refused(relative))
    }

    fn put(&self, relative: &str, bytes: Bytes) -> Result<()> {
        self.store.put(relative, &bytes).map_err(self.refused(relative))
    }

    fn delete(&self, relative: &str) -> Result<()> {
        self.store.delete(relative).map_err(self.refused(relative))
    }

    fn list(&self, folder: &str) -> Result<Vec<String>> {
        self.store.list(folder).map_err(self.refused(folder))
    }

    /// As [`PlanFolder::create`]: refused where `plan.json` is, unless `replace`, which removes
    /// the chunks of the plan replaced.
    fn create(&self, replace: bool) -> Result<()> {
        if self.get(PLAN_FILE)?.is_none() {
            return Ok(());
        }
        if !replace {
            return Err(Error::OutputExists {
                path: PathBuf::from(self.store.url(PLAN_FILE)),
            });
        }
        for name in self.list(CHUNKS)? {
            self.delete(&name)?;
        }
        Ok(())
    }

    /// Uploads the chunk staged in `dir` as `chunks/I/`: a rerun's sidecar removed first, every
    /// other file, then the sidecar, so the chunk counts as whole only once all of it is there.
    fn upload_chunk(&self, dir: &Path, index: u64) -> Result<()> {
        let folder = format!("{CHUNKS}/{index}/");
        self.delete(&format!("{folder}{SIDECAR}"))?;
        for file in files_below(dir)? {
            if file != Path::new(SIDECAR) {
                self.upload(dir, &file, &folder)?;
            }
        }
        self.upload(dir, Path::new(SIDECAR), &folder)
    }

    fn upload(&self, dir: &Path, file: &Path, folder: &str) -> Result<()> {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        let name = file
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>();
        self.put(&format!("{folder}{}", name.join("/")), Bytes::from(bytes))
    }
}

/// Every file below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        let path = dir.join(&folder);
        for entry in std::fs::read_dir(&path).map_err(Error::io(&path))? {
            let entry = entry.map_err(Error::io(&path))?;
            let relative = folder.join(entry.file_name());
            match entry.file_type().map_err(Error::io(entry.path()))?.is_dir() {
                true => folders.push(relative),
                false => files.push(relative),
            }
        }
    }
    Ok(files)
}
