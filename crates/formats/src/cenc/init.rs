//! The init segment of a protected track: its sample entry wrapped as `encv`/`enca` with the
//! scheme information (ISO/IEC 23001-7 §8, ISO/IEC 14496-12 §8.12), PSSH boxes in `moov`.

use super::{CencError, Codec, Protection, Scheme, TrackInfo};
use crate::bmff::{self, BoxError, BoxRef};
use crate::boxed;

/// The clear sample entry of an init segment's only track, and the boxes that hold it, outermost
/// first (moov, trak, mdia, minf, stbl, stsd).
struct Entry {
    ancestors: Vec<BoxRef>,
    entry: BoxRef,
}

fn find_entry(init: &[u8]) -> Result<Entry, CencError> {
    let moov = bmff::child(init, 0, init.len(), b"moov")?.ok_or(BoxError::Missing("moov"))?;
    let traks: Vec<BoxRef> = bmff::children(init, moov.payload, moov.end)?
        .into_iter()
        .filter(|b| &b.kind == b"trak")
        .collect();
    let [trak] = traks[..] else {
        return Err(CencError::TrackCount(traks.len()));
    };
    let mut ancestors = vec![moov, trak];
    for kind in [b"mdia", b"minf", b"stbl", b"stsd"] {
        let parent = ancestors[ancestors.len() - 1];
        let found = bmff::child(init, parent.payload, parent.end, kind)?
            .ok_or(BoxError::Missing(std::str::from_utf8(kind).expect("ASCII")))?;
        ancestors.push(found);
    }
    let stsd = ancestors[ancestors.len() - 1];
    // stsd: version and flags, entry count, then the entries; all share the first one's key.
    let entry = bmff::children(init, stsd.payload + 8, stsd.end)?
        .into_iter()
        .next()
        .ok_or(BoxError::Missing("sample entry"))?;
    Ok(Entry { ancestors, entry })
}

/// The fields every visual sample entry has before its boxes (ISO/IEC 14496-12 §12.1.3).
const VISUAL_FIELDS: usize = 78;
/// The same for audio (§12.2.3, version 0).
const AUDIO_FIELDS: usize = 28;

fn is_audio(kind: &[u8; 4]) -> bool {
    matches!(kind, b"mp4a" | b"ac-3" | b"ec-3" | b"Opus" | b"fLaC")
}

/// What the encryption of the track's fragments needs, read from its clear init segment.
pub fn track_info(init: &[u8]) -> Result<TrackInfo, CencError> {
    let Entry { ancestors, entry } = find_entry(init)?;
    let (moov, trak) = (ancestors[0], ancestors[1]);
    let tkhd = bmff::child(init, trak.payload, trak.end, b"tkhd")?.ok_or(BoxError::Missing("tkhd"))?;
    let version = *init.get(tkhd.payload).ok_or(BoxError::Truncated(tkhd.start))?;
    // Version and flags, then creation and modification times (8 or 16 bytes), then track_ID.
    let id_at = tkhd.payload + if version == 1 { 20 } else { 12 };
    let id_bytes = init.get(id_at..id_at + 4).filter(|_| id_at + 4 <= tkhd.end);
    let track_id = u32::from_be_bytes(
        id_bytes
            .ok_or(BoxError::Truncated(tkhd.start))?
            .try_into()
            .expect("4 bytes"),
    );
    let codec = codec(init, &entry)?;
    let default_sample_size = bmff::track_defaults(&init[moov.start..moov.end])?
        .iter()
        .find(|d| d.track_id == track_id)
        .map_or(0, |d| d.size);
    Ok(TrackInfo {
        track_id,
        codec,
        default_sample_size,
    })
}

/// A decoder configuration record's NAL length size and parameter sets.
type DecoderConfig = (u8, Vec<Vec<u8>>);

fn codec(init: &[u8], entry: &BoxRef) -> Result<Codec, CencError> {
    if is_audio(&entry.kind) {
        return Ok(Codec::Audio);
    }
    let (config, hevc) = match &entry.kind {
        b"avc1" | b"avc3" => (b"avcC", false),
        b"hvc1" | b"hev1" => (b"hvcC", true),
        other => return Err(CencError::UnsupportedEntry(String::from_utf8_lossy(other).into_owned())),
    };
    let boxes_at = entry.payload + VISUAL_FIELDS;
    if boxes_at > entry.end {
        return Err(BoxError::Truncated(entry.start).into());
    }
    let name = std::str::from_utf8(config).expect("ASCII");
    let found = bmff::child(init, boxes_at, entry.end, config)?.ok_or(CencError::BadConfig(name))?;
    let record = &init[found.payload..found.end];
    let read = if hevc { hevc_config(record) } else { avc_config(record) };
    let (nal_length_size, parameter_sets) = read.ok_or(CencError::BadConfig(name))?;
    Ok(if hevc {
        Codec::H265 {
            nal_length_size,
            parameter_sets,
        }
    } else {
        Codec::H264 {
            nal_length_size,
            parameter_sets,
        }
    })
}

