//! Integration tests of the `stream-pack` binary.
//!
//! The binary is run as a user would run it; its output is judged with FFmpeg's own CLI
//! tools (`ffmpeg`, `ffprobe`), the `openssl` CLI (encrypted segments) and parsers written
//! here, never with stream-pack's code or the crates it uses to write its output.

mod bad_input;
mod cenc;
mod codec;
mod concat_flv;
mod convert;
mod copy;
mod dash;
mod drm;
mod drm_live;
mod drm_live_gaps;
mod drm_rotation;
mod drm_shaka;
mod drm_signal;
mod encrypt;
mod encrypt_remote;
mod exit_codes;
mod hardening_av;
mod hardening_input;
mod hardening_newcomer;
mod hardening_parsers;
mod hardening_security;
mod hls;
mod hostile_cases;
mod inspect;
mod live;
mod passthrough;
mod per_title;
mod probe;
mod publish;
mod record;
mod remux;
mod sample_aes;
mod scale_out;
mod scale_out_bucket;
mod scale_out_slurm;
mod tracks_audio;
mod tracks_captions;
mod tracks_live;
mod tracks_surround;
mod tracks_text;
mod tracks_title;
mod unframe;
mod util;
