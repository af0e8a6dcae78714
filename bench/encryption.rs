//! Throughput of the streaming AES-128-CBC writer that encrypts HLS segments (target: at least
//! 600 MB/s on the project's 2-core machines). Run: `cargo bench --bench encryption`.

use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stream_pack::package::crypto::{Aes128CbcWriter, Iv, Key};

/// A segment's worth of bytes: 6 s at 8 Mb/s.
const SEGMENT: usize = 6 * 1_000_000;

fn encrypt_segment(c: &mut Criterion) {
    let plain: Vec<u8> = (0..SEGMENT).map(|i| (i * 31 % 251) as u8).collect();
    let (key, iv) = (Key::generate(), Iv::generate());
    let mut out = Vec::with_capacity(SEGMENT + 16);
    let mut group = c.benchmark_group("aes128_cbc_writer");
    group.throughput(Throughput::Bytes(SEGMENT as u64));
    group.bench_function("6 MB segment, written in 188-byte TS packets", |b| {
        b.iter(|| {
            out.clear();
            let mut writer = Aes128CbcWriter::new(&mut out, &key, &iv);
            for packet in plain.chunks(188) {
                writer.write_all(packet).expect("writing to memory");
            }
            writer.finish().expect("writing to memory");
        })
    });
    group.bench_function("6 MB segment, written at once", |b| {
        b.iter(|| {
            out.clear();
            let mut writer = Aes128CbcWriter::new(&mut out, &key, &iv);
            writer.write_all(&plain).expect("writing to memory");
            writer.finish().expect("writing to memory");
        })
    });
    group.finish();
}

criterion_group!(benches, encrypt_segment);
criterion_main!(benches);
