//! Media segments encrypted in place: each moof's samples of the protected track encrypted where
//! they lie in the mdat, and `saiz`, `saio` and `senc` (ISO/IEC 23001-7 §7) added to its traf.

use aes::Aes128;

use super::crypt::{self, Subsample};
use super::hevc::H265Headers;
use super::nal::{self, H264Headers, SliceHeaders};
use super::{CencError, Codec, Protection, Scheme, TrackInfo};
use crate::bmff::{self, BoxError, BoxRef, Fields};
use crate::boxed;

/// Encrypts one track's media segments, in order: it carries the `cenc` IV from each sample to
/// the next, across segments, so that no IV repeats under a key.
pub struct FragmentEncryptor {
    protection: Protection,
    track: TrackInfo,
    block_cipher: Aes128,
    /// The next sample's IV (`cenc`); the constant IV (`cbcs`).
    next_iv: [u8; 16],
    /// Video: the NAL length size and the parameter sets its slice headers are read with.
    video: Option<(usize, Box<dyn SliceHeaders>)>,
    /// The key ID of the crypto period in force; when it is not the init segment's default
    /// (`protection.kid`), each fragment names it in a `seig` sample group.
    period_kid: [u8; 16],
    /// The `pssh` boxes each fragment's moof carries (key rotation), one after the other.
    moof_psshs: Vec<u8>,
}

/// One sample's encryption: its IV as `senc` writes it and its subsamples.
struct SampleInfo {
    iv: Vec<u8>,
    subsamples: Vec<Subsample>,
}

const TFHD_BASE_DATA_OFFSET: u32 = 0x01;
const TFHD_SAMPLE_DESCRIPTION: u32 = 0x02;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x01;
const SENC_SUBSAMPLES: u8 = 0x02;

impl FragmentEncryptor {
    /// `track` comes from [`super::track_info`] on the track's clear init segment.
    pub fn new(protection: Protection, track: TrackInfo) -> Result<FragmentEncryptor, CencError> {
        protection.check()?;
        let mut next_iv = [0u8; 16];
        next_iv[..protection.iv.len()].copy_from_slice(&protection.iv);
        let slice_error = |reason| CencError::SliceHeader { sample: 0, reason };
        let video: Option<(usize, Box<dyn SliceHeaders>)> = match &track.codec {
            Codec::H264 {
                nal_length_size,
                parameter_sets,
            } => Some((
                usize::from(*nal_length_size),
                Box::new(nal::learnt::<H264Headers>(parameter_sets).map_err(slice_error)?),
            )),
            Codec::H265 {
                nal_length_size,
                parameter_sets,
            } => Some((
                usize::from(*nal_length_size),
                Box::new(nal::learnt::<H265Headers>(parameter_sets).map_err(slice_error)?),
            )),
            Codec::Audio => None,
        };
        Ok(FragmentEncryptor {
            block_cipher: crypt::block_cipher(&protection.key),
            period_kid: protection.kid,
            moof_psshs: Vec::new(),
            protection,
            track,
            next_iv,
            video,
        })
    }

    /// Encrypts the segments that follow with the key of another crypto period (ISO/IEC 23001-7
    /// §6: key rotation), as Shaka Packager does: each fragment gets a `seig` sample group
    /// description naming `kid` (none when `kid` is the init segment's default) and its moof the
    /// `psshs` of the period, so that players ask for the new key. The IVs carry on.
    pub fn enter_period(&mut self, kid: [u8; 16], key: [u8; 16], psshs: &[Vec<u8>]) {
        self.block_cipher = crypt::block_cipher(&key);
        self.protection.key = key;
        self.period_kid = kid;
        self.moof_psshs = psshs.concat();
    }

    /// Encrypts every moof + mdat of `segment` (a CMAF segment or chunk: styp, prft and emsg
    /// pass through) in place; the track fragments grow by their `saiz`, `saio` and `senc`.
    /// On error the segment is half-done: the caller discards it.
    pub fn protect(&mut self, segment: &mut Vec<u8>) -> Result<(), CencError> {
        let mut at = 0;
        loop {
            let Some(next) = bmff::iter_children(segment, at, segment.len()).next() else {
                return Ok(());
            };
            let next = next?;
            match &next.kind {
                b"moof" => {
                    let mdat = following_mdat(segment, next.end)?;
                    let added = self.protect_moof(segment, next, mdat)?;
                    at = mdat.end + added;
                }
                b"sidx" | b"ssix" => return Err(CencError::Unsupported("sidx")),
                _ => at = next.end,
            }
        }
    }

