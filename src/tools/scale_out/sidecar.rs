//! `chunks/I/chunk.json`: what one task wrote, measured as it wrote it: per rendition its
//! segments' timing, sizes and SHA-256 checksums, its init segment's, and the frames encoded.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::package::segment::{EncodedRendition, FrameSpan, SegmentFacts, SegmentedStream};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkSidecar {
    pub version: u32,
    /// The SHA-256 of the `plan.json` the task ran.
    pub plan: String,
    pub index: u64,
    pub renditions: Vec<RenditionRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionRecord {
    /// The rendition's folder.
    pub name: String,
    pub codecs: String,
    pub captions: Option<bool>,
    pub timescale: u32,
    pub presentation_offset: i64,
    pub init: Option<FileRecord>,
    /// Video: the frames encoded, first and last PTS in the plan's video time base.
    pub frames: Option<FramesRecord>,
    pub segments: Vec<SegmentRecord>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FramesRecord {
    pub frames: u64,
    pub first_pts: i64,
    pub last_pts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub uri: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    #[serde(flatten)]
    pub file: FileRecord,
    pub duration: f64,
    pub start_ticks: i64,
    pub duration_ticks: i64,
}

/// The SHA-256 of a file, in hex.
pub fn checksum(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(Error::io(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(Error::io(path))?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// The SHA-256 of bytes, in hex.
pub fn checksum_of(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn file_record(dir: &Path, uri: &str) -> Result<FileRecord> {
    let path = dir.join(uri);
    let bytes = std::fs::metadata(&path).map_err(Error::io(&path))?.len();
    Ok(FileRecord {
        uri: uri.to_owned(),
        bytes,
        sha256: checksum(&path)?,
    })
}

impl RenditionRecord {
    /// The record of a rendition written in `dir`, its files checksummed.
    pub fn measure(name: &str, rendition: &EncodedRendition, dir: &Path) -> Result<RenditionRecord> {
        let media = &rendition.media;
        let segments = media
            .segments
            .iter()
            .map(|s| {
                Ok(SegmentRecord {
                    file: file_record(dir, &s.uri)?,
                    duration: s.duration,
                    start_ticks: s.start_ticks,
                    duration_ticks: s.duration_ticks,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RenditionRecord {
            name: name.to_owned(),
            codecs: rendition.codecs.clone(),
            captions: rendition.captions,
            timescale: media.timescale,
            presentation_offset: media.presentation_offset,
            init: media.init.as_deref().map(|uri| file_record(dir, uri)).transpose()?,
            frames: rendition.frames.map(|f: FrameSpan| FramesRecord {
                frames: f.frames,
                first_pts: f.first_pts,
                last_pts: f.last_pts,
            }),
            segments,
        })
    }

    /// The rendition as the manifests take it, with these segments.
    pub fn rendition(&self, segments: Vec<SegmentFacts>) -> EncodedRendition {
        EncodedRendition {
            media: SegmentedStream {
                init: self.init.as_ref().map(|i| i.uri.clone()),
                timescale: self.timescale,
                presentation_offset: self.presentation_offset,
                segments,
            },
            codecs: self.codecs.clone(),
            captions: self.captions,
            frames: None,
        }
    }
}

impl SegmentRecord {
    pub fn facts(&self) -> SegmentFacts {
        SegmentFacts {
            uri: self.file.uri.clone(),
            duration: self.duration,
            key: None,
            start_ticks: self.start_ticks,
            duration_ticks: self.duration_ticks,
            bytes: self.file.bytes,
        }
    }
}
