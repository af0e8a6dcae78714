//! AMF0 values decoded; whatever decodes is encoded again and must decode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_pack_formats::amf0;

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let mut encoded = Vec::new();
    for value in &values {
        amf0::encode(value, &mut encoded);
    }
    let again = amf0::decode_all(&encoded).expect("what was encoded decodes");
    let mut reencoded = Vec::new();
    for value in &again {
        amf0::encode(value, &mut reencoded);
    }
    assert_eq!(encoded, reencoded, "encoding is stable");
});