    /// Leaves every moof + mdat of `segment` clear but points the track's fragments at sample
    /// description 2, the clear entry `protect_init` keeps with `clear_lead`: the clear lead of
    /// an encrypted track. The IVs of the encrypted segments that follow do not move.
    pub fn leave_clear(&self, segment: &mut Vec<u8>) -> Result<(), CencError> {
        let mut at = 0;
        loop {
            let Some(next) = bmff::iter_children(segment, at, segment.len()).next() else {
                return Ok(());
            };
            let next = next?;
            at = next.end;
            if &next.kind == b"moof" {
                let traf = bmff::children(segment, next.payload, next.end)?
                    .into_iter()
                    .filter(|b| &b.kind == b"traf")
                    .find(|traf| tfhd(segment, traf).is_ok_and(|(_, id)| id == self.track.track_id))
                    .ok_or(CencError::NoTrack(self.track.track_id))?;
                at += point_at_clear_entry(segment, next, traf)?;
            }
        }
    }

    fn protect_moof(&mut self, segment: &mut Vec<u8>, moof: BoxRef, mdat: BoxRef) -> Result<usize, CencError> {
        let trafs: Vec<BoxRef> = bmff::children(segment, moof.payload, moof.end)?
            .into_iter()
            .filter(|b| &b.kind == b"traf")
            .collect();
        let mut ours = None;
        for (index, traf) in trafs.iter().enumerate() {
            let (flags, track_id) = tfhd(segment, traf)?;
            if track_id == self.track.track_id {
                if flags & TFHD_BASE_DATA_OFFSET != 0 || (index > 0 && flags & TFHD_DEFAULT_BASE_IS_MOOF == 0) {
                    return Err(CencError::Unsupported("traf whose data is not addressed from its moof"));
                }
                ours = Some(*traf);
            }
        }
        let traf = ours.ok_or(CencError::NoTrack(self.track.track_id))?;
        for kind in [b"senc", b"saiz", b"saio"] {
            if bmff::child(segment, traf.payload, traf.end, kind)?.is_some() {
                return Err(CencError::AlreadyEncrypted(std::str::from_utf8(kind).expect("ASCII")));
            }
        }
        let samples = sample_ranges(segment, &traf, moof, mdat, self.track.default_sample_size)?;
        let infos = samples
            .iter()
            .enumerate()
            .map(|(index, range)| self.encrypt_sample(&mut segment[range.clone()], index as u64))
            .collect::<Result<Vec<_>, _>>()?;
        let mut boxes = self.auxiliary_boxes(&infos, traf.end - moof.start)?;
        if self.period_kid != self.protection.kid {
            boxes.extend(self.sample_group_boxes(infos.len())?);
        }
        let in_traf = boxes.len();
        segment.splice(traf.end..traf.end, boxes);
        for parent in [moof.start, traf.start] {
            bmff::grow(segment, parent, in_traf as u64)?;
        }
        let moof_end = moof.end + in_traf;
        segment.splice(moof_end..moof_end, self.moof_psshs.iter().copied());
        bmff::grow(segment, moof.start, self.moof_psshs.len() as u64)?;
        let added = in_traf + self.moof_psshs.len();
        shift_data_offsets(segment, moof.start, added)?;
        Ok(added)
    }

    fn encrypt_sample(&mut self, sample: &mut [u8], index: u64) -> Result<SampleInfo, CencError> {
        let subsamples = match &mut self.video {
            Some((length_size, headers)) => {
                let align = self.protection.scheme == Scheme::Cenc;
                nal::subsamples(sample, *length_size, headers.as_mut(), align)
                    .map_err(|reason| CencError::SliceHeader { sample: index, reason })?
            }
            None => Vec::new(),
        };
        match self.protection.scheme {
            Scheme::Cenc => {
                let iv = self.next_iv;
                let blocks = crypt::ctr_sample(&self.protection.key, &iv, sample, &subsamples);
                self.advance_iv(blocks);
                Ok(SampleInfo {
                    iv: iv[..self.protection.iv.len()].to_vec(),
                    subsamples,
                })
            }
            Scheme::Cbcs => {
                let pattern = if self.video.is_some() { (1, 9) } else { (0, 0) };
                crypt::cbcs_sample(&self.block_cipher, &self.next_iv, sample, &subsamples, pattern);
                Ok(SampleInfo {
                    iv: Vec::new(),
                    subsamples,
                })
            }
        }
    }

