//! Transport streams whose PMTs are signalled as SAMPLE-AES: never a panic, and a stream once
//! signalled has nothing left to change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_pack_formats::ts_pmt::{SampleAesSignal, signal_sample_aes};

fuzz_target!(|data: &[u8]| {
    let signal = SampleAesSignal::h264();
    let mut ts = data.to_vec();
    if signal_sample_aes(&mut ts, &signal).is_ok() {
        let once = ts.clone();
        signal_sample_aes(&mut ts, &signal).expect("a signalled stream is signalled again");
        assert_eq!(ts, once, "signalling is idempotent");
    }
});
