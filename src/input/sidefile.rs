//! Side files (a ladder, a key, key info, a list of chunk URLs, a recording schedule, subtitles)
//! are small, so they are read up to a limit: `/dev/zero` or an endless pipe given by mistake
//! fails at once, naming the limit, instead of taking the machine's memory.

use std::io::{self, Read};
use std::path::Path;

/// The bytes of the file at `path`; one holding more than `limit` bytes is an error of kind
/// `FileTooLarge` that states the limit.
pub fn read(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than the limit of {} for this file", size(limit)),
        ));
    }
    Ok(bytes)
}

/// [`read`] of a text file: UTF-8, or an error of kind `InvalidData`.
pub fn read_text(path: &Path, limit: u64) -> io::Result<String> {
    String::from_utf8(read(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not a text file (not UTF-8)"))
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_file_stops_at_the_limit() {
        let error = read(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(error.to_string(), "larger than the limit of 1 MiB for this file");
    }

    #[test]
    fn a_file_up_to_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, [1u8; 64]).unwrap();
        assert_eq!(read(&path, 64).unwrap().len(), 64);
        assert!(read(&path, 63).unwrap_err().to_string().contains("63 bytes"));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert_eq!(read_text(&path, 64).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}
