//! Where a video sample's protected bytes are: its NAL units walked by their length prefixes,
//! and, in each slice NAL unit, the size of the slice header that stays clear, read with the
//! parameter sets it refers to (ITU-T H.264 §7.3.3 here, H.265 §7.3.6 in `hevc`). The split
//! follows Shaka Packager's SubsampleGenerator, so that both packagers protect the same bytes.

use std::collections::HashMap;

use super::crypt::Subsample;

/// Why a sample cannot be split; the caller adds which sample.
pub(crate) type Reason = &'static str;

/// A codec's NAL syntax: which NAL units are slices, how long their headers are, and the
/// parameter sets those lengths depend on.
pub(crate) trait SliceHeaders: Send {
    /// Whether the NAL unit (its header included) holds a coded slice.
    fn is_slice(&self, nal: &[u8]) -> bool;
    /// Learns the parameter set in `nal`; other NAL units are ignored.
    fn learn(&mut self, nal: &[u8]) -> Result<(), Reason>;
    /// The stored bytes of a slice NAL unit, its header included, before the slice data.
    fn clear_prefix(&self, nal: &[u8]) -> Result<usize, Reason>;
}

/// The H.264 parameter sets a slice header is read with, by their IDs.
#[derive(Debug, Default, Clone)]
pub(crate) struct H264Headers {
    sps: HashMap<u32, Sps>,
    pps: HashMap<u32, Pps>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Sps {
    chroma_array_type: u32,
    separate_colour_plane: bool,
    log2_max_frame_num: u32,
    poc_type: u32,
    log2_max_poc_lsb: u32,
    delta_pic_order_always_zero: bool,
    frame_mbs_only: bool,
}

#[derive(Debug, Clone, Copy)]
struct Pps {
    sps_id: u32,
    entropy_coding_mode: bool,
    bottom_field_pic_order_in_frame_present: bool,
    num_ref_idx_l0_default: u32,
    num_ref_idx_l1_default: u32,
    weighted_pred: bool,
    weighted_bipred_idc: u32,
    deblocking_filter_control_present: bool,
    redundant_pic_cnt_present: bool,
}

const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

impl SliceHeaders for H264Headers {
    /// Coded slices and slice data partitions, nal_unit_type 1 to 5.
    fn is_slice(&self, nal: &[u8]) -> bool {
        nal.first().is_some_and(|header| (1..=5).contains(&(header & 0x1f)))
    }

    fn learn(&mut self, nal: &[u8]) -> Result<(), Reason> {
        let Some((&header, rbsp)) = nal.split_first() else {
            return Ok(());
        };
        match header & 0x1f {
            NAL_SPS => {
                let (id, sps) = parse_sps(&mut BitReader::new(rbsp))?;
                self.sps.insert(id, sps);
            }
            NAL_PPS => {
                let (id, pps) = parse_pps(&mut BitReader::new(rbsp))?;
                self.pps.insert(id, pps);
            }
            _ => {}
        }
        Ok(())
    }

