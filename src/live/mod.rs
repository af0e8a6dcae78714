//! Live sources: opening RTMP, SRT, live HLS/DASH URLs and capture devices with libav so that
//! reading never blocks forever ([`input`]), and the sliding window of a live presentation
//! ([`window`]).

pub mod input;
pub mod window;

pub use input::{CaptureDevice, LiveInput, LiveOptions, LiveSource};
pub use window::{Window, WindowOptions};
