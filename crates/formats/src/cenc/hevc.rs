//! The size of an HEVC slice segment header (ITU-T H.265 §7.3.6.1, through its byte
//! alignment), read with the SPS and PPS it refers to. Multi-layer and screen content coding
//! extensions are refused.

use std::collections::HashMap;

use super::nal::{BitReader, Reason, SliceHeaders};

#[derive(Debug, Default, Clone)]
pub(crate) struct H265Headers {
    sps: HashMap<u32, Sps>,
    pps: HashMap<u32, Pps>,
}

#[derive(Debug, Clone, Default)]
struct Sps {
    chroma_array_type: u32,
    separate_colour_plane: bool,
    pic_size_in_ctbs: u64,
    log2_max_poc_lsb: u32,
    short_term_sets: Vec<RefPicSet>,
    long_term_used_by_curr: Option<Vec<bool>>,
    temporal_mvp: bool,
    sample_adaptive_offset: bool,
}

/// A short-term reference picture set: its delta POCs, each with used_by_curr_pic.
#[derive(Debug, Clone, Default)]
struct RefPicSet {
    negative: Vec<(i64, bool)>,
    positive: Vec<(i64, bool)>,
}

impl RefPicSet {
    fn len(&self) -> usize {
        self.negative.len() + self.positive.len()
    }

    fn used_by_current(&self) -> usize {
        self.negative
            .iter()
            .chain(&self.positive)
            .filter(|(_, used)| *used)
            .count()
    }
}

#[derive(Debug, Clone, Default)]
struct Pps {
    sps_id: u32,
    dependent_slice_segments: bool,
    output_flag_present: bool,
    num_extra_slice_header_bits: u32,
    cabac_init_present: bool,
    num_ref_idx_default: (u32, u32),
    slice_chroma_qp_offsets_present: bool,
    weighted_pred: bool,
    weighted_bipred: bool,
    entry_points: bool,
    loop_filter_across_slices: bool,
    deblocking_override_enabled: bool,
    deblocking_disabled: bool,
    lists_modification_present: bool,
    slice_header_extension: bool,
    chroma_qp_offset_list: bool,
}

const NAL_SPS: u8 = 33;
const NAL_PPS: u8 = 34;
const NAL_IDR_W_RADL: u8 = 19;
const NAL_IDR_N_LP: u8 = 20;

fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|header| (header >> 1) & 0x3f)
}

impl SliceHeaders for H265Headers {
    /// The VCL NAL unit types that carry slice segments, TRAIL_N (0) to CRA_NUT (21).
    fn is_slice(&self, nal: &[u8]) -> bool {
        nal_type(nal).is_some_and(|kind| kind <= 21)
    }

    fn learn(&mut self, nal: &[u8]) -> Result<(), Reason> {
        let Some(rbsp) = nal.get(2..) else {
            return Ok(());
        };
        match nal_type(nal) {
            Some(NAL_SPS) => {
                let (id, sps) = parse_sps(&mut BitReader::new(rbsp))?;
                self.sps.insert(id, sps);
            }
            Some(NAL_PPS) => {
                let (id, pps) = parse_pps(&mut BitReader::new(rbsp))?;
                self.pps.insert(id, pps);
            }
            _ => {}
        }
        Ok(())
    }

    fn clear_prefix(&self, nal: &[u8]) -> Result<usize, Reason> {
        let rbsp = nal.get(2..).ok_or("a cut NAL unit header")?;
        if nal[1] >> 3 != 0 {
            return Err("multi-layer HEVC is not supported");
        }
        let mut bits = BitReader::new(rbsp);
        slice_segment_header(&mut bits, self, nal_type(nal).unwrap_or(0))?;
        // byte_alignment(): a one, then zeros to the end of the byte.
        if !bits.flag()? {
            return Err("a slice header without its alignment bit");
        }
        Ok(2 + bits.bytes_started())
    }
}

/// Ceil(Log2(n)): the bits of an index below n.
fn index_bits(n: u64) -> u32 {
    if n <= 1 { 0 } else { 64 - (n - 1).leading_zeros() }
}

