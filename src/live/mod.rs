//! Live sources: opening RTMP, SRT, live HLS/DASH URLs and capture devices with libav so that
//! reading never blocks forever ([`input`]), the sliding window of a live presentation
//! ([`window`]), and recording streams, alone or on a schedule ([`record`], [`schedule`], [`time`]).

pub mod input;
pub mod record;
pub mod schedule;
pub mod time;
pub mod window;

pub use input::{CaptureDevice, LiveInput, LiveSource};
pub use record::{Ended, Phase, RecordOptions, RecordProgress, RecordReport, record};
pub use window::{Window, WindowOptions};
