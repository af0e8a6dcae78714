//! Subtitle files read in each syntax; whatever reads is written as WebVTT, which must read back
//! as the same cues.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stream_pack_formats::subtitles::{self, Syntax};

fuzz_target!(|data: &[u8]| {
    let Ok((text, _)) = subtitles::decode(data) else {
        return;
    };
    for syntax in [Syntax::SubRip, Syntax::WebVtt, Syntax::Ass] {
        let Ok(cues) = subtitles::parse(&text, syntax) else {
            continue;
        };
        let mut vtt = String::from("WEBVTT\n\n");
        cues.iter().for_each(|cue| subtitles::write_cue(cue, 0, &mut vtt));
        let again = subtitles::parse(&vtt, Syntax::WebVtt).expect("what was written reads");
        assert_eq!(again, cues, "written cues read back the same");
    }
});
