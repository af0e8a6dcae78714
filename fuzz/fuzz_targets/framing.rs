//! Capture files of the tagged websocket framing, read message by message and assembled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_pack_formats::framing::{Assembler, MessageReader};

fuzz_target!(|data: &[u8]| {
    let mut reader = MessageReader::new(data);
    let mut assembler = Assembler::new(std::io::sink());
    while let Ok(Some((_, message))) = reader.next_message() {
        if assembler.push(message).is_err() {
            break;
        }
    }
    let _ = assembler.finish();
});