    /// An 8-byte IV counts samples; a 16-byte one moves past the counter blocks the sample used,
    /// so that no counter block is used twice.
    fn advance_iv(&mut self, blocks: u64) {
        let (high, low) = self.next_iv.split_at_mut(8);
        if self.protection.iv.len() == 8 {
            let next = u64::from_be_bytes((&*high).try_into().expect("8 bytes")).wrapping_add(1);
            high.copy_from_slice(&next.to_be_bytes());
        } else {
            let next = u64::from_be_bytes((&*low).try_into().expect("8 bytes")).wrapping_add(blocks);
            low.copy_from_slice(&next.to_be_bytes());
        }
    }

    /// `sgpd` and `sbgp` of grouping type `seig` (ISO/IEC 23001-7 §6, ISO/IEC 14496-12 §8.9):
    /// one CencSampleEncryptionInformationGroupEntry with the period's KID, and every one of the
    /// fragment's `samples` mapped to it, index 0x10001 being the fragment's own first entry.
    fn sample_group_boxes(&self, samples: usize) -> Result<Vec<u8>, CencError> {
        let cbcs = self.protection.scheme == Scheme::Cbcs;
        let pattern = if cbcs && self.video.is_some() { 0x19 } else { 0 };
        let per_sample_iv_size = if cbcs { 0 } else { self.protection.iv.len() as u8 };
        let mut entry = vec![0, pattern, 1, per_sample_iv_size];
        entry.extend_from_slice(&self.period_kid);
        if cbcs {
            entry.push(self.protection.iv.len() as u8);
            entry.extend_from_slice(&self.protection.iv);
        }
        let sgpd = [
            &[1u8, 0, 0, 0][..],
            b"seig",
            &(entry.len() as u32).to_be_bytes(),
            &1u32.to_be_bytes(),
            &entry,
        ]
        .concat();
        let samples = u32::try_from(samples).map_err(|_| CencError::TooLarge)?;
        let sbgp = [
            &[0u8, 0, 0, 0][..],
            b"seig",
            &1u32.to_be_bytes(),
            &samples.to_be_bytes(),
            &0x1_0001u32.to_be_bytes(),
        ]
        .concat();
        Ok([boxed(b"sgpd", &sgpd), boxed(b"sbgp", &sbgp)].concat())
    }

    /// saiz, saio and senc, in that order, for a traf that ends `traf_end` bytes after its moof's
    /// first byte; saio points at senc's first sample.
    fn auxiliary_boxes(&self, infos: &[SampleInfo], traf_end: usize) -> Result<Vec<u8>, CencError> {
        let subsampled = self.video.is_some();
        let mut senc = vec![0, 0, 0, if subsampled { SENC_SUBSAMPLES } else { 0 }];
        senc.extend_from_slice(&(infos.len() as u32).to_be_bytes());
        let mut sizes = Vec::with_capacity(infos.len());
        for (index, info) in infos.iter().enumerate() {
            let too_many = || CencError::TooManySubsamples(index as u64);
            let start = senc.len();
            senc.extend_from_slice(&info.iv);
            if subsampled {
                let count = u16::try_from(info.subsamples.len()).map_err(|_| too_many())?;
                senc.extend_from_slice(&count.to_be_bytes());
                for sub in &info.subsamples {
                    senc.extend_from_slice(&sub.clear.to_be_bytes());
                    senc.extend_from_slice(&sub.protected.to_be_bytes());
                }
            }
            sizes.push(u8::try_from(senc.len() - start).map_err(|_| too_many())?);
        }
        let saiz = boxed(b"saiz", &sample_info_sizes(&sizes));
        // saio: version 0, one offset; the senc's samples follow its 16 bytes of header.
        let saio_len = 8 + 12;
        let offset = traf_end + saiz.len() + saio_len + 16;
        let offset = u32::try_from(offset).map_err(|_| CencError::TooLarge)?;
        let saio = boxed(
            b"saio",
            &[&[0u8; 4][..], &1u32.to_be_bytes(), &offset.to_be_bytes()].concat(),
        );
        Ok([saiz, saio, boxed(b"senc", &senc)].concat())
    }
}