    fn clear_prefix(&self, nal: &[u8]) -> Result<usize, Reason> {
        let (&header, rbsp) = nal.split_first().ok_or("an empty NAL unit")?;
        let mut bits = BitReader::new(rbsp);
        slice_header(&mut bits, self, header)?;
        Ok(1 + bits.bytes_started())
    }
}

/// Slice header readers that know the parameter sets of a decoder configuration record
/// (`avcC`, `hvcC`), each a NAL unit with its header.
pub(crate) fn learnt<H: SliceHeaders + Default>(parameter_sets: &[Vec<u8>]) -> Result<H, Reason> {
    let mut headers = H::default();
    for nal in parameter_sets {
        headers.learn(nal)?;
    }
    Ok(headers)
}

/// Splits a sample (NAL units with `length_size`-byte big-endian lengths) into subsamples:
/// length prefixes, non-slice NAL units and slice headers clear, slice data protected; with
/// `align`, each protected part cut to whole 16-byte blocks (what CMAF asks of `cenc`).
/// Parameter sets met in the sample are learnt for the slices after them.
pub(crate) fn subsamples(
    sample: &[u8],
    length_size: usize,
    headers: &mut dyn SliceHeaders,
    align: bool,
) -> Result<Vec<Subsample>, Reason> {
    let mut subsamples = Organizer::new(align);
    let mut rest = sample;
    while !rest.is_empty() {
        let (prefix, after) = rest.split_at_checked(length_size).ok_or("a cut NAL length")?;
        let len = prefix.iter().fold(0usize, |len, b| (len << 8) | usize::from(*b));
        let (nal, after) = after.split_at_checked(len).ok_or("a NAL unit longer than the sample")?;
        rest = after;
        let clear = if headers.is_slice(nal) {
            headers.clear_prefix(nal)?.min(nal.len())
        } else {
            headers.learn(nal)?;
            nal.len()
        };
        subsamples.add(length_size + clear, nal.len() - clear);
    }
    Ok(subsamples.finish())
}

/// Merges runs of clear bytes and splits clear counts that do not fit 16 bits, as Shaka
/// Packager's SubsampleOrganizer does.
struct Organizer {
    align: bool,
    clear: usize,
    out: Vec<Subsample>,
}

impl Organizer {
    fn new(align: bool) -> Organizer {
        Organizer {
            align,
            clear: 0,
            out: Vec::new(),
        }
    }

    /// A NAL unit's clear bytes, then its protected bytes. Aligned, the protected part still
    /// starts at the slice data, and the bytes past its last whole block join the clear bytes
    /// that follow (Shaka Packager 3.8 does the same).
    fn add(&mut self, clear: usize, protected: usize) {
        let misaligned = if self.align { protected % 16 } else { 0 };
        self.clear += clear;
        let protected = protected - misaligned;
        if protected > 0 {
            self.push(protected);
        }
        self.clear += misaligned;
    }

    fn push(&mut self, protected: usize) {
        while self.clear > usize::from(u16::MAX) {
            self.out.push(Subsample {
                clear: u16::MAX,
                protected: 0,
            });
            self.clear -= usize::from(u16::MAX);
        }
        self.out.push(Subsample {
            clear: self.clear as u16,
            // Samples are bounded by 32-bit trun sizes.
            protected: protected as u32,
        });
        self.clear = 0;
    }

