//! The local destination: a package is built in a staging folder beside its target, and a single
//! output file under a hidden name beside it, then renamed into place when complete, so the
//! target holds a whole package or file, or nothing. A live presentation is written in place,
//! its manifests replaced by rename.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A staging folder that disappears unless put in place: a failure or a cancel leaves nothing.
pub struct Staging {
    dir: tempfile::TempDir,
    target: PathBuf,
    replace: bool,
}

impl Staging {
    /// Refuses an existing `target` unless `replace`; creates the target's parent folders.
    pub fn new(target: &Path, replace: bool) -> Result<Staging> {
        if target.exists() && !replace {
            return Err(Error::OutputExists {
                path: target.to_owned(),
            });
        }
        let (name, parent) = placement(target)?;
        std::fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.stream-pack-"))
            .tempdir_in(&parent)
            .map_err(Error::io(&parent))?;
        Ok(Staging {
            dir,
            target: target.to_owned(),
            replace,
        })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Moves the staged package to the target. An existing target (allowed by `replace`) is moved
    /// aside first and deleted only once the new package is in place.
    pub fn put_in_place(self) -> Result<PathBuf> {
        let staged = self.dir.path().to_owned();
        let aside = if self.replace && self.target.exists() {
            let aside = staged.with_extension("old");
            std::fs::rename(&self.target, &aside).map_err(Error::io(&self.target))?;
            Some(aside)
        } else {
            None
        };
        if let Err(e) = std::fs::rename(&staged, &self.target) {
            if let Some(aside) = &aside {
                // Put the old package back: the failure must not cost the user what they had.
                let _ = std::fs::rename(aside, &self.target);
            }
            return Err(Error::Io {
                path: self.target.clone(),
                source: e,
            });
        }
        // The staged folder now is the target; keep TempDir from deleting it.
        let _ = self.dir.keep();
        if let Some(aside) = aside {
            remove_any(&aside).map_err(Error::io(&aside))?;
        }
        Ok(self.target)
    }
}

/// Refuses an `output` that is, or is a folder holding, one of `kept`: what the job reads or must
/// leave alone (its input, a key file or key dir, a ladder file), each named with what it is
/// (`the input`). Replacing an existing output would replace it too, or delete it with the old
/// output. Paths are compared as the file system resolves them (`..`, symbolic links); an
/// output or a kept path that does not exist cannot hold anything.
pub fn refuse_overlap<'a>(output: &Path, kept: impl IntoIterator<Item = (&'a str, &'a Path)>) -> Result<()> {
    let Some(target) = resolved(output) else {
        return Ok(());
    };
    for (what, path) in kept {
        let inside = [resolved(path), std::fs::canonicalize(path).ok()]
            .into_iter()
            .flatten()
            .any(|p| p.starts_with(&target));
        if inside {
            return Err(Error::InvalidOption {
                option: "output",
                reason: format!(
                    "{}: is or holds {what} {}, which the output would replace; give another output",
                    output.display(),
                    path.display()
                ),
            });
        }
    }
    Ok(())
}

/// An existing path with its folder resolved, its last component as it is: what a rename or a
/// removal of `path` acts on (a symbolic link itself, not what it points to).
fn resolved(path: &Path) -> Option<PathBuf> {
    std::fs::symlink_metadata(path).ok()?;
    let (name, parent) = placement(path).ok()?;
    Some(std::fs::canonicalize(parent).ok()?.join(name))
}

/// Where a package is built: staged beside its local target, in the target itself, or, when it
/// goes only to remote destinations, in a scratch folder that is deleted at the end either way.
pub enum Workspace {
    Staged(Staging),
    /// The target itself (a live presentation, visible while it runs).
    InPlace(PathBuf),
    Scratch(tempfile::TempDir),
}

impl Workspace {
    /// A scratch folder in the system's temporary folder.
    pub fn scratch() -> Result<Workspace> {
        let parent = std::env::temp_dir();
        tempfile::Builder::new()
            .prefix(".stream-pack-")
            .tempdir_in(&parent)
            .map(Workspace::Scratch)
            .map_err(Error::io(parent))
    }

    pub fn path(&self) -> &Path {
        match self {
            Workspace::Staged(staging) => staging.path(),
            Workspace::InPlace(target) => target,
            Workspace::Scratch(dir) => dir.path(),
        }
    }

    /// Moves a staged package into place and returns where it is; deletes a scratch folder.
    pub fn finish(self) -> Result<Option<PathBuf>> {
        match self {
            Workspace::Staged(staging) => staging.put_in_place().map(Some),
            Workspace::InPlace(target) => Ok(Some(target)),
            Workspace::Scratch(dir) => {
                let path = dir.path().to_owned();
                dir.close().map_err(Error::io(path))?;
                Ok(None)
            }
        }
    }
}

/// The folder a live presentation is written into as it runs, created empty. An existing one is
/// refused unless `replace`, which empties it first.
pub fn live_folder(target: &Path, replace: bool) -> Result<PathBuf> {
    if target.exists() {
        if !replace {
            return Err(Error::OutputExists {
                path: target.to_owned(),
            });
        }
        remove_any(target).map_err(Error::io(target))?;
    }
    std::fs::create_dir_all(target).map_err(Error::io(target))?;
    Ok(target.to_owned())
}