/// §7.3.2.2.1, up to sps_temporal_mvp_enabled_flag.
fn parse_sps(bits: &mut BitReader) -> Result<(u32, Sps), Reason> {
    bits.bits(4)?;
    let max_sub_layers_minus1 = bits.bits(3)?;
    bits.flag()?;
    skip_profile_tier_level(bits, max_sub_layers_minus1)?;
    let id = bits.ue()?;
    let mut sps = Sps::default();
    let chroma_format_idc = bits.ue()?;
    if chroma_format_idc == 3 {
        sps.separate_colour_plane = bits.flag()?;
    }
    sps.chroma_array_type = if sps.separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (width, height) = (u64::from(bits.ue()?), u64::from(bits.ue()?));
    if bits.flag()? {
        for _ in 0..4 {
            bits.ue()?;
        }
    }
    bits.ue()?;
    bits.ue()?;
    sps.log2_max_poc_lsb = bits.ue()?.saturating_add(4);
    let all_sub_layers = bits.flag()?;
    let first = if all_sub_layers { 0 } else { max_sub_layers_minus1 };
    for _ in first..=max_sub_layers_minus1 {
        for _ in 0..3 {
            bits.ue()?;
        }
    }
    let log2_min_cb = bits.ue()?.saturating_add(3);
    let log2_ctb = log2_min_cb.saturating_add(bits.ue()?);
    if sps.log2_max_poc_lsb > 16 || log2_ctb > 6 {
        return Err("an SPS with impossible field sizes");
    }
    let ctb = 1u64 << log2_ctb;
    sps.pic_size_in_ctbs = width.div_ceil(ctb) * height.div_ceil(ctb);
    for _ in 0..4 {
        bits.ue()?;
    }
    if bits.flag()? && bits.flag()? {
        skip_scaling_list_data(bits)?;
    }
    bits.flag()?;
    sps.sample_adaptive_offset = bits.flag()?;
    if bits.flag()? {
        bits.bits(8)?;
        bits.ue()?;
        bits.ue()?;
        bits.flag()?;
    }
    parse_sps_reference_sets(bits, &mut sps)?;
    sps.temporal_mvp = bits.flag()?;
    Ok((id, sps))
}

/// The short-term reference picture sets and long-term pictures of an SPS.
fn parse_sps_reference_sets(bits: &mut BitReader, sps: &mut Sps) -> Result<(), Reason> {
    let count = bits.ue()?;
    if count > 64 {
        return Err("more than 64 short-term reference picture sets");
    }
    for index in 0..count as usize {
        let set = parse_ref_pic_set(bits, &sps.short_term_sets, index, false)?;
        sps.short_term_sets.push(set);
    }
    if bits.flag()? {
        let count = bits.ue()?;
        if count > 32 {
            return Err("more than 32 long-term reference pictures");
        }
        let mut used = Vec::new();
        for _ in 0..count {
            bits.bits(sps.log2_max_poc_lsb)?;
            used.push(bits.flag()?);
        }
        sps.long_term_used_by_curr = Some(used);
    }
    Ok(())
}

/// §7.3.3: general profile, tier and level, then those of the sub-layers.
fn skip_profile_tier_level(bits: &mut BitReader, max_sub_layers_minus1: u32) -> Result<(), Reason> {
    skip_bits(bits, 96)?;
    let mut present = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        present.push((bits.flag()?, bits.flag()?));
    }
    if max_sub_layers_minus1 > 0 {
        skip_bits(bits, 2 * (8 - max_sub_layers_minus1))?;
    }
    for (profile, level) in present {
        if profile {
            skip_bits(bits, 88)?;
        }
        if level {
            skip_bits(bits, 8)?;
        }
    }
    Ok(())
}

fn skip_bits(bits: &mut BitReader, count: u32) -> Result<(), Reason> {
    for _ in 0..count {
        bits.flag()?;
    }
    Ok(())
}

/// §7.3.4.
fn skip_scaling_list_data(bits: &mut BitReader) -> Result<(), Reason> {
    for size_id in 0..4u32 {
        let step = if size_id == 3 { 3 } else { 1 };
        for _ in (0..6).step_by(step) {
            if !bits.flag()? {
                bits.ue()?;
                continue;
            }
            let coefficients = 64.min(1 << (4 + (size_id << 1)));
            if size_id > 1 {
                bits.se()?;
            }
            for _ in 0..coefficients {
                bits.se()?;
            }
        }
    }
    Ok(())
}

