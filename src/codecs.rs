//! RFC 6381 codec strings read from the encoded bitstream, for CODECS and @codecs.

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

/// `mp4a.40.N` from an MPEG-4 AudioSpecificConfig, N being its audio object type (2 = AAC-LC).
pub fn mp4a_from_audio_specific_config(asc: &[u8]) -> Option<String> {
    let first = *asc.first()?;
    let object_type = match first >> 3 {
        31 => 32 + ((u32::from(first & 0x07) << 3) | u32::from(*asc.get(1)? >> 5)),
        ot => u32::from(ot),
    };
    (object_type > 0).then(|| format!("mp4a.40.{object_type}"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
