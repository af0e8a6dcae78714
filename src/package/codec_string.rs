//! RFC 6381 codec strings read from the encoded bitstream, for CODECS and @codecs, and the codec
//! configuration they are read from: a codec context's extradata and the container's codec tag.

use ffmpeg_next::codec;
use stream_pack_formats::bmff::ChildBox;

/// The codec configuration a codec context holds in extradata (empty if none): an opened
/// encoder's parameter sets or AudioSpecificConfig, or those of a stream read from a container.
pub fn extradata(context: &codec::Context) -> &[u8] {
    // SAFETY: a context's extradata is `extradata_size` bytes owned by the context, which the
    // returned slice borrows.
    unsafe {
        let ctx = context.as_ptr();
        if (*ctx).extradata.is_null() {
            &[]
        } else {
            std::slice::from_raw_parts((*ctx).extradata, (*ctx).extradata_size.max(0) as usize)
        }
    }
}

/// Sets the codec tag (the container's fourcc for the codec) a muxer writes for a stream. `None`
/// lets the muxer pick its own, as it must for a stream from another container: an FLV, TS or MP4
/// tag means nothing to a different muxer.
pub(crate) fn set_codec_tag(parameters: &mut codec::Parameters, tag: Option<&[u8; 4]>) {
    // SAFETY: the parameters are allocated; the tag is a plain field the muxer reads when it
    // writes its header.
    unsafe { (*parameters.as_mut_ptr()).codec_tag = tag.map_or(0, |fourcc| u32::from_le_bytes(*fourcc)) };
}

/// `avc1.PPCCLL` from the first sequence parameter set in an Annex B H.264 access unit:
/// profile_idc, the constraint flags byte and level_idc, as the SPS states them.
pub fn avc1_from_annexb(data: &[u8]) -> Option<String> {
    annexb_nal_units(data)
        .find(|nal| nal.first().is_some_and(|h| h & 0x1f == 7) && nal.len() >= 4)
        .map(|sps| format!("avc1.{:02X}{:02X}{:02X}", sps[1], sps[2], sps[3]))
}

/// The NAL units of an Annex B byte stream, without their start codes.
fn annexb_nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&s| {
            // The unit ends at the next start code, whose leading zero bytes are not its data.
            let mut end = s - 3;
            while end > 0 && data[end - 1] == 0 {
                end -= 1;
            }
            end
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts.into_iter().zip(ends).map(move |(s, e)| &data[s..e.max(s)])
}

/// The RFC 6381 codec string of an fMP4 track, from its sample entry and the configuration box
/// inside it, as `stream_pack_formats::bmff::sample_entry` reads them from the init segment.
pub fn from_sample_entry(kind: &[u8; 4], boxes: &[ChildBox]) -> Option<String> {
    let config = |name: &[u8; 4]| boxes.iter().find(|(k, _)| k == name).map(|(_, payload)| *payload);
    match kind {
        b"avc1" | b"avc3" => {
            let avcc = config(b"avcC")?;
            let fourcc = std::str::from_utf8(kind).ok()?;
            Some(format!(
                "{fourcc}.{:02X}{:02X}{:02X}",
                avcc.get(1)?,
                avcc.get(2)?,
                avcc.get(3)?
            ))
        }
        b"hvc1" | b"hev1" => hevc(std::str::from_utf8(kind).ok()?, config(b"hvcC")?),
        b"vp09" => vp9(config(b"vpcC")?),
        b"av01" => av1(config(b"av1C")?),
        b"Opus" => Some("opus".into()),
        _ => None,
    }
}

