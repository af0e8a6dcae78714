//! Readers and writers of container structures that libav does not expose.

pub mod bmff;