/// §7.3.7 and §7.4.8: a short-term reference picture set, the `index`th of the SPS's or (in a
/// slice header) the one after them; predicted sets derive their delta POCs from an earlier one.
fn parse_ref_pic_set(
    bits: &mut BitReader,
    earlier: &[RefPicSet],
    index: usize,
    in_slice: bool,
) -> Result<RefPicSet, Reason> {
    let predicted = index != 0 && bits.flag()?;
    if !predicted {
        let negative = bits.ue()?;
        let positive = bits.ue()?;
        if negative > 16 || positive > 16 {
            return Err("more than 16 pictures in a reference set");
        }
        let mut set = RefPicSet::default();
        let mut poc = 0i64;
        for _ in 0..negative {
            poc -= i64::from(bits.ue()?) + 1;
            set.negative.push((poc, bits.flag()?));
        }
        poc = 0;
        for _ in 0..positive {
            poc += i64::from(bits.ue()?) + 1;
            set.positive.push((poc, bits.flag()?));
        }
        return Ok(set);
    }
    let delta_index = if in_slice { bits.ue()? as usize + 1 } else { 1 };
    let reference = index
        .checked_sub(delta_index)
        .and_then(|at| earlier.get(at))
        .ok_or("a reference set predicted from one that is not there")?;
    let sign = bits.flag()?;
    let magnitude = i64::from(bits.ue()?) + 1;
    let delta_rps = if sign { -magnitude } else { magnitude };
    let mut flags = Vec::new();
    for _ in 0..=reference.len() {
        let used = bits.flag()?;
        let use_delta = used || bits.flag()?;
        flags.push((used, use_delta));
    }
    Ok(predict_set(reference, delta_rps, &flags))
}

/// Equations 7-61 and 7-62: the delta POCs of a set predicted from `reference` moved by
/// `delta_rps`; `flags` holds (used_by_curr_pic, use_delta) for each of the reference's
/// pictures, negative ones first, then for `delta_rps` itself.
fn predict_set(reference: &RefPicSet, delta_rps: i64, flags: &[(bool, bool)]) -> RefPicSet {
    let negatives = reference.negative.len();
    let own = flags[reference.len()];
    let mut set = RefPicSet::default();
    let take = |into: &mut Vec<(i64, bool)>, poc: i64, (used, use_delta): (bool, bool), below: bool| {
        if use_delta && poc != 0 && (poc < 0) == below {
            into.push((poc, used));
        }
    };
    for (j, (poc, _)) in reference.positive.iter().enumerate().rev() {
        take(&mut set.negative, poc + delta_rps, flags[negatives + j], true);
    }
    take(&mut set.negative, delta_rps, own, true);
    for (j, (poc, _)) in reference.negative.iter().enumerate() {
        take(&mut set.negative, poc + delta_rps, flags[j], true);
    }
    for (j, (poc, _)) in reference.negative.iter().enumerate().rev() {
        take(&mut set.positive, poc + delta_rps, flags[j], false);
    }
    take(&mut set.positive, delta_rps, own, false);
    for (j, (poc, _)) in reference.positive.iter().enumerate() {
        take(&mut set.positive, poc + delta_rps, flags[negatives + j], false);
    }
    set
}