/// ISO/IEC 14496-15 Annex E: `hvc1.{space}{profile}.{compatibility, bit-reversed hex}.{tier}{level}`
/// followed by the constraint bytes, trailing zero bytes left out.
fn hevc(fourcc: &str, hvcc: &[u8]) -> Option<String> {
    let ptl = hvcc.get(1)?;
    let space = ["", "A", "B", "C"][usize::from(ptl >> 6)];
    let tier = if ptl & 0x20 != 0 { 'H' } else { 'L' };
    let profile = ptl & 0x1f;
    let compatibility = u32::from_be_bytes(hvcc.get(2..6)?.try_into().ok()?).reverse_bits();
    let constraints = hvcc.get(6..12)?;
    let level = hvcc.get(12)?;
    let kept = constraints.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let mut text = format!("{fourcc}.{space}{profile}.{compatibility:X}.{tier}{level}");
    for byte in &constraints[..kept] {
        text.push_str(&format!(".{byte:X}"));
    }
    Some(text)
}

/// The VP9 ISO-BMFF binding: `vp09.PP.LL.DD` from the vpcC full box.
fn vp9(vpcc: &[u8]) -> Option<String> {
    // version and flags, then profile, level, bit depth in the high four bits.
    let (profile, level, depth) = (vpcc.get(4)?, vpcc.get(5)?, vpcc.get(6)? >> 4);
    Some(format!("vp09.{profile:02}.{level:02}.{depth:02}"))
}

/// The AV1 ISO-BMFF binding: `av01.P.LLT.DD` from the av1C box.
fn av1(av1c: &[u8]) -> Option<String> {
    let (first, second) = (av1c.get(1)?, av1c.get(2)?);
    let (profile, level) = (first >> 5, first & 0x1f);
    let tier = if second & 0x80 != 0 { 'H' } else { 'M' };
    let depth = match (second & 0x40 != 0, second & 0x20 != 0) {
        (true, true) => 12,
        (true, false) => 10,
        _ => 8,
    };
    Some(format!("av01.{profile}.{level:02}{tier}.{depth:02}"))
}

/// `mp4a.40.N` from an MPEG-4 AudioSpecificConfig, N being its audio object type (2 = AAC-LC).
pub fn mp4a_from_audio_specific_config(asc: &[u8]) -> Option<String> {
    let first = *asc.first()?;
    let object_type = match first >> 3 {
        31 => 32 + ((u32::from(first & 0x07) << 3) | u32::from(*asc.get(1)? >> 5)),
        ot => u32::from(ot),
    };
    (object_type > 0).then(|| format!("mp4a.40.{object_type}"))
}

/// An ADTS frame header (ISO/IEC 13818-7 §6.2), as AAC arrives in MPEG-TS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adts {
    /// 7 bytes, or 9 with a CRC.
    pub header_len: usize,
    /// The AudioSpecificConfig the header amounts to, as an MP4 sample entry needs it.
    pub audio_specific_config: [u8; 2],
}

