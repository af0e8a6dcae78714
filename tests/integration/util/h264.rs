//! The RFC 6381 `avc1.PPCCLL` codec string, read from the SPS of an H.264 stream.

use std::path::Path;
use std::process::Command;

/// `avc1.PPCCLL` (upper-case hex) from the first SPS of a file's first video stream.
pub fn avc1_codec(file: &Path) -> String {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(file)
        .args(["-map", "0:v:0", "-c:v", "copy", "-bsf:v", "h264_mp4toannexb"])
        .args(["-f", "h264", "-"])
        .output()
        .expect("run ffmpeg");
    assert!(
        output.status.success(),
        "ffmpeg cannot extract H.264 from {}: {}",
        file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    codec_from_annex_b(&output.stdout).unwrap_or_else(|| panic!("no SPS in the H.264 stream of {}", file.display()))
}

/// `avc1.PPCCLL` from the first SPS (NAL unit type 7) of an Annex B byte stream:
/// profile_idc, the constraint flags byte and level_idc.
pub fn codec_from_annex_b(stream: &[u8]) -> Option<String> {
    let sps = nal_units(stream)
        .into_iter()
        .find(|nal| nal.first().is_some_and(|header| header & 0x1f == 7))?;
    // No emulation prevention byte can precede level_idc: profile_idc is never zero.
    let [profile, constraints, level] = *sps.get(1..4)? else {
        return None;
    };
    Some(format!("avc1.{profile:02X}{constraints:02X}{level:02X}"))
}

/// NAL units between `00 00 01` start codes; the extra zero of a 4-byte start code, left
/// at the end of the unit before it, is trimmed.
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let starts: Vec<usize> = stream
        .windows(3)
        .enumerate()
        .filter(|(_, window)| *window == [0, 0, 1])
        .map(|(position, _)| position + 3)
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(number, &start)| {
            let end = starts.get(number + 1).map_or(stream.len(), |next| next - 3);
            let unit = &stream[start..end];
            let kept = unit.iter().rposition(|&byte| byte != 0).map_or(0, |last| last + 1);
            &unit[..kept]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::codec_from_annex_b;

    #[test]
    fn reads_profile_constraints_and_level_of_the_first_sps() {
        let stream = [
            0, 0, 0, 1, 0x09, 0xf0, // access unit delimiter
            0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1e, 0xab, // SPS: Main, constraint_set1, 3.0
            0, 0, 1, 0x67, 0x64, 0x00, 0x28, // a later SPS is not read
        ];
        assert_eq!(codec_from_annex_b(&stream).as_deref(), Some("avc1.4D401E"));
    }

    #[test]
    fn finds_nothing_without_an_sps() {
        assert_eq!(codec_from_annex_b(&[0, 0, 1, 0x65, 0x88, 0x84]), None);
    }
}