/// An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1): lengthSizeMinusOne + 1 and
/// the NAL units of its arrays (VPS, SPS, PPS, SEI).
fn hevc_config(record: &[u8]) -> Option<DecoderConfig> {
    let nal_length_size = (record.get(21)? & 3) + 1;
    let arrays = *record.get(22)?;
    let mut at = 23;
    let mut sets = Vec::new();
    for _ in 0..arrays {
        let count = u16::from_be_bytes([*record.get(at + 1)?, *record.get(at + 2)?]);
        at += 3;
        read_nal_units(record, &mut at, count, &mut sets)?;
    }
    (nal_length_size != 3).then_some((nal_length_size, sets))
}

/// `count` NAL units of a configuration record from `at` on, each after its 16-bit length.
fn read_nal_units(record: &[u8], at: &mut usize, count: u16, sets: &mut Vec<Vec<u8>>) -> Option<()> {
    for _ in 0..count {
        let len = usize::from(u16::from_be_bytes([*record.get(*at)?, *record.get(*at + 1)?]));
        sets.push(record.get(*at + 2..*at + 2 + len)?.to_vec());
        *at += 2 + len;
    }
    Some(())
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1): lengthSizeMinusOne + 1 and
/// the SPS and PPS NAL units.
fn avc_config(record: &[u8]) -> Option<DecoderConfig> {
    let nal_length_size = (record.get(4)? & 3) + 1;
    let mut at = 5;
    let mut sets = Vec::new();
    for count_mask in [0x1f, 0xff] {
        let count = record.get(at)? & count_mask;
        at += 1;
        read_nal_units(record, &mut at, u16::from(count), &mut sets)?;
    }
    // A length size of 3 is not allowed, and the encryption reads lengths of 1, 2 or 4 bytes.
    (nal_length_size != 3).then_some((nal_length_size, sets))
}

/// The init segment with its track's sample entry protected by `protection` and the given PSSH
/// boxes (whole boxes, e.g. from [`super::pssh`]) added at the end of `moov`. The segment must
/// hold one track (CMAF); its sample entry must be H.264 (`avc1`, `avc3`), HEVC (`hvc1`,
/// `hev1`) or audio. With `clear_lead`, the clear sample entry stays too, as sample description
/// 2, for the fragments [`super::FragmentEncryptor::leave_clear`] marks (as Shaka Packager
/// does for a clear lead).
pub fn protect_init(
    init: &[u8],
    protection: &Protection,
    psshs: &[Vec<u8>],
    clear_lead: bool,
) -> Result<Vec<u8>, CencError> {
    protection.check()?;
    let Entry { ancestors, entry } = find_entry(init)?;
    let audio = is_audio(&entry.kind);
    codec(init, &entry)?;
    let fields = if audio { AUDIO_FIELDS } else { VISUAL_FIELDS };
    if entry.payload + fields > entry.end {
        return Err(BoxError::Truncated(entry.start).into());
    }
    let sinf = scheme_information(entry.kind, protection, audio);
    let clear_entry = if clear_lead { &init[entry.start..entry.end] } else { &[] };
    let mut out = [&init[..entry.end], &sinf, clear_entry, &init[entry.end..]].concat();
    out[entry.start + 4..entry.start + 8].copy_from_slice(if audio { b"enca" } else { b"encv" });
    bmff::grow(&mut out, entry.start, sinf.len() as u64)?;
    let added = sinf.len() + clear_entry.len();
    for parent in &ancestors {
        bmff::grow(&mut out, parent.start, added as u64)?;
    }
    if clear_lead {
        let stsd = ancestors[ancestors.len() - 1];
        let count = stsd.payload + 4;
        if out[count..count + 4] != 1u32.to_be_bytes() {
            return Err(CencError::Unsupported("clear lead with several sample entries"));
        }
        out[count..count + 4].copy_from_slice(&2u32.to_be_bytes());
    }
    let moov = ancestors[0];
    let psshs = psshs.concat();
    let moov_end = moov.end + added;
    out.splice(moov_end..moov_end, psshs.iter().copied());
    bmff::grow(&mut out, moov.start, psshs.len() as u64)?;
    Ok(out)
}

