//! Reassembling captured streams: FLV chunks joined into one file (`concat-flv`), from local
//! files, a pattern, or a list of URLs downloaded a few at a time.

pub mod download;
pub mod join;

use std::cmp::Ordering;
use std::path::{Path, PathBuf};

pub use download::DownloadOptions;
pub use join::{ConcatReport, concat_flv};

use crate::error::{Error, Result};

/// The chunk files the arguments name, in order. An argument that is no file but holds a
/// pattern (`chunk*.flv`) stands for the files it matches in natural order (`chunk2` before
/// `chunk10`), so a quoted pattern avoids the shell's character order.
pub fn chunk_paths(args: &[String]) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for arg in args {
        let path = PathBuf::from(arg);
        if path.exists() || !arg.contains(['*', '?', '[']) {
            paths.push(path);
            continue;
        }
        let pattern = glob::glob(arg).map_err(|e| Error::Usage(format!("{arg}: not a usable pattern: {e}")))?;
        let mut matched: Vec<PathBuf> = pattern.filter_map(std::result::Result::ok).collect();
        if matched.is_empty() {
            return Err(Error::InputMissing { path });
        }
        matched.sort_by(|a, b| natural_order(&a.to_string_lossy(), &b.to_string_lossy()));
        paths.extend(matched);
    }
    Ok(paths)
}

/// Compares names with runs of digits taken as numbers.
fn natural_order(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (x_digits, x_rest) = split_digits(a);
                let (y_digits, y_rest) = split_digits(b);
                let (x_trim, y_trim) = (x_digits.trim_start_matches('0'), y_digits.trim_start_matches('0'));
                let order = x_trim.len().cmp(&y_trim.len()).then_with(|| x_trim.cmp(y_trim));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (x_rest, y_rest);
            }
            (Some(x), Some(y)) if x != y => return x.cmp(&y),
            (Some(x), Some(_)) => {
                (a, b) = (&a[x.len_utf8()..], &b[x.len_utf8()..]);
            }
        }
    }
}

fn split_digits(text: &str) -> (&str, &str) {
    let end = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    text.split_at(end)
}

/// Downloads the chunks a list file names (see [`download::read_list`]) into a hidden folder
/// beside `output`, joins them, and removes the folder.
pub fn concat_list(list: &Path, output: &Path, replace: bool, options: DownloadOptions) -> Result<ConcatReport> {
    crate::output::staging::refuse_overlap(output, [("the list", list)])?;
    let urls = download::read_list(list)?;
    if output.exists() && !replace {
        return Err(Error::OutputExists {
            path: output.to_owned(),
        });
    }
    let parent = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(Error::io(&parent))?;
    let dir = tempfile::Builder::new()
        .prefix(".stream-pack-chunks-")
        .tempdir_in(&parent)
        .map_err(Error::io(&parent))?;
    let chunks = download::download_all(&urls, dir.path(), options)?;
    concat_flv(&chunks, output, replace).map_err(|e| by_url(e, &chunks, &urls))
}

/// An error about a downloaded chunk, naming its URL instead of the hidden file it was saved as.
fn by_url(error: Error, chunks: &[PathBuf], urls: &[String]) -> Error {
    let (path, reason) = match &error {
        Error::InputCorrupt { path, reason } | Error::InputUnreadable { path, reason } => (path, reason.clone()),
        Error::InputEmpty { path } => (path, "the download is empty".to_owned()),
        _ => return error,
    };
    match chunks.iter().position(|chunk| chunk == path) {
        Some(index) => Error::Remote {
            url: urls[index].clone(),
            reason,
        },
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order_takes_digit_runs_as_numbers() {
        let mut names = vec!["c10.flv", "c2.flv", "c1.flv", "c02b.flv", "b.flv", "c.flv"];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(names, ["b.flv", "c.flv", "c1.flv", "c2.flv", "c02b.flv", "c10.flv"]);
    }
}