/// §7.3.2.3.1, up to the range extension's chroma_qp_offset_list_enabled_flag.
fn parse_pps(bits: &mut BitReader) -> Result<(u32, Pps), Reason> {
    let id = bits.ue()?;
    let mut pps = Pps {
        sps_id: bits.ue()?,
        dependent_slice_segments: bits.flag()?,
        output_flag_present: bits.flag()?,
        num_extra_slice_header_bits: bits.bits(3)?,
        ..Pps::default()
    };
    bits.flag()?;
    pps.cabac_init_present = bits.flag()?;
    pps.num_ref_idx_default = (bits.ue()?.saturating_add(1), bits.ue()?.saturating_add(1));
    bits.se()?;
    bits.flag()?;
    let transform_skip = bits.flag()?;
    if bits.flag()? {
        bits.ue()?;
    }
    bits.se()?;
    bits.se()?;
    pps.slice_chroma_qp_offsets_present = bits.flag()?;
    pps.weighted_pred = bits.flag()?;
    pps.weighted_bipred = bits.flag()?;
    bits.flag()?;
    let tiles = bits.flag()?;
    let wavefronts = bits.flag()?;
    pps.entry_points = tiles || wavefronts;
    if tiles {
        skip_tiles(bits)?;
    }
    pps.loop_filter_across_slices = bits.flag()?;
    if bits.flag()? {
        pps.deblocking_override_enabled = bits.flag()?;
        pps.deblocking_disabled = bits.flag()?;
        if !pps.deblocking_disabled {
            bits.se()?;
            bits.se()?;
        }
    }
    if bits.flag()? {
        skip_scaling_list_data(bits)?;
    }
    pps.lists_modification_present = bits.flag()?;
    bits.ue()?;
    pps.slice_header_extension = bits.flag()?;
    parse_pps_extensions(bits, &mut pps, transform_skip)?;
    Ok((id, pps))
}

fn skip_tiles(bits: &mut BitReader) -> Result<(), Reason> {
    let columns = bits.ue()?;
    let rows = bits.ue()?;
    if columns > 64 || rows > 64 {
        return Err("more tiles than a picture can hold");
    }
    if !bits.flag()? {
        for _ in 0..columns + rows {
            bits.ue()?;
        }
    }
    bits.flag()?;
    Ok(())
}

fn parse_pps_extensions(bits: &mut BitReader, pps: &mut Pps, transform_skip: bool) -> Result<(), Reason> {
    if !bits.flag()? {
        return Ok(());
    }
    let range = bits.flag()?;
    let multilayer = bits.flag()?;
    let three_d = bits.flag()?;
    let screen_content = bits.flag()?;
    bits.bits(4)?;
    if multilayer || three_d || screen_content {
        return Err("multi-layer, 3D and screen content HEVC are not supported");
    }
    if range {
        if transform_skip {
            bits.ue()?;
        }
        bits.flag()?;
        pps.chroma_qp_offset_list = bits.flag()?;
    }
    Ok(())
}

/// §7.3.6.1 up to byte_alignment().
fn slice_segment_header(bits: &mut BitReader, headers: &H265Headers, nal_type: u8) -> Result<(), Reason> {
    let first_in_picture = bits.flag()?;
    if (16..=23).contains(&nal_type) {
        bits.flag()?;
    }
    let pps = headers.pps.get(&bits.ue()?).ok_or("a slice refers to an unknown PPS")?;
    let sps = headers.sps.get(&pps.sps_id).ok_or("a PPS refers to an unknown SPS")?;
    let mut dependent = false;
    if !first_in_picture {
        if pps.dependent_slice_segments {
            dependent = bits.flag()?;
        }
        bits.bits(index_bits(sps.pic_size_in_ctbs))?;
    }
    if !dependent {
        independent_slice_fields(bits, sps, pps, nal_type)?;
    }
    if pps.entry_points {
        let offsets = bits.ue()?;
        if offsets > 0 {
            let width = bits.ue()?.saturating_add(1);
            if width > 32 || u64::from(offsets) * u64::from(width) > 8 * bits.remaining_bytes() as u64 {
                return Err("entry points longer than the NAL unit");
            }
            for _ in 0..offsets {
                bits.bits(width)?;
            }
        }
    }
    if pps.slice_header_extension {
        let length = bits.ue()?;
        if u64::from(length) > bits.remaining_bytes() as u64 {
            return Err("a slice header extension longer than the NAL unit");
        }
        skip_bits(bits, length * 8)?;
    }
    Ok(())
}

const SLICE_B: u32 = 0;
const SLICE_P: u32 = 1;