/// `sinf`: the original format, the scheme, and the track encryption defaults.
fn scheme_information(original: [u8; 4], protection: &Protection, audio: bool) -> Vec<u8> {
    let schm = [
        &[0u8; 4][..],
        &protection.scheme.fourcc(),
        &0x0001_0000u32.to_be_bytes(),
    ]
    .concat();
    let tenc = match protection.scheme {
        // Version 0: two reserved bytes, isProtected, the per-sample IV size, the KID.
        Scheme::Cenc => [&[0u8, 0, 0, 0, 0, 0, 1, protection.iv.len() as u8][..], &protection.kid].concat(),
        // Version 1: the pattern (1:9 for video, none for audio), no per-sample IV, the KID
        // and the constant IV.
        Scheme::Cbcs => [
            &[1u8, 0, 0, 0, 0, if audio { 0x00 } else { 0x19 }, 1, 0][..],
            &protection.kid,
            &[protection.iv.len() as u8],
            &protection.iv,
        ]
        .concat(),
    };
    let schi = boxed(b"schi", &boxed(b"tenc", &tenc));
    boxed(
        b"sinf",
        &[boxed(b"frma", &original), boxed(b"schm", &schm), schi].concat(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KID: [u8; 16] = [0x11; 16];

    fn avc1() -> Vec<u8> {
        // avcC: version 1, High 4.0, lengthSizeMinusOne 3, one SPS, one PPS.
        let avcc = [
            &[1u8, 100, 0, 40, 0xff, 0xe1, 0, 4][..],
            &[0x67, 100, 0, 40],
            &[1, 0, 2],
            &[0x68, 0xee],
        ]
        .concat();
        boxed(b"avc1", &[vec![0; VISUAL_FIELDS], boxed(b"avcC", &avcc)].concat())
    }

    fn init_with(entry: &[u8]) -> Vec<u8> {
        let stsd = boxed(b"stsd", &[&[0u8, 0, 0, 0, 0, 0, 0, 1][..], entry].concat());
        let stbl = boxed(b"stbl", &[stsd, boxed(b"stts", &[0; 8])].concat());
        let mdia = boxed(b"mdia", &boxed(b"minf", &stbl));
        let mut tkhd = vec![0u8; 84];
        tkhd[12..16].copy_from_slice(&7u32.to_be_bytes());
        let trak = boxed(b"trak", &[boxed(b"tkhd", &tkhd), mdia].concat());
        let trex = [
            &[0u8; 4][..],
            &7u32.to_be_bytes(),
            &1u32.to_be_bytes(),
            &1024u32.to_be_bytes(),
            &600u32.to_be_bytes(),
            &[0; 4],
        ]
        .concat();
        let mvex = boxed(b"mvex", &boxed(b"trex", &trex));
        let moov = boxed(b"moov", &[boxed(b"mvhd", &[0; 100]), trak, mvex].concat());
        [boxed(b"ftyp", b"iso6\0\0\0\0"), moov].concat()
    }

    #[test]
    fn reads_the_track_and_its_parameter_sets() {
        let info = track_info(&init_with(&avc1())).unwrap();
        assert_eq!(
            info,
            TrackInfo {
                track_id: 7,
                codec: Codec::H264 {
                    nal_length_size: 4,
                    parameter_sets: vec![vec![0x67, 100, 0, 40], vec![0x68, 0xee]],
                },
                default_sample_size: 600,
            }
        );
    }

    #[test]
    fn cenc_video_entry_becomes_encv_with_its_scheme_information() {
        let protection = Protection {
            scheme: Scheme::Cenc,
            kid: KID,
            key: [0; 16],
            iv: vec![9; 8],
        };
        let pssh = boxed(b"pssh", &[0; 24]);
        let protected = protect_init(&init_with(&avc1()), &protection, std::slice::from_ref(&pssh), false).unwrap();
        // ISO/IEC 23001-7 §8.2 (tenc version 0: reserved, reserved, isProtected 1, IV size 8,
        // KID) and ISO/IEC 14496-12 §8.12 (frma, schm version 0 'cenc' 1.0).
        let tenc = [&[0u8, 0, 0, 0, 0, 0, 1, 8][..], &KID].concat();
        let sinf = boxed(
            b"sinf",
            &[
                boxed(b"frma", b"avc1"),
                boxed(b"schm", &[0, 0, 0, 0, b'c', b'e', b'n', b'c', 0, 1, 0, 0]),
                boxed(b"schi", &boxed(b"tenc", &tenc)),
            ]
            .concat(),
        );
        let encv = boxed(b"encv", &[&avc1()[8..], &sinf].concat());
        let mut expected = init_with(&encv);
        let moov_end = expected.len();
        expected.extend_from_slice(&pssh);
        let moov_size = u32::from_be_bytes(expected[16..20].try_into().unwrap()) + pssh.len() as u32;
        expected[16..20].copy_from_slice(&moov_size.to_be_bytes());
        assert_eq!(moov_end, 16 + moov_size as usize - pssh.len());
        assert_eq!(protected, expected);
    }

    #[test]
    fn cbcs_audio_tenc_has_no_pattern_and_a_constant_iv() {
        let mp4a = boxed(b"mp4a", &[vec![0; AUDIO_FIELDS], boxed(b"esds", &[0; 20])].concat());
        let protection = Protection {
            scheme: Scheme::Cbcs,
            kid: KID,
            key: [0; 16],
            iv: (0..16).collect(),
        };
        let protected = protect_init(&init_with(&mp4a), &protection, &[], false).unwrap();
        // tenc version 1: reserved, crypt/skip 0/0, isProtected 1, IV size 0, KID, constant IV.
        let tenc = [
            &[1u8, 0, 0, 0, 0, 0, 1, 0][..],
            &KID,
            &[16],
            &(0..16).collect::<Vec<u8>>(),
        ]
        .concat();
        let at = protected.windows(4).position(|w| w == b"tenc").unwrap() + 4;
        assert_eq!(&protected[at..at + tenc.len()], &tenc[..]);
        assert!(protected.windows(4).any(|w| w == b"enca"));
        assert_eq!(
            protected.len(),
            init_with(&mp4a).len() + 8 + 12 + 20 + 8 + 8 + tenc.len()
        );
        let video = Protection {
            iv: vec![0; 16],
            ..protection
        };
        let protected = protect_init(&init_with(&avc1()), &video, &[], false).unwrap();
        let at = protected.windows(4).position(|w| w == b"tenc").unwrap() + 4;
        assert_eq!(&protected[at..at + 8], &[1, 0, 0, 0, 0, 0x19, 1, 0], "pattern 1:9");
    }

    #[test]
    fn a_clear_lead_keeps_the_clear_entry_as_description_2() {
        let protection = Protection {
            scheme: Scheme::Cbcs,
            kid: KID,
            key: [0; 16],
            iv: vec![0; 16],
        };
        let init = init_with(&avc1());
        let protected = protect_init(&init, &protection, &[], true).unwrap();
        let without = protect_init(&init, &protection, &[], false).unwrap();
        assert_eq!(protected.len(), without.len() + avc1().len());
        let Entry { ancestors, entry } = find_entry(&protected).unwrap();
        let stsd = ancestors[ancestors.len() - 1];
        assert_eq!(&protected[stsd.payload + 4..stsd.payload + 8], &[0, 0, 0, 2]);
        assert_eq!(&entry.kind, b"encv");
        assert_eq!(&protected[entry.end..entry.end + avc1().len()], &avc1()[..]);
        assert_eq!(entry.end + avc1().len(), stsd.end, "the clear entry fills the stsd");
    }

    #[test]
    fn refuses_what_it_cannot_protect() {
        let protection = Protection {
            scheme: Scheme::Cbcs,
            kid: KID,
            key: [0; 16],
            iv: vec![0; 8],
        };
        let init = init_with(&avc1());
        assert_eq!(
            protect_init(&init, &protection, &[], false),
            Err(CencError::IvSize(Scheme::Cbcs, 8))
        );
        let protection = Protection {
            iv: vec![0; 16],
            ..protection
        };
        let vp09 = boxed(b"vp09", &[0; VISUAL_FIELDS]);
        assert_eq!(
            protect_init(&init_with(&vp09), &protection, &[], false),
            Err(CencError::UnsupportedEntry("vp09".into()))
        );
        // Two tracks in one init segment.
        let moov = bmff::child(&init, 0, init.len(), b"moov").unwrap().unwrap();
        let trak = bmff::child(&init, moov.payload, moov.end, b"trak").unwrap().unwrap();
        let two = boxed(
            b"moov",
            &[&init[moov.payload..moov.end], &init[trak.start..trak.end]].concat(),
        );
        assert_eq!(
            protect_init(&two, &protection, &[], false),
            Err(CencError::TrackCount(2))
        );
        crate::fuzz_bytes(&init, 20_000, |bytes| {
            let _ = protect_init(bytes, &protection, &[], false);
            let _ = track_info(bytes);
        });
        for len in 0..init.len() {
            assert!(protect_init(&init[..len], &protection, &[], false).is_err());
        }
    }
}
