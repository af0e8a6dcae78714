//! CMAF fragmented MP4 read with the mp4-atom crate in strict mode (an unknown or malformed
//! box is an error), and the rules every init segment, media segment and track of a package
//! must meet (ISO/IEC 14496-12 §8.8, ISO/IEC 23000-19).

use mp4_atom::{Any, Codec, Decode, FourCC, StszSamples, Trex};
use std::path::{Path, PathBuf};

/// `sample_is_non_sync_sample` of the sample flags (ISO/IEC 14496-12 §8.8.3.1).
const NON_SYNC: u32 = 0x0001_0000;

/// An init segment's one track.
pub struct Init {
    pub track_id: u32,
    /// The mdhd timescale: ticks per second of every time in the track's fragments.
    pub timescale: u32,
    /// The sample entry: codec and configuration box.
    pub codec: Codec,
    /// The media time at which the edit list starts the presentation (0 without one): every
    /// sample is presented this much before its composition time.
    pub edit_start: u64,
    trex: Trex,
}

impl Init {
    pub fn is_video(&self) -> bool {
        self.codec.visual().is_some()
    }
}

pub struct Sample {
    pub duration: u32,
    pub size: u32,
    pub sync: bool,
    pub composition_offset: i64,
}

/// One media segment: a moof with one traf, and its mdat.
pub struct Fragment {
    pub sequence_number: u32,
    /// The tfdt: decode time of the first sample, in the track's timescale.
    pub decode_time: u64,
    pub samples: Vec<Sample>,
}

impl Fragment {
    /// The sum of the sample durations, in the track's timescale.
    pub fn duration(&self) -> u64 {
        self.samples.iter().map(|s| u64::from(s.duration)).sum()
    }

    /// The smallest decode time + composition offset of any sample.
    pub fn earliest_presentation(&self) -> i64 {
        let mut decode = self.decode_time as i64;
        let mut earliest = i64::MAX;
        for sample in &self.samples {
            earliest = earliest.min(decode + sample.composition_offset);
            decode += i64::from(sample.duration);
        }
        earliest
    }
}

/// An init segment and its media segments in order.
pub struct Track {
    pub init: Init,
    pub fragments: Vec<Fragment>,
}

/// The top-level boxes of a file, each with its size in bytes.
fn top_level(path: &Path) -> Vec<(Any, usize)> {
    decode_top_level(path)
        .into_iter()
        .map(|(atom, bytes)| (atom, bytes.len()))
        .collect()
}

/// The top-level boxes of a file, each with its bytes.
fn decode_top_level(path: &Path) -> Vec<(Any, Vec<u8>)> {
    let name = path.display();
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{name}: {error}"));
    let mut rest = bytes.as_slice();
    let mut boxes = Vec::new();
    while !rest.is_empty() {
        let before = rest.len();
        let at = bytes.len() - before;
        let atom = Any::decode(&mut rest).unwrap_or_else(|error| panic!("{name}: box at byte {at}: {error}"));
        boxes.push((atom, bytes[at..bytes.len() - rest.len()].to_vec()));
    }
    boxes
}

/// The top-level boxes of a file (each decoded strictly): type and bytes.
pub fn split(path: &Path) -> Vec<(FourCC, Vec<u8>)> {
    decode_top_level(path)
        .into_iter()
        .map(|(atom, bytes)| (atom.kind(), bytes))
        .collect()
}

/// The types of a file's top-level boxes, in order.
pub fn top_level_kinds(path: &Path) -> Vec<FourCC> {
    kinds(&top_level(path))
}

fn kinds(boxes: &[(Any, usize)]) -> Vec<FourCC> {
    boxes.iter().map(|(atom, _)| atom.kind()).collect()
}

/// Reads an init segment: ftyp + moov and nothing else; one track, with a trex in mvex and
/// empty sample tables (its samples are all in the fragments).
pub fn read_init(path: &Path) -> Init {
    let name = path.display();
    let boxes = top_level(path);
    assert_eq!(
        kinds(&boxes),
        [FourCC::new(b"ftyp"), FourCC::new(b"moov")],
        "{name}: top-level boxes"
    );
    let Some((Any::Moov(moov), _)) = boxes.into_iter().nth(1) else {
        unreachable!("the second box is a moov")
    };
    assert_eq!(
        moov.trak.len(),
        1,
        "{name}: an init segment of a rendition holds one track"
    );
    let trak = &moov.trak[0];
    let track_id = trak.tkhd.track_id;
    let mvex = moov.mvex.as_ref().unwrap_or_else(|| panic!("{name}: no mvex"));
    let trexes: Vec<&Trex> = mvex.trex.iter().filter(|t| t.track_id == track_id).collect();
    assert_eq!(trexes.len(), 1, "{name}: one trex for track {track_id}");
    let stbl = &trak.mdia.minf.stbl;
    let stsz_count = match &stbl.stsz.samples {
        StszSamples::Identical { count, .. } => *count as usize,
        StszSamples::Different { sizes } => sizes.len(),
    };
    let chunks = stbl.stco.as_ref().map_or(0, |stco| stco.entries.len());
    let chunks64 = stbl.co64.as_ref().map_or(0, |co64| co64.entries.len());
    assert_eq!(
        (
            stbl.stts.entries.len(),
            stsz_count,
            stbl.stsc.entries.len(),
            chunks,
            chunks64
        ),
        (0, 0, 0, 0, 0),
        "{name}: stts, stsz, stsc, stco and co64 must be empty"
    );
    assert_eq!(stbl.stsd.codecs.len(), 1, "{name}: one sample entry");
    let edits = trak
        .edts
        .as_ref()
        .and_then(|edts| edts.elst.as_ref())
        .map_or(&[][..], |elst| &elst.entries[..]);
    assert!(edits.len() <= 1, "{name}: more than one edit");
    let edit_start = edits.first().map_or(0, |edit| {
        assert_eq!(
            edit.segment_duration, 0,
            "{name}: the edit spans the whole fragmented track"
        );
        edit.media_time.unwrap_or_else(|| panic!("{name}: an empty edit"))
    });
    Init {
        track_id,
        timescale: trak.mdia.mdhd.timescale,
        codec: stbl.stsd.codecs[0].clone(),
        edit_start,
        trex: trexes[0].clone(),
    }
}

