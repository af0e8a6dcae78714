//! Checks every task's chunk against the plan and its own sidecar, and stitches the renditions:
//! each rung's segments from every chunk in order, one init segment per rung (every chunk's the
//! same), the audio from its task, the durations at the seams as a one-process run measures them.

use std::path::{Path, PathBuf};

use super::plan_file::Plan;
use super::sidecar::{self, ChunkSidecar, FileRecord, RenditionRecord};
use super::store::{PlanFolder, SIDECAR};
use crate::error::{Error, Result};
use crate::package::chunk::Stitched;
use crate::package::segment::{EncodedRendition, SegmentFacts};

/// The sidecar of task `index`, checked against the plan and the files it lists.
pub fn checked_sidecar(folder: &PlanFolder, plan: &Plan, plan_hash: &str, index: u64) -> Result<ChunkSidecar> {
    let dir = folder.fetch_chunk(index)?;
    let refuse = |reason: String| Error::Plan {
        path: folder.chunk_name(index),
        reason: format!("chunk {index} {reason}"),
    };
    let bytes = match std::fs::read(dir.join(SIDECAR)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refuse(format!(
                "is missing: run stream-pack encode-chunk --index {index}"
            )));
        }
        Err(e) => return Err(Error::io(dir.join(SIDECAR))(e)),
    };
    let sidecar: ChunkSidecar = serde_json::from_slice(&bytes)
        .map_err(|e| refuse(format!("is corrupt: its {SIDECAR} cannot be read ({e})")))?;
    if sidecar.plan != plan_hash || sidecar.index != index {
        return Err(refuse("belongs to another plan: encode it again".into()));
    }
    planned(plan, index, &sidecar, &folder.chunk_name(index))?;
    for rendition in &sidecar.renditions {
        check_files(&dir.join(&rendition.name), rendition).map_err(&refuse)?;
    }
    Ok(sidecar)
}

/// Refuses a chunk (in `dir`) without the renditions, frames and segments the plan gives task
/// `index`: one whose source seeked wrong, or a sidecar of another plan's task.
pub fn planned(plan: &Plan, index: u64, sidecar: &ChunkSidecar, dir: &Path) -> Result<()> {
    expected_renditions(plan, index, sidecar).map_err(|reason| Error::Plan {
        path: dir.to_owned(),
        reason: format!("chunk {index} {reason}"),
    })
}

/// The renditions and frames the plan gives the task.
fn expected_renditions(plan: &Plan, index: u64, sidecar: &ChunkSidecar) -> Result<(), String> {
    let names: Vec<&str> = sidecar.renditions.iter().map(|r| r.name.as_str()).collect();
    let Some(chunk) = plan.chunks.get(index as usize) else {
        return match names == plan.audio.iter().map(String::as_str).collect::<Vec<_>>() {
            true => Ok(()),
            false => Err("holds other audio renditions than the plan's".into()),
        };
    };
    if names != plan.ladder.iter().map(|r| r.name.as_str()).collect::<Vec<_>>() {
        return Err("holds other rungs than the plan's".into());
    }
    let numbers = chunk.range.first_segment..chunk.range.first_segment + chunk.segments;
    for rendition in &sidecar.renditions {
        let frames = rendition.frames.map(|f| (f.frames, f.first_pts, f.last_pts));
        if frames != Some((chunk.frames, chunk.range.first_pts, chunk.range.last_pts)) {
            return Err(format!(
                "is incomplete: {} does not hold the chunk's frames",
                rendition.name
            ));
        }
        let named: Vec<String> = rendition.segments.iter().map(|s| s.file.uri.clone()).collect();
        let planned: Vec<String> = numbers.clone().map(|n| segment_name(n, &named)).collect();
        if named != planned {
            return Err(format!(
                "is incomplete: {} does not hold the chunk's segments",
                rendition.name
            ));
        }
    }
    Ok(())
}

/// Segment `number`'s file name, with the extension the chunk's first segment has.
fn segment_name(number: u64, named: &[String]) -> String {
    let extension = named.first().and_then(|n| n.rsplit_once('.')).map_or("", |(_, e)| e);
    format!("segment{number:05}.{extension}")
}

