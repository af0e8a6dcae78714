//! ISO-BMFF boxes: the box walker, moof and trex readers, sample entries and tfdt rewriting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_pack_formats::bmff;

fuzz_target!(|data: &[u8]| {
    let _ = bmff::header(data, 0);
    let _ = bmff::children(data, 0, data.len());
    let defaults = bmff::track_defaults(data).unwrap_or_default();
    if let Ok(fragment) = bmff::movie_fragment(data, &defaults) {
        let _ = fragment.check_data(data.len() as u64, 8, 1 << 20);
    }
    let _ = bmff::sample_entry(data);
    let _ = bmff::set_decode_time(&mut data.to_vec(), 1 << 40);
});
