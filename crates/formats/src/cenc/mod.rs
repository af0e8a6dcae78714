//! Common encryption of CMAF tracks (ISO/IEC 23001-7): the `cenc` scheme (AES-128-CTR, an IV per
//! sample) and the `cbcs` scheme (AES-128-CBC, a constant IV, a 1:9 pattern over video).
//!
//! - [`track_info`] reads what the encryption needs from a clear init segment (track ID, codec,
//!   NAL length size, parameter sets); [`protect_init`] rewrites that init segment: the sample
//!   entry becomes `encv`/`enca` with a `sinf` (`frma`, `schm`, `schi/tenc`), and `pssh` boxes
//!   go at the end of `moov`.
//! - [`FragmentEncryptor`] encrypts media segments (moof + mdat pairs) in place and adds
//!   `senc`, `saiz` and `saio` to each track fragment; it carries the per-sample IV from one
//!   segment to the next. For a clear lead, `protect_init` keeps the clear sample entry as
//!   description 2 and [`FragmentEncryptor::leave_clear`] points the first segments at it.
//! - [`pssh`] builds the protection system boxes of Widevine, PlayReady and W3C ClearKey.
//!
//! Video (H.264 and HEVC) is subsample-encrypted as Shaka Packager does it: NAL length
//! prefixes, non-VCL NAL units, VCL NAL headers and slice headers stay clear; for `cenc` the
//! protected part of each NAL unit is cut to whole 16-byte blocks (CMAF), the bytes past the
//! last whole block left clear. Audio is encrypted whole (`cbcs`: its whole blocks, the
//! trailing partial block clear). Hostile input is an error, never a panic.
//!
//! A packager calls, per track: `track_info` and `protect_init` once, then
//! `FragmentEncryptor::protect` on each segment in order (a new encryptor for a new key).

pub(crate) mod crypt;
mod fragment;
mod hevc;
mod init;
mod nal;
pub mod pssh;

pub use fragment::FragmentEncryptor;
pub use init::{protect_init, track_info};

use thiserror::Error;

use crate::bmff::BoxError;

/// The protection scheme, as `schm` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// AES-128-CTR over whole samples (audio) or over each NAL unit's slice data, aligned to
    /// whole blocks (video); an 8- or 16-byte IV per sample.
    Cenc,
    /// AES-128-CBC with a constant IV: 1 block in 10 of each NAL unit's slice data (video), or
    /// every whole block (audio).
    Cbcs,
}

impl Scheme {
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Scheme::Cenc => *b"cenc",
            Scheme::Cbcs => *b"cbcs",
        }
    }
}

/// A track's key and how to use it.
#[derive(Clone, PartialEq, Eq)]
pub struct Protection {
    pub scheme: Scheme,
    /// The key ID, as `tenc` and the PSSH boxes carry it.
    pub kid: [u8; 16],
    pub key: [u8; 16],
    /// `cenc`: the first sample's IV, 8 or 16 bytes, incremented by one for every following
    /// sample. `cbcs`: the constant IV, 16 bytes.
    pub iv: Vec<u8>,
}

/// The key never reaches logs or error messages.
impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("scheme", &self.scheme)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl Protection {
    fn check(&self) -> Result<(), CencError> {
        let fits = match self.scheme {
            Scheme::Cenc => matches!(self.iv.len(), 8 | 16),
            Scheme::Cbcs => self.iv.len() == 16,
        };
        if fits {
            Ok(())
        } else {
            Err(CencError::IvSize(self.scheme, self.iv.len()))
        }
    }
}

/// The codec of a protected track, which decides how its samples are split into clear and
/// protected bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Codec {
    /// H.264 in `avc1`/`avc3`: its NAL length size and the SPS and PPS of its `avcC`.
    H264 {
        nal_length_size: u8,
        parameter_sets: Vec<Vec<u8>>,
    },
    /// HEVC in `hvc1`/`hev1`: its NAL length size and the VPS, SPS and PPS of its `hvcC`.
    H265 {
        nal_length_size: u8,
        parameter_sets: Vec<Vec<u8>>,
    },
    /// Audio (`mp4a`, `ac-3`, `ec-3`, `Opus`…): every sample encrypted whole.
    Audio,
}

/// What the encryption of a track's fragments needs from its init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub track_id: u32,
    pub codec: Codec,
    /// The trex defaults, for fragments whose tfhd does not give a sample size.
    pub default_sample_size: u32,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CencError {
    #[error(transparent)]
    Box(#[from] BoxError),
    #[error("the {0:?} scheme cannot use a {1}-byte IV")]
    IvSize(Scheme, usize),
    #[error("an init segment with {0} tracks: CMAF puts each track in its own")]
    TrackCount(usize),
    #[error("cannot encrypt samples of sample entry {0:?}")]
    UnsupportedEntry(String),
    #[error("the sample entry has no usable {0} box")]
    BadConfig(&'static str),
    #[error("the fragment has no traf for track {0}")]
    NoTrack(u32),
    #[error("the fragment is already encrypted (it has a {0} box)")]
    AlreadyEncrypted(&'static str),
    #[error("the fragment has a {0}, which this encryptor does not rewrite")]
    Unsupported(&'static str),
    #[error("sample {0} lies outside the segment's mdat")]
    SampleOutside(u64),
    #[error("sample {sample}: its NAL units do not add up to its size")]
    NalLengths { sample: u64 },
    #[error("sample {sample}: a slice header cannot be read ({reason})")]
    SliceHeader { sample: u64, reason: &'static str },
    #[error("sample {0}: too many NAL units to describe in 255 bytes of sample auxiliary information")]
    TooManySubsamples(u64),
    #[error("a fragment of more than 4 GiB")]
    TooLarge,
}

/// Bytes from hexadecimal digits, for test vectors.
#[cfg(test)]
fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
