//! Live sources: opening RTMP, SRT, live HLS/DASH URLs and capture devices with libav so that
//! reading never blocks forever ([`input`]).

pub mod input;

pub use input::{CaptureDevice, LiveInput, LiveOptions, LiveSource};
