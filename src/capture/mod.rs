//! Captured streams turned into files: the tagged websocket framing of fragmented MP4 (seed 002),
//! from a capture file or live from the websocket.

pub mod unframe;
pub mod websocket;

pub use unframe::{UnframeOptions, UnframeReport, unframe_file, unframe_websocket};
pub use websocket::WebSocketSource;
