//! FLV files read tag by tag, each tag classified and any onMetaData decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_pack_formats::flv::{self, FlvReader};

fuzz_target!(|data: &[u8]| {
    let Ok((_, mut reader)) = FlvReader::new(data) else {
        return;
    };
    while let Ok(Some((info, payload))) = reader.next_tag() {
        let _ = flv::classify(info.kind, payload);
        let _ = flv::metadata(payload);
    }
});