/// saiz's payload: one default size when every sample's is the same, else the table.
fn sample_info_sizes(sizes: &[u8]) -> Vec<u8> {
    let uniform = sizes.first().filter(|first| sizes.iter().all(|s| s == *first));
    let mut saiz = vec![0, 0, 0, 0];
    match uniform {
        Some(&size) if size > 0 => saiz.push(size),
        _ => saiz.push(0),
    }
    saiz.extend_from_slice(&(sizes.len() as u32).to_be_bytes());
    if saiz[4] == 0 {
        saiz.extend_from_slice(sizes);
    }
    saiz
}

fn following_mdat(segment: &[u8], from: usize) -> Result<BoxRef, CencError> {
    bmff::iter_children(segment, from, segment.len())
        .find(|b| b.as_ref().map_or(true, |b| &b.kind == b"mdat"))
        .ok_or(BoxError::Missing("mdat"))?
        .map_err(CencError::from)
}

/// Sets the traf's sample_description_index to 2, adding the field to its tfhd when it has none;
/// returns the bytes added.
fn point_at_clear_entry(segment: &mut Vec<u8>, moof: BoxRef, traf: BoxRef) -> Result<usize, CencError> {
    let tfhd = bmff::child(segment, traf.payload, traf.end, b"tfhd")?.ok_or(BoxError::Missing("tfhd"))?;
    let (flags, _) = self::tfhd(segment, &traf)?;
    let at = tfhd.payload + 8 + if flags & TFHD_BASE_DATA_OFFSET != 0 { 8 } else { 0 };
    let index = 2u32.to_be_bytes();
    if flags & TFHD_SAMPLE_DESCRIPTION != 0 {
        let field = segment.get_mut(at..at + 4).filter(|_| at + 4 <= tfhd.end);
        field.ok_or(BoxError::Truncated(tfhd.start))?.copy_from_slice(&index);
        return Ok(0);
    }
    if at > tfhd.end {
        return Err(BoxError::Truncated(tfhd.start).into());
    }
    segment.splice(at..at, index);
    segment[tfhd.payload + 3] |= TFHD_SAMPLE_DESCRIPTION as u8;
    for parent in [moof.start, traf.start, tfhd.start] {
        bmff::grow(segment, parent, 4)?;
    }
    shift_data_offsets(segment, moof.start, 4)?;
    Ok(4)
}

/// A tfhd's flags and track ID.
fn tfhd(segment: &[u8], traf: &BoxRef) -> Result<(u32, u32), CencError> {
    let tfhd = bmff::child(segment, traf.payload, traf.end, b"tfhd")?.ok_or(BoxError::Missing("tfhd"))?;
    let mut fields = Fields::new(segment, tfhd);
    Ok((fields.u32()? & 0x00ff_ffff, fields.u32()?))
}

/// Where each sample of a traf lies in the segment, each checked to lie inside the mdat.
fn sample_ranges(
    segment: &[u8],
    traf: &BoxRef,
    moof: BoxRef,
    mdat: BoxRef,
    trex_size: u32,
) -> Result<Vec<std::ops::Range<usize>>, CencError> {
    let default_size = tfhd_default_size(segment, traf)?.unwrap_or(trex_size);
    let mut ranges = Vec::new();
    let mut next = mdat.payload;
    for trun in bmff::children(segment, traf.payload, traf.end)? {
        if &trun.kind != b"trun" {
            continue;
        }
        let mut fields = Fields::new(segment, trun);
        let flags = fields.u32()? & 0x00ff_ffff;
        let count = fields.u32()?;
        if u64::from(count) > (mdat.end - mdat.payload) as u64 + 1 {
            return Err(CencError::SampleOutside(ranges.len() as u64));
        }
        if flags & TRUN_DATA_OFFSET != 0 {
            let offset = i64::from(fields.u32()?.cast_signed());
            next = usize::try_from(moof.start as i64 + offset).map_err(|_| CencError::SampleOutside(0))?;
        }
        fields.optional(flags & 0x04 != 0)?;
        for _ in 0..count {
            fields.optional(flags & 0x100 != 0)?;
            let size = fields.optional(flags & 0x200 != 0)?.unwrap_or(default_size) as usize;
            fields.optional(flags & 0x400 != 0)?;
            fields.optional(flags & 0x800 != 0)?;
            let end = next.checked_add(size).ok_or(CencError::TooLarge)?;
            if next < mdat.payload || end > mdat.end {
                return Err(CencError::SampleOutside(ranges.len() as u64));
            }
            ranges.push(next..end);
            next = end;
        }
    }
    Ok(ranges)
}

