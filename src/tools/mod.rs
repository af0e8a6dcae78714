//! The standalone tools, each a command of its own beside packaging: [`probe`], [`convert`]
//! (HLS ↔ DASH), [`remux`] (to a faststart MP4), [`concat_flv`] (FLV chunks joined), [`unframe`]
//! (websocket captures), [`record`] (live streams to files), [`inspect`] (fMP4 and FLV checks) and
//! [`scale_out`] (a title encoded in chunks on many machines, and assembled).

pub mod concat_flv;
pub mod convert;
pub mod inspect;
pub mod probe;
pub mod record;
pub mod remux;
pub mod scale_out;
pub mod unframe;
