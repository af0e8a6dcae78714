//! Common encryption: init segments read and rewritten, media segments encrypted in place
//! (H.264 and HEVC slice headers parsed, audio whole), for both schemes. The first byte picks
//! the scheme, the codec and the NAL length size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_pack_formats::cenc::{self, Codec, FragmentEncryptor, Protection, Scheme, TrackInfo};

/// A baseline SPS and PPS, so that H.264 slice headers in the input get parsed.
const SPS: [u8; 8] = [0x67, 66, 0, 30, 0xda, 0x05, 0x07, 0xe4];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
/// The SPS and PPS x265 writes for a 64x64 picture, for HEVC slice headers.
const HEVC_SPS: [u8; 41] = [
    0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x1e,
    0xa0, 0x20, 0x81, 0x05, 0x96, 0x44, 0xe4, 0x93, 0x2b, 0xc0, 0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00,
    0x00, 0x03, 0x00, 0x32, 0x10,
];
const HEVC_PPS: [u8; 7] = [0x44, 0x01, 0xc1, 0x72, 0xb4, 0x22, 0x40];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, data)) = data.split_first() else {
        return;
    };
    let scheme = if choice & 1 == 0 { Scheme::Cenc } else { Scheme::Cbcs };
    let protection = Protection {
        scheme,
        kid: [1; 16],
        key: [2; 16],
        iv: vec![3; 16],
    };
    let _ = cenc::track_info(data);
    let _ = cenc::protect_init(data, &protection, &[cenc::pssh::clearkey(&[[1; 16]])], choice & 0x80 != 0);
    let nal_length_size = [1, 2, 4][usize::from(choice >> 3) % 3];
    let codec = match (choice >> 1) & 3 {
        1 => Codec::H264 {
            nal_length_size,
            parameter_sets: vec![SPS.to_vec(), PPS.to_vec()],
        },
        2 => Codec::H265 {
            nal_length_size,
            parameter_sets: vec![HEVC_SPS.to_vec(), HEVC_PPS.to_vec()],
        },
        _ => Codec::Audio,
    };
    let track = TrackInfo {
        track_id: 1,
        codec,
        default_sample_size: u32::from(choice),
    };
    if let Ok(mut encryptor) = FragmentEncryptor::new(protection, track) {
        let _ = encryptor.leave_clear(&mut data.to_vec());
        let _ = encryptor.protect(&mut data.to_vec());
    }
});
