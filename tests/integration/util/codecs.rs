//! RFC 6381 codec strings read from an ISO BMFF sample entry, each by its own binding:
//! `avc1` (RFC 6381 §3.3), `hvc1` (ISO/IEC 14496-15 Annex E), `vp09` (VP9 Codec ISO Media
//! File Format Binding §5), `av01` (AV1 Codec ISO Media File Format Binding, "Codecs
//! Parameter String"), `mp4a` (RFC 6381 §3.3) and `opus` (Opus in ISOBMFF §4.3).
//!
//! The optional fields of `vp09` and `av01` are not written: stream-pack writes the short forms.

use mp4_atom::{Av1c, Avcc, Codec, Esds, Hvcc, VpcC};

/// The codec string of a sample entry; panics on an entry a package must not use (such as
/// `hev1`, whose parameter sets HLS does not allow in-band).
pub fn codec_string(entry: &Codec) -> String {
    match entry {
        Codec::Avc1(avc1) => avc1_string(&avc1.avcc),
        Codec::Hvc1(hvc1) => hvc1_string(&hvc1.hvcc),
        Codec::Vp09(vp09) => vp09_string(&vp09.vpcc),
        Codec::Av01(av01) => av01_string(&av01.av1c),
        Codec::Mp4a(mp4a) => mp4a_string(&mp4a.esds),
        Codec::Opus(_) => "opus".into(),
        other => panic!("unexpected sample entry {other:?}"),
    }
}

/// `avc1.PPCCLL`: profile_idc, the constraint flags byte and level_idc, upper-case hex.
fn avc1_string(avcc: &Avcc) -> String {
    let (profile, constraints, level) = (
        avcc.avc_profile_indication,
        avcc.profile_compatibility,
        avcc.avc_level_indication,
    );
    format!("avc1.{profile:02X}{constraints:02X}{level:02X}")
}

/// `hvc1.[A-C]<profile_idc>.<compatibility flags, bit-reversed, hex>.<L|H><level_idc>` and
/// the constraint indicator bytes in hex, each after a dot, trailing zero bytes left out.
fn hvc1_string(hvcc: &Hvcc) -> String {
    let space = ["", "A", "B", "C"][usize::from(hvcc.general_profile_space)];
    let compatibility = u32::from_be_bytes(hvcc.general_profile_compatibility_flags).reverse_bits();
    let tier = if hvcc.general_tier_flag { 'H' } else { 'L' };
    let mut string = format!(
        "hvc1.{space}{}.{compatibility:X}.{tier}{}",
        hvcc.general_profile_idc, hvcc.general_level_idc
    );
    let constraints = &hvcc.general_constraint_indicator_flags;
    let kept = constraints
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |last| last + 1);
    for byte in &constraints[..kept] {
        string.push_str(&format!(".{byte:X}"));
    }
    string
}

/// `vp09.PP.LL.DD`: profile, level and bit depth, two decimal digits each.
fn vp09_string(vpcc: &VpcC) -> String {
    format!("vp09.{:02}.{:02}.{:02}", vpcc.profile, vpcc.level, vpcc.bit_depth)
}

/// `av01.P.LLT.DD`: seq_profile, seq_level_idx_0 (two digits), tier M or H, bit depth.
fn av01_string(av1c: &Av1c) -> String {
    let tier = if av1c.seq_tier_0 { 'H' } else { 'M' };
    let depth = match (av1c.high_bitdepth, av1c.twelve_bit) {
        (false, _) => 8,
        (true, false) => 10,
        (true, true) => 12,
    };
    format!("av01.{}.{:02}{tier}.{depth:02}", av1c.seq_profile, av1c.seq_level_idx_0)
}

/// `mp4a.OO.A`: the ES descriptor's objectTypeIndication in hex, and for MPEG-4 audio (0x40)
/// the AudioSpecificConfig's audioObjectType in decimal.
fn mp4a_string(esds: &Esds) -> String {
    let config = &esds.es_desc.dec_config;
    let specific = config.dec_specific.as_ref().expect("an AudioSpecificConfig");
    format!("mp4a.{:02x}.{}", config.object_type_indication, specific.profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hvcc(space: u8, idc: u8, compatibility: [u8; 4], high: bool, level: u8, constraints: [u8; 6]) -> Hvcc {
        Hvcc {
            general_profile_space: space,
            general_profile_idc: idc,
            general_profile_compatibility_flags: compatibility,
            general_tier_flag: high,
            general_level_idc: level,
            general_constraint_indicator_flags: constraints,
            ..Hvcc::new()
        }
    }

    #[test]
    fn hvc1_strings_of_iso_14496_15_annex_e() {
        // Main profile, compatible with Main and Main 10 (flags 1 and 2), Main tier, level 3.1.
        let main = hvcc(0, 1, [0x60, 0, 0, 0], false, 93, [0xb0, 0, 0, 0, 0, 0]);
        assert_eq!(hvc1_string(&main), "hvc1.1.6.L93.B0");
        // Profile space 1, profile 4, flags 0 and 6, High tier, level 4: two constraint bytes.
        let range = hvcc(1, 4, [0x82, 0, 0, 0], true, 120, [0xb0, 0x23, 0, 0, 0, 0]);
        assert_eq!(hvc1_string(&range), "hvc1.A4.41.H120.B0.23");
    }

    #[test]
    fn vp09_and_av01_short_forms() {
        let vpcc = VpcC {
            profile: 0,
            level: 21,
            bit_depth: 8,
            ..VpcC::default()
        };
        assert_eq!(vp09_string(&vpcc), "vp09.00.21.08");
        let mut av1c = Av1c {
            seq_profile: 0,
            seq_level_idx_0: 4,
            ..Av1c::default()
        };
        assert_eq!(av01_string(&av1c), "av01.0.04M.08");
        (av1c.seq_tier_0, av1c.high_bitdepth, av1c.seq_level_idx_0) = (true, true, 13);
        assert_eq!(av01_string(&av1c), "av01.0.13H.10");
    }
}