    fn finish(mut self) -> Vec<Subsample> {
        if self.clear > 0 {
            self.push(0);
        }
        self.out
    }
}

const PROFILES_WITH_CHROMA_FORMAT: [u32; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

/// §7.3.2.1.1, up to frame_mbs_only_flag: what a slice header's layout depends on.
fn parse_sps(bits: &mut BitReader) -> Result<(u32, Sps), Reason> {
    let profile_idc = bits.bits(8)?;
    bits.bits(16)?;
    let id = bits.ue()?;
    let mut sps = Sps {
        chroma_array_type: 1,
        ..Sps::default()
    };
    if PROFILES_WITH_CHROMA_FORMAT.contains(&profile_idc) {
        let chroma_format_idc = bits.ue()?;
        if chroma_format_idc == 3 {
            sps.separate_colour_plane = bits.flag()?;
        }
        sps.chroma_array_type = if sps.separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        bits.ue()?;
        bits.ue()?;
        bits.flag()?;
        if bits.flag()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for list in 0..lists {
                if bits.flag()? {
                    skip_scaling_list(bits, if list < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    sps.log2_max_frame_num = bits.ue()?.saturating_add(4);
    sps.poc_type = bits.ue()?;
    match sps.poc_type {
        0 => sps.log2_max_poc_lsb = bits.ue()?.saturating_add(4),
        1 => {
            sps.delta_pic_order_always_zero = bits.flag()?;
            bits.se()?;
            bits.se()?;
            for _ in 0..bits.ue()?.min(256) {
                bits.se()?;
            }
        }
        _ => {}
    }
    bits.ue()?;
    bits.flag()?;
    bits.ue()?;
    bits.ue()?;
    sps.frame_mbs_only = bits.flag()?;
    if sps.log2_max_frame_num > 16 || sps.log2_max_poc_lsb > 16 {
        return Err("an SPS with impossible field sizes");
    }
    Ok((id, sps))
}

fn skip_scaling_list(bits: &mut BitReader, size: usize) -> Result<(), Reason> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + bits.se()? + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// §7.3.2.2, up to redundant_pic_cnt_present_flag.
fn parse_pps(bits: &mut BitReader) -> Result<(u32, Pps), Reason> {
    let id = bits.ue()?;
    let sps_id = bits.ue()?;
    let entropy_coding_mode = bits.flag()?;
    let bottom_field_pic_order_in_frame_present = bits.flag()?;
    if bits.ue()? != 0 {
        return Err("slice groups (FMO) are not supported");
    }
    let pps = Pps {
        sps_id,
        entropy_coding_mode,
        bottom_field_pic_order_in_frame_present,
        num_ref_idx_l0_default: bits.ue()?.saturating_add(1),
        num_ref_idx_l1_default: bits.ue()?.saturating_add(1),
        weighted_pred: bits.flag()?,
        weighted_bipred_idc: bits.bits(2)?,
        deblocking_filter_control_present: {
            bits.se()?;
            bits.se()?;
            bits.se()?;
            bits.flag()?
        },
        redundant_pic_cnt_present: {
            bits.flag()?;
            bits.flag()?
        },
    };
    Ok((id, pps))
}

const SLICE_P: u32 = 0;
const SLICE_B: u32 = 1;
const SLICE_I: u32 = 2;
const SLICE_SP: u32 = 3;
const SLICE_SI: u32 = 4;

/// §7.3.3: reads a slice header to its end.
fn slice_header(bits: &mut BitReader, headers: &H264Headers, nal_header: u8) -> Result<(), Reason> {
    let idr = nal_header & 0x1f == 5;
    bits.ue()?;
    let slice_type = bits.ue()? % 5;
    let pps = *headers.pps.get(&bits.ue()?).ok_or("a slice refers to an unknown PPS")?;
    let sps = *headers.sps.get(&pps.sps_id).ok_or("a PPS refers to an unknown SPS")?;
    if sps.separate_colour_plane {
        bits.bits(2)?;
    }
    bits.bits(sps.log2_max_frame_num)?;
    let field_pic = !sps.frame_mbs_only && bits.flag()?;
    if field_pic {
        bits.flag()?;
    }
    if idr {
        bits.ue()?;
    }
    let bottom_delta = pps.bottom_field_pic_order_in_frame_present && !field_pic;
    if sps.poc_type == 0 {
        bits.bits(sps.log2_max_poc_lsb)?;
        if bottom_delta {
            bits.se()?;
        }
    }
    if sps.poc_type == 1 && !sps.delta_pic_order_always_zero {
        bits.se()?;
        if bottom_delta {
            bits.se()?;
        }
    }
    if pps.redundant_pic_cnt_present {
        bits.ue()?;
    }
    let refs = reference_counts(bits, slice_type, &pps)?;
    slice_header_tail(bits, slice_type, &sps, &pps, refs, nal_header, idr)
}

/// direct_spatial_mv_pred_flag and the active reference counts of a P, SP or B slice.
fn reference_counts(bits: &mut BitReader, slice_type: u32, pps: &Pps) -> Result<(u32, u32), Reason> {
    if slice_type == SLICE_B {
        bits.flag()?;
    }
    let mut refs = (pps.num_ref_idx_l0_default, pps.num_ref_idx_l1_default);
    if matches!(slice_type, SLICE_P | SLICE_SP | SLICE_B) && bits.flag()? {
        refs.0 = bits.ue()?.saturating_add(1);
        if slice_type == SLICE_B {
            refs.1 = bits.ue()?.saturating_add(1);
        }
    }
    if refs.0 > 32 || refs.1 > 32 {
        return Err("more than 32 reference pictures");
    }
    Ok(refs)
}

fn slice_header_tail(
    bits: &mut BitReader,
    slice_type: u32,
    sps: &Sps,
    pps: &Pps,
    refs: (u32, u32),
    nal_header: u8,
    idr: bool,
) -> Result<(), Reason> {
    let lists = match slice_type {
        SLICE_I | SLICE_SI => 0,
        SLICE_B => 2,
        _ => 1,
    };
    for _ in 0..lists {
        if bits.flag()? {
            skip_list_modification(bits)?;
        }
    }
    let p_like = matches!(slice_type, SLICE_P | SLICE_SP);
    if (pps.weighted_pred && p_like) || (pps.weighted_bipred_idc == 1 && slice_type == SLICE_B) {
        skip_weight_table(bits, sps.chroma_array_type != 0, refs, slice_type == SLICE_B)?;
    }
    if nal_header & 0x60 != 0 {
        skip_ref_pic_marking(bits, idr)?;
    }
    if pps.entropy_coding_mode && lists > 0 {
        bits.ue()?;
    }
    bits.se()?;
    if matches!(slice_type, SLICE_SP | SLICE_SI) {
        if slice_type == SLICE_SP {
            bits.flag()?;
        }
        bits.se()?;
    }
    if pps.deblocking_filter_control_present && bits.ue()? != 1 {
        bits.se()?;
        bits.se()?;
    }
    Ok(())
}

/// §7.3.3.1, one list: operations until modification_of_pic_nums_idc 3.
fn skip_list_modification(bits: &mut BitReader) -> Result<(), Reason> {
    for _ in 0..=32 {
        match bits.ue()? {
            3 => return Ok(()),
            0..=2 => {
                bits.ue()?;
            }
            _ => return Err("a bad modification_of_pic_nums_idc"),
        }
    }
    Err("a reference list modified more than 32 times")
}

/// §7.3.3.2.
fn skip_weight_table(bits: &mut BitReader, chroma: bool, refs: (u32, u32), b_slice: bool) -> Result<(), Reason> {
    bits.ue()?;
    if chroma {
        bits.ue()?;
    }
    let lists = if b_slice { vec![refs.0, refs.1] } else { vec![refs.0] };
    for count in lists {
        for _ in 0..count {
            // luma_weight_flag, then luma weight and offset; chroma_weight_flag, then a
            // weight and an offset for each of Cb and Cr.
            if bits.flag()? {
                bits.se()?;
                bits.se()?;
            }
            if chroma && bits.flag()? {
                for _ in 0..4 {
                    bits.se()?;
                }
            }
        }
    }
    Ok(())
}

/// §7.3.3.3.
fn skip_ref_pic_marking(bits: &mut BitReader, idr: bool) -> Result<(), Reason> {
    if idr {
        bits.flag()?;
        bits.flag()?;
        return Ok(());
    }
    if !bits.flag()? {
        return Ok(());
    }
    for _ in 0..=66 {
        let operation = bits.ue()?;
        match operation {
            0 => return Ok(()),
            1..=6 => {}
            _ => return Err("a bad memory_management_control_operation"),
        }
        if matches!(operation, 1 | 3) {
            bits.ue()?;
        }
        if operation == 2 {
            bits.ue()?;
        }
        if matches!(operation, 3 | 6) {
            bits.ue()?;
        }
        if operation == 4 {
            bits.ue()?;
        }
    }
    Err("too many memory management operations")
}

/// Bits of a NAL unit's payload as it is stored, emulation prevention bytes (00 00 03) skipped,
/// so that the bytes it has started are the stored bytes the header spans.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    next: usize,
    current: u8,
    left: u32,
    zeros: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> BitReader<'a> {
        BitReader {
            data,
            next: 0,
            current: 0,
            left: 0,
            zeros: 0,
        }
    }

    pub(crate) fn flag(&mut self) -> Result<bool, Reason> {
        if self.left == 0 {
            let mut byte = *self.data.get(self.next).ok_or("a header cut short")?;
            self.next += 1;
            if self.zeros >= 2 && byte == 3 {
                byte = *self.data.get(self.next).ok_or("a header cut short")?;
                self.next += 1;
                self.zeros = 0;
            }
            self.zeros = if byte == 0 { self.zeros + 1 } else { 0 };
            self.current = byte;
            self.left = 8;
        }
        self.left -= 1;
        Ok(self.current >> self.left & 1 == 1)
    }

    pub(crate) fn bits(&mut self, count: u32) -> Result<u32, Reason> {
        (0..count).try_fold(0u32, |value, _| Ok((value << 1) | u32::from(self.flag()?)))
    }

    /// ue(v), §9.1.
    pub(crate) fn ue(&mut self) -> Result<u32, Reason> {
        let mut zeros = 0;
        while !self.flag()? {
            zeros += 1;
            if zeros > 31 {
                return Err("an Exp-Golomb code longer than 32 bits");
            }
        }
        let value = (1u64 << zeros) - 1 + u64::from(self.bits(zeros)?);
        u32::try_from(value).map_err(|_| "an Exp-Golomb value past 32 bits")
    }

    /// se(v), §9.1.1.
    pub(crate) fn se(&mut self) -> Result<i64, Reason> {
        let code = i64::from(self.ue()?);
        Ok(if code % 2 == 1 { (code + 1) / 2 } else { -code / 2 })
    }

    pub(crate) fn bytes_started(&self) -> usize {
        self.next
    }

    /// The stored bytes not yet started, an upper bound on what is left to read.
    pub(crate) fn remaining_bytes(&self) -> usize {
        self.data.len() - self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bits written MSB first, for hand-made parameter sets and slice headers.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        used: u32,
    }

    impl BitWriter {
        fn bit(&mut self, on: bool) {
            if self.used.is_multiple_of(8) {
                self.bytes.push(0);
            }
            if on {
                *self.bytes.last_mut().unwrap() |= 0x80 >> (self.used % 8);
            }
            self.used += 1;
        }
        fn bits(&mut self, value: u32, count: u32) {
            for i in (0..count).rev() {
                self.bit(value >> i & 1 == 1);
            }
        }
        fn ue(&mut self, value: u32) {
            let code = value + 1;
            let len = 32 - code.leading_zeros();
            self.bits(0, len - 1);
            self.bits(code, len);
        }
    }

    /// Baseline SPS 0: log2_max_frame_num 4, poc type 0 with log2_max_poc_lsb 6, frame MBs only.
    fn sps() -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(66, 8);
        w.bits(0, 16);
        [0, 0, 0, 2, 1].iter().for_each(|v| w.ue(*v));
        w.bit(false);
        w.ue(19);
        w.ue(14);
        w.bit(true);
        [vec![0x67], w.bytes].concat()
    }

    /// PPS 0 of SPS 0: CAVLC, one ref per list, deblocking control present.
    fn pps() -> Vec<u8> {
        let mut w = BitWriter::default();
        [0, 0].iter().for_each(|v| w.ue(*v));
        w.bits(0, 2);
        [0, 0, 0].iter().for_each(|v| w.ue(*v));
        w.bits(0, 3);
        [1, 1, 1].iter().for_each(|v| w.ue(*v));
        w.bits(0b100, 3);
        [vec![0x68], w.bytes].concat()
    }

    /// An IDR I-slice header for [`sps`] and [`pps`]: first_mb_in_slice, slice type 7, PPS 0,
    /// frame_num (4 bits), idr_pic_id 0, POC lsb (6 bits), no_output/long_term flags,
    /// slice_qp_delta 0, deblocking idc 1.
    fn idr_header(first_mb: u32) -> BitWriter {
        let mut w = BitWriter::default();
        [first_mb, 7, 0].iter().for_each(|v| w.ue(*v));
        w.bits(0, 4);
        w.ue(0);
        w.bits(0, 6);
        w.bits(0, 2);
        w.ue(0);
        w.ue(1);
        w
    }

    #[test]
    fn an_idr_slice_header_is_measured_in_stored_bytes() {
        let headers = learnt::<H264Headers>(&[sps(), pps()]).unwrap();
        let header = idr_header(0);
        assert_eq!(header.used, 1 + 7 + 1 + 4 + 1 + 6 + 2 + 1 + 3);
        let slice = [vec![0x65], header.bytes, vec![0xaa; 40]].concat();
        // 26 bits: four bytes after the NAL header byte.
        assert_eq!(headers.clear_prefix(&slice), Ok(5));
        // Emulation prevention bytes inside the header are stored bytes it spans: a
        // first_mb_in_slice of 2^22 − 1 makes zero bytes that need two of them.
        let raw = [vec![0x65], idr_header((1 << 22) - 1).bytes, vec![0xaa; 40]].concat();
        let stored = escape(&raw);
        assert_eq!(stored.len(), raw.len() + 2);
        let raw_prefix = headers.clear_prefix(&raw).unwrap();
        assert_eq!(headers.clear_prefix(&stored), Ok(raw_prefix + 2));
    }

    /// Inserts emulation prevention bytes as an encoder does (§7.4.1).
    fn escape(rbsp: &[u8]) -> Vec<u8> {
        let (mut out, mut zeros) = (Vec::new(), 0);
        for &byte in rbsp {
            if zeros >= 2 && byte <= 3 {
                out.push(3);
                zeros = 0;
            }
            out.push(byte);
            zeros = if byte == 0 { zeros + 1 } else { 0 };
        }
        out
    }

    #[test]
    fn subsamples_follow_nal_units_and_align_for_cenc() {
        let mut headers = H264Headers::default();
        let slice = idr_header(0);
        let idr = [vec![0x65], slice.bytes.clone(), vec![0xaa; 100]].concat();
        let sei = vec![0x06, 5, 1, 0, 0x80];
        let mut sample = Vec::new();
        for nal in [&sps(), &pps(), &sei, &idr] {
            sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            sample.extend_from_slice(nal);
        }
        let header = 1 + slice.bytes.len();
        let clear = 4 + sps().len() + 4 + pps().len() + 4 + sei.len() + 4 + header;
        let protected = idr.len() - header;
        // The SPS and PPS in the sample are learnt before the slice that needs them.
        let cbcs = subsamples(&sample, 4, &mut headers, false).unwrap();
        assert_eq!(
            cbcs,
            [Subsample {
                clear: clear as u16,
                protected: protected as u32
            }]
        );
        let cenc = subsamples(&sample, 4, &mut headers, true).unwrap();
        let misaligned = protected % 16;
        assert_ne!(misaligned, 0);
        assert_eq!(
            cenc,
            [
                Subsample {
                    clear: clear as u16,
                    protected: (protected - misaligned) as u32
                },
                Subsample {
                    clear: misaligned as u16,
                    protected: 0
                }
            ]
        );
        assert!(subsamples(&sample[..sample.len() - 1], 4, &mut headers, false).is_err());
        // A slice whose PPS was never seen cannot be measured.
        let idr_only = [(idr.len() as u32).to_be_bytes().to_vec(), idr].concat();
        assert!(subsamples(&idr_only, 4, &mut H264Headers::default(), false).is_err());
    }

    #[test]
    fn long_clear_runs_are_split_at_16_bits() {
        let mut organizer = Organizer::new(false);
        organizer.add(70_000, 0);
        organizer.add(10, 32);
        organizer.add(5, 0);
        assert_eq!(
            organizer.finish(),
            [
                Subsample {
                    clear: 65535,
                    protected: 0
                },
                Subsample {
                    clear: 4475,
                    protected: 32
                },
                Subsample { clear: 5, protected: 0 },
            ]
        );
    }

    #[test]
    fn hostile_samples_are_errors_not_panics() {
        let mut sample = Vec::new();
        for nal in [sps(), pps(), vec![0x65, 0x88, 0x84, 0x21, 0xaa, 0xbb]] {
            sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            sample.extend_from_slice(&nal);
        }
        crate::fuzz_bytes(&sample, 20_000, |bytes| {
            let _ = subsamples(bytes, 4, &mut H264Headers::default(), true);
        });
        for len in 0..sample.len() {
            let _ = subsamples(&sample[..len], 4, &mut H264Headers::default(), true);
        }
    }
}