/// Writes `bytes` to `path` under a hidden temporary name first, then renames it over `path`: a
/// reader sees the old file or the new one, never part of one.
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let temp = scratch_file(path, "")?;
    std::fs::write(&temp, bytes).map_err(Error::io(&temp))?;
    temp.persist(path).map_err(|e| Error::Io {
        path: path.to_owned(),
        source: e.error,
    })
}

/// A single output file built under a hidden temporary name beside its target and renamed into
/// place when complete: a failure or a cancel leaves neither the file nor the temporary one.
pub struct StagedFile {
    temp: tempfile::TempPath,
    target: PathBuf,
    replace: bool,
}

impl StagedFile {
    /// Refuses an existing `target` unless `replace`; creates the target's parent folders.
    pub fn new(target: &Path, replace: bool) -> Result<StagedFile> {
        let (_, parent) = placement(target)?;
        if target.exists() && !replace {
            return Err(Error::OutputExists {
                path: target.to_owned(),
            });
        }
        if target.is_dir() {
            return Err(Error::Usage(format!(
                "{}: is a folder; give a file name",
                target.display()
            )));
        }
        std::fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
        // The target's extension is kept, so anything that guesses a format from it still can.
        let suffix = target
            .extension()
            .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
        Ok(StagedFile {
            temp: scratch_file(target, &suffix)?,
            target: target.to_owned(),
            replace,
        })
    }

    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Renames the staged file to the target.
    pub fn put_in_place(self) -> Result<PathBuf> {
        let result = if self.replace {
            self.temp.persist(&self.target)
        } else {
            self.temp.persist_noclobber(&self.target)
        };
        result.map_err(|e| Error::Io {
            path: self.target.clone(),
            source: e.error,
        })?;
        Ok(self.target)
    }
}

/// A hidden temporary file beside `target` (whose folder must exist), named after it and ending
/// in `suffix`; it is deleted when dropped.
pub fn scratch_file(target: &Path, suffix: &str) -> Result<tempfile::TempPath> {
    use std::os::unix::fs::PermissionsExt;
    let (name, parent) = placement(target)?;
    Ok(tempfile::Builder::new()
        .prefix(&format!(".{name}.stream-pack-"))
        .suffix(suffix)
        // The mode any new file gets (less the umask), not tempfile's owner-only 0600: the
        // file becomes the user's output.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(&parent)
        .map_err(Error::io(&parent))?
        .into_temp_path())
}

/// The target's file name and its parent folder (`.` for a bare name).
fn placement(target: &Path) -> Result<(String, PathBuf)> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: not a usable output name", target.display())))?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    Ok((name.to_string_lossy().into_owned(), parent))
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_staging_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out");
        {
            let staging = Staging::new(&target, false).unwrap();
            std::fs::write(staging.path().join("a"), b"x").unwrap();
        }
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_staged_file_appears_whole_or_not_at_all() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out.mp4");
        {
            let staged = StagedFile::new(&target, false).unwrap();
            std::fs::write(staged.path(), b"half").unwrap();
        }
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 0);
        let staged = StagedFile::new(&target, false).unwrap();
        std::fs::write(staged.path(), b"whole").unwrap();
        staged.put_in_place().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"whole");
        assert!(matches!(
            StagedFile::new(&target, false),
            Err(Error::OutputExists { .. })
        ));
        let staged = StagedFile::new(&target, true).unwrap();
        std::fs::write(staged.path(), b"new").unwrap();
        staged.put_in_place().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_output_over_what_the_job_reads_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let input = root.path().join("in/a.mp4");
        std::fs::create_dir_all(input.parent().unwrap()).unwrap();
        std::fs::write(&input, b"x").unwrap();
        std::os::unix::fs::symlink(root.path().join("in"), root.path().join("link")).unwrap();
        let kept = [("the input", input.as_path())];
        for output in ["in", "in/a.mp4", "in/../in", "."] {
            let output = root.path().join(output);
            assert!(refuse_overlap(&output, kept).is_err(), "{}", output.display());
        }
        let through_link = root.path().join("link/a.mp4");
        assert!(refuse_overlap(&root.path().join("in"), [("the input", through_link.as_path())]).is_err());
        for output in ["out", "in/b.mp4", "link"] {
            assert!(refuse_overlap(&root.path().join(output), kept).is_ok(), "{output}");
        }
    }

    #[test]
    fn put_in_place_replaces_only_when_allowed() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("out");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("old"), b"x").unwrap();
        assert!(matches!(Staging::new(&target, false), Err(Error::OutputExists { .. })));
        let staging = Staging::new(&target, true).unwrap();
        std::fs::write(staging.path().join("new"), b"y").unwrap();
        staging.put_in_place().unwrap();
        assert!(target.join("new").exists());
        assert!(!target.join("old").exists());
        assert_eq!(std::fs::read_dir(root.path()).unwrap().count(), 1);
    }
}
