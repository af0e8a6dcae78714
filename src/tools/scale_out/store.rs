//! The PLAN folder on shared storage (a local or NFS path), every access to it in one place:
//! `plan.json`, and `chunks/I/` per task, each put in place whole by a rename. Folders whose
//! names start with a dot are a task's work in progress (or a killed task's leftovers), never
//! read. A bucket (`s3://`) plan fits behind the same calls: `plan.json` as an object, a staged
//! chunk uploaded on `commit` with its sidecar last (the sidecar is what makes it whole), and
//! `chunk` a local copy downloaded for reading.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const PLAN_FILE: &str = "plan.json";
pub const SIDECAR: &str = "chunk.json";
const CHUNKS: &str = "chunks";

pub struct PlanFolder {
    root: PathBuf,
}

impl PlanFolder {
    /// The folder at `root`, made absolute (a task may change its working folder afterwards).
    pub fn at(root: &Path) -> Result<PlanFolder> {
        let root = std::path::absolute(root).map_err(Error::io(root))?;
        Ok(PlanFolder { root })
    }

    pub fn plan_path(&self) -> PathBuf {
        self.root.join(PLAN_FILE)
    }

    /// A new plan folder: refused where a plan already is, unless `replace`, which removes its
    /// chunks too (they belong to the plan replaced).
    pub fn create(&self, replace: bool) -> Result<()> {
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
        let path = self.plan_path();
        let temporary = self.root.join(format!(".{PLAN_FILE}.{}", std::process::id()));
        std::fs::write(&temporary, bytes).map_err(Error::io(&temporary))?;
        std::fs::rename(&temporary, &path).map_err(Error::io(&path))
    }

    pub fn read_plan(&self) -> Result<Vec<u8>> {
        let path = self.plan_path();
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Plan {
                path: self.root.clone(),
                reason: format!("no {PLAN_FILE}: not a plan folder (stream-pack plan writes one)"),
            }),
            read => read.map_err(Error::io(&path)),
        }
    }

    /// Where task `index`'s chunk is once complete.
    pub fn chunk(&self, index: u64) -> PathBuf {
        self.root.join(CHUNKS).join(index.to_string())
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