/// Reads the ADTS header at the start of `frame`, if there is one holding one raw data block.
pub fn adts(frame: &[u8]) -> Option<Adts> {
    let header: [u8; 7] = frame.get(..7)?.try_into().ok()?;
    if header[0] != 0xff || header[1] & 0xf6 != 0xf0 || header[6] & 0x03 != 0 {
        return None;
    }
    let header_len = if header[1] & 0x01 == 1 { 7 } else { 9 };
    let object_type = (header[2] >> 6) + 1;
    let frequency = (header[2] >> 2) & 0x0f;
    let channels = ((header[2] & 0x01) << 2) | (header[3] >> 6);
    (frequency < 13 && frame.len() >= header_len).then_some(Adts {
        header_len,
        audio_specific_config: [
            (object_type << 3) | (frequency >> 1),
            ((frequency & 1) << 7) | (channels << 3),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adts_header_gives_the_audio_specific_config() {
        // AAC-LC, 44.1 kHz (index 4), stereo, no CRC: the ASC libav writes is 0x12 0x10.
        let frame = [0xff, 0xf1, 0x50, 0x80, 0x2e, 0x7f, 0xfc, 0x21];
        let header = adts(&frame).unwrap();
        assert_eq!(header.header_len, 7);
        assert_eq!(header.audio_specific_config, [0x12, 0x10]);
        assert_eq!(
            mp4a_from_audio_specific_config(&header.audio_specific_config).as_deref(),
            Some("mp4a.40.2")
        );
        assert_eq!(adts(&frame[..6]), None);
        assert_eq!(adts(&[0x21, 0x10, 0, 0, 0, 0, 0, 0]), None);
        for byte in 0..=255u8 {
            let _ = adts(&[0xff, 0xf0, byte, byte, 0, 0, byte]);
        }
    }

    #[test]
    fn reads_profile_constraints_and_level_from_the_sps() {
        // AUD, then an SPS of High profile (100), constraints 0x00, level 3.0 (30), then a PPS.
        let au = [
            0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, 0x67, 100, 0x00, 30, 0xac, 0xd9, 0, 0, 1, 0x68, 0xeb,
        ];
        assert_eq!(avc1_from_annexb(&au).as_deref(), Some("avc1.64001E"));
        // Constrained Baseline, level 2.1.
        let baseline = [0, 0, 1, 0x67, 66, 0xc0, 21, 0x8c];
        assert_eq!(avc1_from_annexb(&baseline).as_deref(), Some("avc1.42C015"));
    }

    #[test]
    fn no_sps_gives_none() {
        assert_eq!(avc1_from_annexb(&[0, 0, 1, 0x65, 0x88, 0x84]), None);
        assert_eq!(avc1_from_annexb(&[]), None);
        assert_eq!(avc1_from_annexb(&[0, 0, 1, 0x67, 100]), None);
    }

    #[test]
    fn hevc_main_profile_string() {
        // Main profile (1), compatibility flags 0x60000000 (profiles 1 and 2), Main tier, level
        // 3.0 (90), progressive + frame-only constraint byte 0x90.
        let hvcc = [1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 90];
        assert_eq!(hevc("hvc1", &hvcc).as_deref(), Some("hvc1.1.6.L90.90"));
        let high_tier = [1, 0x22, 0x20, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 120];
        assert_eq!(hevc("hvc1", &high_tier).as_deref(), Some("hvc1.2.4.H120.B0"));
    }

    #[test]
    fn vp9_and_av1_strings() {
        assert_eq!(
            vp9(&[1, 0, 0, 0, 0, 21, 0x80, 1, 1, 1]).as_deref(),
            Some("vp09.00.21.08")
        );
        // seq_profile 0, level index 4, Main tier, 8 bit.
        assert_eq!(av1(&[0x81, 0x04, 0x0c]).as_deref(), Some("av01.0.04M.08"));
        assert_eq!(av1(&[0x81, 0x28, 0x40]).as_deref(), Some("av01.1.08M.10"));
    }

    #[test]
    fn sample_entries_map_to_their_strings() {
        let avcc: &[u8] = &[1, 0x64, 0x00, 0x1f];
        assert_eq!(
            from_sample_entry(b"avc1", &[(*b"avcC", avcc)]).as_deref(),
            Some("avc1.64001F")
        );
        assert_eq!(from_sample_entry(b"Opus", &[]).as_deref(), Some("opus"));
        assert_eq!(from_sample_entry(b"avc1", &[]), None);
        assert_eq!(from_sample_entry(b"xyz1", &[]), None);
    }

    #[test]
    fn audio_object_type_comes_from_the_first_bits() {
        // AAC-LC, 48 kHz, stereo: 00010 0011 0010 000.
        assert_eq!(
            mp4a_from_audio_specific_config(&[0x11, 0x90]).as_deref(),
            Some("mp4a.40.2")
        );
        // HE-AAC (SBR, 5), 24 kHz core.
        assert_eq!(
            mp4a_from_audio_specific_config(&[0x2b, 0x10]).as_deref(),
            Some("mp4a.40.5")
        );
        // Escaped object type 31 + 1 = 32.
        assert_eq!(
            mp4a_from_audio_specific_config(&[0xf8, 0x00]).as_deref(),
            Some("mp4a.40.32")
        );
        assert_eq!(mp4a_from_audio_specific_config(&[]), None);
    }
}
