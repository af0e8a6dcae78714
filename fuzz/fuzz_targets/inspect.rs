//! `inspect` over any bytes: the box tree and fragment checks, or the FLV tag checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = stream_pack::inspect::inspect_reader(Path::new("fuzz"), std::io::Cursor::new(data));
});