/// The tfhd's default_sample_size, when it has one.
fn tfhd_default_size(segment: &[u8], traf: &BoxRef) -> Result<Option<u32>, CencError> {
    let tfhd = bmff::child(segment, traf.payload, traf.end, b"tfhd")?.ok_or(BoxError::Missing("tfhd"))?;
    let mut fields = Fields::new(segment, tfhd);
    let flags = fields.u32()? & 0x00ff_ffff;
    fields.skip(4)?;
    for (flag, width) in [(0x01, 8), (0x02, 4), (0x08, 4)] {
        if flags & flag != 0 {
            fields.skip(width)?;
        }
    }
    Ok(fields.optional(flags & 0x10 != 0)?)
}

/// Adds `by` to every trun data_offset of the moof at `moof_start`: the boxes added to it moved
/// the mdat that far.
fn shift_data_offsets(segment: &mut [u8], moof_start: usize, by: usize) -> Result<(), CencError> {
    let moof = bmff::children(segment, moof_start, segment.len())?[0];
    let mut fields_at = Vec::new();
    for traf in bmff::children(segment, moof.payload, moof.end)? {
        if &traf.kind != b"traf" {
            continue;
        }
        for trun in bmff::children(segment, traf.payload, traf.end)? {
            if &trun.kind != b"trun" {
                continue;
            }
            let mut fields = Fields::new(segment, trun);
            if fields.u32()? & TRUN_DATA_OFFSET != 0 {
                fields.skip(4)?;
                fields.u32()?;
                fields_at.push(trun.payload + 8);
            }
        }
    }
    for at in fields_at {
        let field: &mut [u8; 4] = (&mut segment[at..at + 4])
            .try_into()
            .expect("checked by the sample walk");
        let offset = i64::from(u32::from_be_bytes(*field).cast_signed()) + by as i64;
        let offset = i32::try_from(offset).map_err(|_| CencError::TooLarge)?;
        field.copy_from_slice(&offset.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{KeyIvInit, StreamCipher, array::Array};

    const KEY: [u8; 16] = [0x42; 16];

    fn audio_track() -> TrackInfo {
        TrackInfo {
            track_id: 1,
            codec: Codec::Audio,
            default_sample_size: 0,
        }
    }

    /// moof(mfhd, traf(tfhd, tfdt, trun with data offset and sizes)) + mdat of `samples`.
    fn segment(samples: &[Vec<u8>]) -> Vec<u8> {
        let mut trun = vec![0, 0, 0x02, 0x01];
        trun.extend_from_slice(&(samples.len() as u32).to_be_bytes());
        let moof_len = 8 + 16 + 8 + 16 + 20 + 8 + trun.len() + 4 + 4 * samples.len();
        trun.extend_from_slice(&(moof_len as u32 + 8).to_be_bytes());
        for sample in samples {
            trun.extend_from_slice(&(sample.len() as u32).to_be_bytes());
        }
        let traf = [
            boxed(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]),
            boxed(b"tfdt", &[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            boxed(b"trun", &trun),
        ]
        .concat();
        let moof = [boxed(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]), boxed(b"traf", &traf)].concat();
        assert_eq!(moof.len() + 8, moof_len);
        [boxed(b"moof", &moof), boxed(b"mdat", &samples.concat())].concat()
    }

    fn u32_at(data: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(data[at..at + 4].try_into().unwrap())
    }

    /// Reads the protected segment with the spec's layout: the samples where trun points, and
    /// the senc entries where saio points.
    fn samples_and_ivs(data: &[u8], iv_size: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let moof_len = u32_at(data, 0) as usize;
        let trun = data.windows(4).position(|w| w == b"trun").unwrap() + 4;
        let count = u32_at(data, trun + 4) as usize;
        let mut at = u32_at(data, trun + 8) as usize;
        assert_eq!(at, moof_len + 8, "the data offset points at the mdat's payload");
        let samples = (0..count)
            .map(|i| {
                let size = u32_at(data, trun + 12 + 4 * i) as usize;
                at += size;
                data[at - size..at].to_vec()
            })
            .collect();
        let saio = data.windows(4).position(|w| w == b"saio").unwrap() + 4;
        let senc_samples = u32_at(data, saio + 8) as usize;
        let senc = data.windows(4).position(|w| w == b"senc").unwrap() + 4;
        assert_eq!(senc_samples, senc + 8, "saio points at senc's first sample");
        assert_eq!(u32_at(data, senc + 4) as usize, count);
        let ivs = (0..count)
            .map(|i| data[senc_samples + i * iv_size..senc_samples + (i + 1) * iv_size].to_vec())
            .collect();
        (samples, ivs)
    }

    #[test]
    fn cenc_audio_samples_are_encrypted_whole_with_an_iv_each_carried_across_segments() {
        let clear: Vec<Vec<u8>> = (0..3u8).map(|n| vec![n; 30 + usize::from(n)]).collect();
        let protection = Protection {
            scheme: Scheme::Cenc,
            kid: [1; 16],
            key: KEY,
            iv: vec![0, 0, 0, 0, 0, 0, 0, 0xfe],
        };
        let mut encryptor = FragmentEncryptor::new(protection, audio_track()).unwrap();
        let mut ivs = Vec::new();
        for _ in 0..2 {
            let mut data = segment(&clear);
            encryptor.protect(&mut data).unwrap();
            assert_eq!(
                bmff::children(&data, 0, data.len()).unwrap().len(),
                2,
                "moof and mdat fill the segment"
            );
            let (samples, segment_ivs) = samples_and_ivs(&data, 8);
            for (sample, (plain, iv)) in samples.iter().zip(clear.iter().zip(&segment_ivs)) {
                let mut counter = [0u8; 16];
                counter[..8].copy_from_slice(iv);
                let mut decrypted = sample.clone();
                ctr::Ctr64BE::<Aes128>::new(&Array(KEY), &Array(counter)).apply_keystream(&mut decrypted);
                assert_eq!(&decrypted, plain);
            }
            ivs.extend(segment_ivs);
        }
        let numbers: Vec<u64> = ivs
            .iter()
            .map(|iv| u64::from_be_bytes(iv[..].try_into().unwrap()))
            .collect();
        assert_eq!(numbers, (0xfe..0xfe + 6).collect::<Vec<u64>>());
    }

    #[test]
    fn cbcs_audio_leaves_partial_blocks_clear_and_sizes_its_aux_info_zero() {
        let clear = vec![vec![7u8; 40], vec![8u8; 16]];
        let protection = Protection {
            scheme: Scheme::Cbcs,
            kid: [1; 16],
            key: KEY,
            iv: vec![5; 16],
        };
        let mut data = segment(&clear);
        FragmentEncryptor::new(protection, audio_track())
            .unwrap()
            .protect(&mut data)
            .unwrap();
        let (samples, _) = samples_and_ivs(&data, 0);
        assert_ne!(&samples[0][..32], &clear[0][..32]);
        assert_eq!(&samples[0][32..], &clear[0][32..]);
        assert_ne!(samples[1], clear[1]);
        let saiz = data.windows(4).position(|w| w == b"saiz").unwrap() + 4;
        assert_eq!(&data[saiz..saiz + 11], &[0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0]);
    }

    /// H.264 with a baseline 320x240 SPS and PPS; `slices` P-slice NAL units of an 18-bit header
    /// (3 bytes after the NAL header byte) and 40 bytes of slice data.
    fn h264_sample(slices: usize) -> (TrackInfo, Vec<u8>) {
        let track = TrackInfo {
            track_id: 1,
            codec: Codec::H264 {
                nal_length_size: 4,
                parameter_sets: vec![
                    vec![0x67, 66, 0, 30, 0xda, 0x05, 0x07, 0xe4],
                    vec![0x68, 0xce, 0x3c, 0x80],
                ],
            },
            default_sample_size: 0,
        };
        let nal = [&[0x41u8, 0x9a, 0x02, 0x80][..], &[0x77; 40]].concat();
        let sample = (0..slices)
            .flat_map(|_| [&(nal.len() as u32).to_be_bytes()[..], &nal].concat())
            .collect();
        (track, sample)
    }

    #[test]
    fn video_samples_get_subsamples_until_they_do_not_fit_saiz() {
        let protection = Protection {
            scheme: Scheme::Cenc,
            kid: [1; 16],
            key: KEY,
            iv: vec![0; 8],
        };
        let (track, sample) = h264_sample(2);
        let mut data = segment(&[sample]);
        FragmentEncryptor::new(protection.clone(), track)
            .unwrap()
            .protect(&mut data)
            .unwrap();
        let senc = data.windows(4).position(|w| w == b"senc").unwrap() + 4;
        // Flags 2; one sample: its IV and three subsamples: 4 + 4 clear bytes and 32 protected
        // (the 40 bytes of slice data less their partial last block), the 8 left over joining
        // the next NAL unit's 4 + 4 clear bytes, 32 protected, and the last 8 bytes clear.
        let expected = [
            &[0u8, 0, 0, 2, 0, 0, 0, 1][..],
            &[0; 8],
            &[0, 3, 0, 8, 0, 0, 0, 32, 0, 16, 0, 0, 0, 32, 0, 8, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(&data[senc..senc + expected.len()], &expected[..]);
        let (track, sample) = h264_sample(45);
        let mut data = segment(&[sample]);
        let mut encryptor = FragmentEncryptor::new(protection, track).unwrap();
        assert_eq!(encryptor.protect(&mut data), Err(CencError::TooManySubsamples(0)));
    }

    #[test]
    fn a_clear_fragment_points_at_sample_description_2_and_keeps_its_samples() {
        let clear = vec![vec![7u8; 40], vec![8u8; 16]];
        let protection = Protection {
            scheme: Scheme::Cenc,
            kid: [1; 16],
            key: KEY,
            iv: vec![0; 8],
        };
        let encryptor = FragmentEncryptor::new(protection, audio_track()).unwrap();
        let mut data = segment(&clear);
        encryptor.leave_clear(&mut data).unwrap();
        // tfhd: flags 0x020002, track 1, sample_description_index 2.
        let tfhd = data.windows(4).position(|w| w == b"tfhd").unwrap() + 4;
        assert_eq!(
            &data[tfhd - 8..tfhd + 12],
            &[0, 0, 0, 20, b't', b'f', b'h', b'd', 0, 2, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]
        );
        let moof_len = u32_at(&data, 0) as usize;
        let trun = data.windows(4).position(|w| w == b"trun").unwrap() + 4;
        assert_eq!(
            u32_at(&data, trun + 8) as usize,
            moof_len + 8,
            "the data offset follows the mdat"
        );
        assert_eq!(&data[moof_len + 8..], &clear.concat()[..]);
        // A tfhd that has the field already keeps its size.
        let mut again = data.clone();
        encryptor.leave_clear(&mut again).unwrap();
        assert_eq!(again, data);
    }

    /// The one box of `kind` in `data`, decoded by mp4-atom.
    fn decoded<T: mp4_atom::Atom>(data: &[u8], kind: &[u8; 4]) -> T {
        use mp4_atom::Decode;
        let at = data.windows(4).position(|w| w == kind).unwrap() - 4;
        assert_eq!(data.windows(4).filter(|w| w == kind).count(), 1, "one {kind:?}");
        T::decode(&mut &data[at..]).unwrap()
    }

    #[test]
    fn a_later_crypto_period_names_its_kid_in_a_seig_group_and_its_pssh_in_the_moof() {
        let protection = Protection {
            scheme: Scheme::Cbcs,
            kid: [1; 16],
            key: KEY,
            iv: vec![5; 16],
        };
        let (track, sample) = h264_sample(2);
        let mut encryptor = FragmentEncryptor::new(protection, track).unwrap();
        let mut first = segment(std::slice::from_ref(&sample));
        encryptor.protect(&mut first).unwrap();
        assert!(
            !first.windows(4).any(|w| w == b"sgpd" || w == b"pssh"),
            "the default period names nothing"
        );
        let pssh = boxed(b"pssh", &[0; 24]);
        encryptor.enter_period([2; 16], [0x43; 16], std::slice::from_ref(&pssh));
        let mut later = segment(&[sample.clone(), sample]);
        encryptor.protect(&mut later).unwrap();
        let sgpd: mp4_atom::Sgpd = decoded(&later, b"sgpd");
        assert_eq!(sgpd.grouping_type, mp4_atom::FourCC::new(b"seig"));
        // ISO/IEC 23001-7 §6: reserved, crypt 1 / skip 9, isProtected, no per-sample IV, the
        // KID, then the 16-byte constant IV.
        let entry = [&[0u8, 0x19, 1, 0][..], &[2; 16], &[16], &[5; 16]].concat();
        assert_eq!(sgpd.default_length, Some(entry.len() as u32));
        assert_eq!(
            sgpd.entries.iter().map(|e| e.entry.clone()).collect::<Vec<_>>(),
            vec![mp4_atom::AnySampleGroupEntry::UnknownGroupingType(
                mp4_atom::FourCC::new(b"seig"),
                entry
            )]
        );
        let sbgp: mp4_atom::Sbgp = decoded(&later, b"sbgp");
        assert_eq!(sbgp.grouping_type, mp4_atom::FourCC::new(b"seig"));
        assert_eq!(
            sbgp.entries,
            vec![mp4_atom::SbgpEntry {
                sample_count: 2,
                group_description_index: 0x1_0001
            }]
        );
        let moof_len = u32_at(&later, 0) as usize;
        assert_eq!(
            &later[moof_len - pssh.len()..moof_len],
            &pssh[..],
            "the pssh ends the moof"
        );
        samples_and_ivs(&later, 0);
    }

    #[test]
    fn a_later_cenc_period_encrypts_with_its_key_and_keeps_counting_ivs() {
        let clear: Vec<Vec<u8>> = (0..2u8).map(|n| vec![n; 33]).collect();
        let protection = Protection {
            scheme: Scheme::Cenc,
            kid: [1; 16],
            key: KEY,
            iv: vec![0, 0, 0, 0, 0, 0, 0, 7],
        };
        let mut encryptor = FragmentEncryptor::new(protection, audio_track()).unwrap();
        encryptor.protect(&mut segment(&clear)).unwrap();
        let key = [0x43; 16];
        encryptor.enter_period([2; 16], key, &[]);
        let mut data = segment(&clear);
        encryptor.protect(&mut data).unwrap();
        let sgpd: mp4_atom::Sgpd = decoded(&data, b"sgpd");
        let entry = [&[0u8, 0, 1, 8][..], &[2; 16]].concat();
        assert_eq!(
            sgpd.entries[0].entry,
            mp4_atom::AnySampleGroupEntry::UnknownGroupingType(mp4_atom::FourCC::new(b"seig"), entry)
        );
        let (samples, ivs) = samples_and_ivs(&data, 8);
        assert_eq!(ivs[0], [0, 0, 0, 0, 0, 0, 0, 9]);
        for (sample, (plain, iv)) in samples.iter().zip(clear.iter().zip(&ivs)) {
            let mut counter = [0u8; 16];
            counter[..8].copy_from_slice(iv);
            let mut decrypted = sample.clone();
            ctr::Ctr64BE::<Aes128>::new(&Array(key), &Array(counter)).apply_keystream(&mut decrypted);
            assert_eq!(&decrypted, plain);
        }
    }

    #[test]
    fn refuses_fragments_it_cannot_rewrite() {
        let protection = Protection {
            scheme: Scheme::Cenc,
            kid: [1; 16],
            key: KEY,
            iv: vec![0; 8],
        };
        let mut encryptor = FragmentEncryptor::new(protection, audio_track()).unwrap();
        let clear = segment(&[vec![1; 20], vec![2; 20]]);
        let mut twice = clear.clone();
        encryptor.protect(&mut twice).unwrap();
        assert_eq!(encryptor.protect(&mut twice), Err(CencError::AlreadyEncrypted("senc")));
        let mut indexed = [boxed(b"sidx", &[0; 24]), clear.clone()].concat();
        assert_eq!(encryptor.protect(&mut indexed), Err(CencError::Unsupported("sidx")));
        let mut other = clear.clone();
        other[44..48].copy_from_slice(&2u32.to_be_bytes());
        assert_eq!(encryptor.protect(&mut other), Err(CencError::NoTrack(1)));
        let mut no_mdat = clear[..u32_at(&clear, 0) as usize].to_vec();
        assert_eq!(
            encryptor.protect(&mut no_mdat),
            Err(CencError::Box(BoxError::Missing("mdat")))
        );
        crate::fuzz_bytes(&clear, 20_000, |bytes| {
            let _ = encryptor.protect(&mut bytes.to_vec());
            let _ = encryptor.leave_clear(&mut bytes.to_vec());
        });
        for len in 0..clear.len() {
            let _ = encryptor.protect(&mut clear[..len].to_vec());
        }
    }
}