/// The fields of a slice segment header that a dependent slice segment takes from the
/// independent one before it.
fn independent_slice_fields(bits: &mut BitReader, sps: &Sps, pps: &Pps, nal_type: u8) -> Result<(), Reason> {
    skip_bits(bits, pps.num_extra_slice_header_bits)?;
    let slice_type = bits.ue()?;
    if pps.output_flag_present {
        bits.flag()?;
    }
    if sps.separate_colour_plane {
        bits.bits(2)?;
    }
    let (temporal_mvp, current_pictures) = if nal_type != NAL_IDR_W_RADL && nal_type != NAL_IDR_N_LP {
        picture_order_fields(bits, sps)?
    } else {
        (false, 0)
    };
    let (mut sao_luma, mut sao_chroma) = (false, false);
    if sps.sample_adaptive_offset {
        sao_luma = bits.flag()?;
        if sps.chroma_array_type != 0 {
            sao_chroma = bits.flag()?;
        }
    }
    if matches!(slice_type, SLICE_B | SLICE_P) {
        inter_fields(bits, sps, pps, slice_type == SLICE_B, temporal_mvp, current_pictures)?;
    }
    bits.se()?;
    if pps.slice_chroma_qp_offsets_present {
        bits.se()?;
        bits.se()?;
    }
    if pps.chroma_qp_offset_list {
        bits.flag()?;
    }
    let overridden = pps.deblocking_override_enabled && bits.flag()?;
    let mut deblocking_disabled = pps.deblocking_disabled;
    if overridden {
        deblocking_disabled = bits.flag()?;
        if !deblocking_disabled {
            bits.se()?;
            bits.se()?;
        }
    }
    if pps.loop_filter_across_slices && (sao_luma || sao_chroma || !deblocking_disabled) {
        bits.flag()?;
    }
    Ok(())
}

/// The POC LSB, the reference picture sets and slice_temporal_mvp_enabled_flag of a non-IDR
/// slice; returns that flag and NumPicTotalCurr.
fn picture_order_fields(bits: &mut BitReader, sps: &Sps) -> Result<(bool, usize), Reason> {
    bits.bits(sps.log2_max_poc_lsb)?;
    let sets = &sps.short_term_sets;
    let mut current = if !bits.flag()? {
        parse_ref_pic_set(bits, sets, sets.len(), true)?.used_by_current()
    } else {
        let index = bits.bits(index_bits(sets.len() as u64))? as usize;
        sets.get(index)
            .ok_or("a slice names a reference set the SPS lacks")?
            .used_by_current()
    };
    if let Some(long_term_used) = &sps.long_term_used_by_curr {
        let from_sps = if long_term_used.is_empty() { 0 } else { bits.ue()? };
        let in_slice = bits.ue()?;
        if u64::from(from_sps) + u64::from(in_slice) > 32 {
            return Err("more than 32 long-term pictures");
        }
        for index in 0..from_sps + in_slice {
            let used = if index < from_sps {
                let entry = bits.bits(index_bits(long_term_used.len() as u64))? as usize;
                *long_term_used.get(entry).ok_or("a long-term picture the SPS lacks")?
            } else {
                bits.bits(sps.log2_max_poc_lsb)?;
                bits.flag()?
            };
            current += usize::from(used);
            if bits.flag()? {
                bits.ue()?;
            }
        }
    }
    let temporal_mvp = sps.temporal_mvp && bits.flag()?;
    Ok((temporal_mvp, current))
}

/// The fields of a P or B slice, from num_ref_idx_active_override_flag to
/// five_minus_max_num_merge_cand.
fn inter_fields(
    bits: &mut BitReader,
    sps: &Sps,
    pps: &Pps,
    b_slice: bool,
    temporal_mvp: bool,
    current_pictures: usize,
) -> Result<(), Reason> {
    let mut refs = pps.num_ref_idx_default;
    if bits.flag()? {
        refs.0 = bits.ue()?.saturating_add(1);
        if b_slice {
            refs.1 = bits.ue()?.saturating_add(1);
        }
    }
    if refs.0 > 16 || refs.1 > 16 {
        return Err("more than 16 reference pictures");
    }
    let lists = if b_slice { vec![refs.0, refs.1] } else { vec![refs.0] };
    if pps.lists_modification_present && current_pictures > 1 {
        for count in &lists {
            if bits.flag()? {
                for _ in 0..*count {
                    bits.bits(index_bits(current_pictures as u64))?;
                }
            }
        }
    }
    if b_slice {
        bits.flag()?;
    }
    if pps.cabac_init_present {
        bits.flag()?;
    }
    if temporal_mvp {
        let from_l0 = !b_slice || bits.flag()?;
        if (from_l0 && refs.0 > 1) || (!from_l0 && refs.1 > 1) {
            bits.ue()?;
        }
    }
    if (pps.weighted_pred && !b_slice) || (pps.weighted_bipred && b_slice) {
        skip_weight_table(bits, sps.chroma_array_type != 0, &lists)?;
    }
    bits.ue()?;
    Ok(())
}

