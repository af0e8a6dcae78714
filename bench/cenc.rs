//! Throughput of common encryption (stream_pack_formats::cenc) on a media segment: `cenc` and
//! `cbcs`, an H.264 video fragment (subsamples from the slice headers) and an audio fragment
//! (whole samples). Target (issue 16): at least 500 MB/s. Run from the top of the repository:
//! `cargo bench -p stream-pack-formats --bench cenc`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stream_pack_formats::boxed;
use stream_pack_formats::cenc::{Codec, FragmentEncryptor, Protection, Scheme, TrackInfo};

/// A 6 s segment at 8 Mb/s: 150 frames of 40 kB.
const FRAMES: usize = 150;
const FRAME: usize = 40_000;
/// 6 s of 256 kb/s AAC at 48 kHz: 282 frames of 680 bytes.
const AUDIO_FRAMES: usize = 282;
const AUDIO_FRAME: usize = 680;

/// A baseline 320x240 SPS and PPS (log2_max_frame_num 4, POC type 2, CAVLC) and the start of a
/// slice they make, its 18-bit header then slice data: first_mb 0, slice type P (5), PPS 0, frame_num 0, no override, no list
/// modification, no ref-pic marking operation, qp delta 0, deblocking idc 1.
const SPS: [u8; 8] = [0x67, 66, 0, 30, 0xda, 0x05, 0x07, 0xe4];
const PPS: [u8; 4] = [0x68, 0xce, 0x3c, 0x80];
const SLICE_HEADER: [u8; 4] = [0x41, 0x9a, 0x02, 0x80];

fn video_sample() -> Vec<u8> {
    let mut nal = SLICE_HEADER.to_vec();
    nal.extend((0..FRAME - 8).map(|i| (i * 31 % 251) as u8 | 1));
    [(nal.len() as u32).to_be_bytes().to_vec(), nal].concat()
}

/// moof(mfhd, traf(tfhd default-base-is-moof, trun with sizes)) + mdat of `samples`.
fn segment(samples: &[Vec<u8>]) -> Vec<u8> {
    let mut trun = vec![0, 0, 0x02, 0x01];
    trun.extend_from_slice(&(samples.len() as u32).to_be_bytes());
    let offset_at = trun.len();
    trun.extend_from_slice(&0u32.to_be_bytes());
    for sample in samples {
        trun.extend_from_slice(&(sample.len() as u32).to_be_bytes());
    }
    let moof_len = 8 + 16 + 8 + 16 + 8 + trun.len();
    trun[offset_at..offset_at + 4].copy_from_slice(&(moof_len as u32 + 8).to_be_bytes());
    let traf = [boxed(b"tfhd", &[0, 2, 0, 0, 0, 0, 0, 1]), boxed(b"trun", &trun)].concat();
    let moof = [boxed(b"mfhd", &[0, 0, 0, 0, 0, 0, 0, 1]), boxed(b"traf", &traf)].concat();
    [boxed(b"moof", &moof), boxed(b"mdat", &samples.concat())].concat()
}

fn protection(scheme: Scheme) -> Protection {
    Protection {
        scheme,
        kid: [1; 16],
        key: [2; 16],
        iv: if scheme == Scheme::Cenc {
            vec![3; 8]
        } else {
            vec![3; 16]
        },
    }
}

fn encrypt(c: &mut Criterion) {
    let video = segment(&vec![video_sample(); FRAMES]);
    let audio = segment(&vec![vec![0x5a; AUDIO_FRAME]; AUDIO_FRAMES]);
    let h264 = Codec::H264 {
        nal_length_size: 4,
        parameter_sets: vec![SPS.to_vec(), PPS.to_vec()],
    };
    let mut group = c.benchmark_group("cenc");
    for scheme in [Scheme::Cenc, Scheme::Cbcs] {
        for (name, clear, codec) in [("video", &video, h264.clone()), ("audio", &audio, Codec::Audio)] {
            let track = TrackInfo {
                track_id: 1,
                codec,
                default_sample_size: 0,
            };
            let mut encryptor = FragmentEncryptor::new(protection(scheme), track).expect("an encryptor");
            let mut data = Vec::with_capacity(clear.len() + 64 * 1024);
            group.throughput(Throughput::Bytes(clear.len() as u64));
            group.bench_function(format!("{scheme:?} {name}, {} kB segment", clear.len() / 1000), |b| {
                b.iter(|| {
                    data.clear();
                    data.extend_from_slice(clear);
                    encryptor.protect(&mut data).expect("encrypt the segment");
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, encrypt);
criterion_main!(benches);
