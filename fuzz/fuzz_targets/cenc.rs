//! Common encryption: init segments read and rewritten, media segments encrypted in place
//! (H.264 slice headers parsed, audio whole), for both schemes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_pack_formats::cenc::{self, Codec, FragmentEncryptor, Protection, Scheme, TrackInfo};

/// A baseline SPS and PPS, so that slice headers in the input get parsed.
const SPS: [u8; 8] = [0x67, 66, 0, 30, 0xda, 0x05, 0x07, 0xe4];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];

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
    let _ = cenc::protect_init(data, &protection, &[cenc::pssh::clearkey(&[[1; 16]])]);
    let codec = if choice & 2 == 0 {
        Codec::Audio
    } else {
        Codec::H264 {
            nal_length_size: [1, 2, 4][usize::from(choice >> 2) % 3],
            parameter_sets: vec![SPS.to_vec(), PPS.to_vec()],
        }
    };
    let track = TrackInfo {
        track_id: 1,
        codec,
        default_sample_size: u32::from(choice),
    };
    if let Ok(mut encryptor) = FragmentEncryptor::new(protection, track) {
        let _ = encryptor.protect(&mut data.to_vec());
    }
});
