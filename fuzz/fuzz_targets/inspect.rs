//! `inspect` over any bytes: the box tree and fragment checks, or the FLV tag checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use stream_pack::tools::inspect::Inspector;

fuzz_target!(|data: &[u8]| {
    if let Ok(inspector) = Inspector::new(Path::new("fuzz"), std::io::Cursor::new(data)) {
        let _ = inspector.print(stream_pack::tools::inspect::Style::Json, std::io::sink());
    }
});
