//! Rates: a bitrate as written (`800k`, `3M`) and the rate control a rung's encoder gets, within
//! the bounds the encoders take.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// The least bitrate a rung gets: libx264 and libx265 take whole kilobits, so anything under 1k
/// is none at all and fails inside the encoder; a ladder interpolated down to a few pixels
/// would ask for that.
pub const MIN_VIDEO_BITRATE: Bitrate = Bitrate(10_000);

/// The most any of a rung's rates may be: libav keeps the VBV buffer size in a 32-bit int.
pub const MAX_VIDEO_BITRATE: Bitrate = Bitrate(2_000_000_000);

/// A bitrate in bits per second, written `365k`, `3M` or `3000000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bitrate(pub u64);

impl FromStr for Bitrate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (digits, multiplier) = match text.char_indices().last() {
            Some((i, 'k' | 'K')) => (&text[..i], 1_000.0),
            Some((i, 'm' | 'M')) => (&text[..i], 1_000_000.0),
            _ => (text, 1.0),
        };
        let value: f64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a bitrate (examples: 800k, 3M, 3000000)"))?;
        let bits = (value * multiplier).round();
        if !(bits.is_finite() && bits >= 1.0) {
            return Err(format!("`{text}` is not a positive bitrate"));
        }
        Ok(Bitrate(bits as u64))
    }
}

impl<'de> Deserialize<'de> for Bitrate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Bitrate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}k", self.0 / 1000)
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// One rate-control setting: average bitrate and the VBV bounds around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateControl {
    pub bitrate: Bitrate,
    pub maxrate: Bitrate,
    pub bufsize: Bitrate,
}

impl RateControl {
    /// The same peak and buffer ratios as `self`, around another average bitrate.
    pub(crate) fn with_bitrate(&self, bitrate: u64) -> RateControl {
        let scale = |b: Bitrate| Bitrate((b.0 as f64 * bitrate as f64 / self.bitrate.0 as f64).round() as u64);
        RateControl {
            bitrate: Bitrate(bitrate),
            maxrate: scale(self.maxrate),
            bufsize: scale(self.bufsize),
        }
    }

    /// Refuses rates the encoders cannot take, naming the one out of range.
    pub(crate) fn check(&self) -> Result<(), String> {
        for (what, rate) in [
            ("video bitrate", self.bitrate),
            ("maxrate", self.maxrate),
            ("bufsize", self.bufsize),
        ] {
            if !(MIN_VIDEO_BITRATE..=MAX_VIDEO_BITRATE).contains(&rate) {
                return Err(format!(
                    "{what} {rate} is outside {MIN_VIDEO_BITRATE}–{MAX_VIDEO_BITRATE}, what the encoders take"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_parse_with_units() {
        assert_eq!("365k".parse::<Bitrate>(), Ok(Bitrate(365_000)));
        assert_eq!("3M".parse::<Bitrate>(), Ok(Bitrate(3_000_000)));
        assert_eq!("2.5M".parse::<Bitrate>(), Ok(Bitrate(2_500_000)));
        assert_eq!("128000".parse::<Bitrate>(), Ok(Bitrate(128_000)));
        assert!("abc".parse::<Bitrate>().is_err());
        assert!("0k".parse::<Bitrate>().is_err());
        assert!("-5k".parse::<Bitrate>().is_err());
    }
}