/// §7.3.6.3, for single-layer streams (every reference picture has another POC).
fn skip_weight_table(bits: &mut BitReader, chroma: bool, lists: &[u32]) -> Result<(), Reason> {
    bits.ue()?;
    if chroma {
        bits.se()?;
    }
    for &count in lists {
        let luma: Vec<bool> = (0..count).map(|_| bits.flag()).collect::<Result<_, _>>()?;
        let chroma_flags: Vec<bool> = if chroma {
            (0..count).map(|_| bits.flag()).collect::<Result<_, _>>()?
        } else {
            vec![false; count as usize]
        };
        for (luma, chroma) in luma.into_iter().zip(chroma_flags) {
            if luma {
                bits.se()?;
                bits.se()?;
            }
            if chroma {
                for _ in 0..4 {
                    bits.se()?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cenc::hex;
    use crate::cenc::nal::{learnt, subsamples};

    /// The VPS, SPS and PPS x265 3.5 wrote for a 64x64 picture, and the start of its IDR slice.
    fn x265() -> (Vec<Vec<u8>>, Vec<u8>) {
        let sets = [
            "40010c01ffff01600000030090000003000003001e913024",
            "42010101600000030090000003000003001ea02081059644e4932bc05a020000030002000003003210",
            "4401c172b42240",
        ];
        let slice = hex("2801af1d80bad7cb8024e76e254fb3bfc49e32c4b7295c08");
        (sets.iter().map(|s| hex(s)).collect(), slice)
    }

    #[test]
    fn predicted_reference_sets_follow_equations_7_61_and_7_62() {
        let reference = RefPicSet {
            negative: vec![(-1, true), (-3, false)],
            positive: vec![(2, true)],
        };
        // Moved by −1: 2 → 1 (positive), the reference picture itself → −1, −1 → −2, −3 → −4
        // (dropped: its use_delta_flag is 0).
        let flags = [(true, true), (false, false), (false, true), (true, true)];
        let set = predict_set(&reference, -1, &flags);
        assert_eq!(set.negative, [(-1, true), (-2, true)]);
        assert_eq!(set.positive, [(1, false)]);
        assert_eq!(set.used_by_current(), 2);
    }

    #[test]
    fn an_x265_idr_slice_header_ends_inside_its_nal_unit() {
        let (sets, slice) = x265();
        let headers = learnt::<H265Headers>(&sets).unwrap();
        assert!(headers.is_slice(&slice));
        assert!(!headers.is_slice(&sets[1]));
        let prefix = headers.clear_prefix(&slice).unwrap();
        assert!((3..slice.len()).contains(&prefix), "{prefix}");
        assert!(
            H265Headers::default().clear_prefix(&slice).is_err(),
            "no PPS, no header"
        );
        assert_eq!(index_bits(1), 0);
        assert_eq!(index_bits(2), 1);
        assert_eq!(index_bits(5), 3);
        assert_eq!(index_bits(8), 3);
    }

    #[test]
    fn hostile_samples_are_errors_not_panics() {
        let (sets, slice) = x265();
        let mut sample = Vec::new();
        for nal in sets.iter().chain([&slice]) {
            sample.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            sample.extend_from_slice(nal);
        }
        crate::fuzz_bytes(&sample, 30_000, |bytes| {
            let _ = subsamples(bytes, 4, &mut H265Headers::default(), true);
        });
        for len in 0..sample.len() {
            let _ = subsamples(&sample[..len], 4, &mut H265Headers::default(), false);
        }
    }
}
