//! Live sources: opening RTMP, SRT, live HLS/DASH URLs and capture devices with libav so that
//! reading never blocks forever ([`input`]).

pub mod input;
pub mod record;
pub mod schedule;
pub mod time;

pub use input::{CaptureDevice, LiveInput, LiveOptions, LiveSource};
pub use record::{Ended, Phase, RecordOptions, RecordProgress, RecordReport, record};