/// Every file a rendition's record lists is there, whole and unchanged.
fn check_files(dir: &Path, rendition: &RenditionRecord) -> Result<(), String> {
    let files = rendition.init.iter().chain(rendition.segments.iter().map(|s| &s.file));
    for file in files {
        let path = dir.join(&file.uri);
        let place = format!("{}/{}", rendition.name, file.uri);
        match std::fs::metadata(&path) {
            Err(_) => return Err(format!("is incomplete: {place} is missing")),
            Ok(meta) if meta.len() != file.bytes => return Err(format!("is corrupt: {place} has the wrong size")),
            Ok(_) => {}
        }
        if sidecar::checksum(&path).map_err(|e| e.to_string())? != file.sha256 {
            return Err(format!("is corrupt: {place} does not match its checksum"));
        }
    }
    Ok(())
}

/// The title's renditions and files from the checked sidecars, video chunks in order then audio.
pub fn stitch(folder: &PlanFolder, plan: &Plan, sidecars: &[ChunkSidecar]) -> Result<Stitched> {
    let chunks = &sidecars[..plan.chunks.len()];
    let mut files = Vec::new();
    let mut video = Vec::new();
    for (rung, name) in plan.ladder.iter().map(|r| &r.name).enumerate() {
        let parts: Vec<(u64, &RenditionRecord)> = chunks.iter().map(|s| (s.index, &s.renditions[rung])).collect();
        video.push(stitch_rung(folder, name, &parts, &mut files)?);
    }
    let audio = sidecars[plan.chunks.len()..]
        .iter()
        .flat_map(|s| s.renditions.iter().map(move |r| (s.index, r)))
        .map(|(index, r)| stitch_rung(folder, &r.name, &[(index, r)], &mut files))
        .collect::<Result<Vec<_>>>()?;
    Ok(Stitched { video, audio, files })
}

/// One rendition from its parts, its files added to `files`.
fn stitch_rung(
    folder: &PlanFolder,
    name: &str,
    parts: &[(u64, &RenditionRecord)],
    files: &mut Vec<(String, PathBuf)>,
) -> Result<EncodedRendition> {
    let (first_index, first) = parts[0];
    for (index, part) in &parts[1..] {
        let same_init = part.init.as_ref().map(|i| &i.sha256) == first.init.as_ref().map(|i| &i.sha256);
        let same_stream = (&part.codecs, part.timescale, part.presentation_offset)
            == (&first.codecs, first.timescale, first.presentation_offset);
        if !(same_init && same_stream) {
            return Err(Error::Plan {
                path: folder.chunk_name(*index),
                reason: format!(
                    "chunk {index}: {name} was encoded unlike chunk {first_index}'s (its init segment or codec differs)"
                ),
            });
        }
    }
    let mut add = |index: u64, file: &FileRecord| {
        files.push((
            format!("{name}/{}", file.uri),
            folder.chunk(index).join(name).join(&file.uri),
        ));
    };
    if let Some(init) = &first.init {
        add(first_index, init);
    }
    let mut segments: Vec<SegmentFacts> = Vec::new();
    for (index, part) in parts {
        part.segments.iter().for_each(|s| add(*index, &s.file));
        segments.extend(part.segments.iter().map(|s| s.facts()));
    }
    let mut rendition = first.rendition(segments);
    measure_seams(&mut rendition.media.segments, first.timescale);
    Ok(rendition)
}

/// Each segment lasts until the next one starts, as a one-process run measures it: a chunk's
/// last segment was measured to the end of its last frame.
fn measure_seams(segments: &mut [SegmentFacts], timescale: u32) {
    let seconds_per_tick = 1.0 / f64::from(timescale.max(1));
    for i in 1..segments.len() {
        let ticks = segments[i].start_ticks - segments[i - 1].start_ticks;
        segments[i - 1].duration_ticks = ticks;
        segments[i - 1].duration = ticks as f64 * seconds_per_tick;
    }
}