/// Reads a media segment: moof + mdat and nothing else; one traf of the init's track with a
/// tfdt; every sample's duration, size and flags from trun, tfhd or trex; the trun data
/// offsets (from the moof) pointing into the mdat, whose payload the samples fill exactly.
pub fn read_fragment(path: &Path, init: &Init) -> Fragment {
    let name = path.display();
    let boxes = top_level(path);
    assert_eq!(
        kinds(&boxes),
        [FourCC::new(b"moof"), FourCC::new(b"mdat")],
        "{name}: top-level boxes"
    );
    let mut boxes = boxes.into_iter();
    let (Some((Any::Moof(moof), moof_size)), Some((Any::Mdat(mdat), mdat_size))) = (boxes.next(), boxes.next()) else {
        unreachable!("moof then mdat")
    };
    assert_eq!(moof.traf.len(), 1, "{name}: one traf");
    let traf = &moof.traf[0];
    let tfhd = &traf.tfhd;
    assert_eq!(tfhd.track_id, init.track_id, "{name}: tfhd track_ID");
    assert_eq!(tfhd.base_data_offset, None, "{name}: CMAF has no base-data-offset");
    let tfdt = traf
        .tfdt
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: the traf has no tfdt"));
    assert!(!traf.trun.is_empty(), "{name}: no trun");
    let trex = &init.trex;
    let default_flags = tfhd.default_sample_flags.unwrap_or(trex.default_sample_flags);
    let mut samples = Vec::new();
    // The data of each run follows the previous one's, from the start of the mdat's payload.
    let mut data_offset = moof_size + mdat_size - mdat.data.len();
    for trun in &traf.trun {
        assert_eq!(
            trun.data_offset.map(|offset| offset as usize),
            Some(data_offset),
            "{name}: trun data_offset must point at its samples in the mdat"
        );
        for entry in trun.samples.iter() {
            let sample = Sample {
                duration: entry
                    .duration
                    .or(tfhd.default_sample_duration)
                    .unwrap_or(trex.default_sample_duration),
                size: entry
                    .size
                    .or(tfhd.default_sample_size)
                    .unwrap_or(trex.default_sample_size),
                sync: entry.flags.unwrap_or(default_flags) & NON_SYNC == 0,
                composition_offset: entry.cts.unwrap_or(0),
            };
            data_offset += sample.size as usize;
            samples.push(sample);
        }
    }
    let sample_bytes: usize = samples.iter().map(|s| s.size as usize).sum();
    assert_eq!(sample_bytes, mdat.data.len(), "{name}: sample sizes vs mdat payload");
    Fragment {
        sequence_number: moof.mfhd.sequence_number,
        decode_time: tfdt.base_media_decode_time,
        samples,
    }
}

/// Reads an init segment and its media segments, and checks the track as a whole: mfhd
/// sequence numbers 1, 2, 3…; each tfdt is the previous one plus its duration; a video
/// fragment starts with a sync sample that is also presented first, at its tfdt (once the edit
/// list has taken its start off the composition times).
pub fn read_track(init: &Path, segments: &[PathBuf]) -> Track {
    let init = read_init(init);
    let fragments: Vec<Fragment> = segments.iter().map(|path| read_fragment(path, &init)).collect();
    let mut next_decode_time = None;
    for (index, (fragment, path)) in fragments.iter().zip(segments).enumerate() {
        let name = path.display();
        assert_eq!(
            fragment.sequence_number as usize,
            index + 1,
            "{name}: mfhd sequence_number"
        );
        assert!(!fragment.samples.is_empty(), "{name}: no sample");
        if let Some(expected) = next_decode_time {
            assert_eq!(
                fragment.decode_time, expected,
                "{name}: tfdt must follow on the previous fragment"
            );
        }
        next_decode_time = Some(fragment.decode_time + fragment.duration());
        if init.is_video() {
            let first = &fragment.samples[0];
            assert!(first.sync, "{name}: the first sample is not a sync sample");
            let edit_start = init.edit_start as i64;
            assert_eq!(
                first.composition_offset - edit_start,
                0,
                "{name}: the first sample's composition offset less the edit list's start"
            );
            assert_eq!(
                fragment.earliest_presentation() - edit_start,
                fragment.decode_time as i64,
                "{name}: a sample is presented before the tfdt"
            );
        }
    }
    Track { init, fragments }
}
