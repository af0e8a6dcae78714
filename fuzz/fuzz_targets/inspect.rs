//! `inspect`'s walks over any bytes: the box tree and fragment checks, or the FLV tag checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use stream_pack_formats::inspect::{self, Format};

fuzz_target!(|data: &[u8]| {
    if let Some(format) = Format::detect(data) {
        let _ = inspect::walk(format, Cursor::new(data), None, |entry| {
            let _ = entry.to_string();
        });
    }
});
