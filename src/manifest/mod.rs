//! Manifests written by stream-pack from the facts of the segments it wrote.

pub mod hls;
