//! The ladder: which renditions to make. A ladder file (TOML, see presets/default.toml) gives the
//! bitrates per height; `--reps` picks rungs from it; the source's display geometry decides each
//! rung's frame size.

use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{Error, Result};
pub use crate::input::source::DisplayGeometry;
pub use crate::package::rate::{Bitrate, MAX_VIDEO_BITRATE, MIN_VIDEO_BITRATE, RateControl};
use crate::package::transcode::encoding::VideoCodec;

/// The ladder stream-pack ships, used when no `--ladder` file is given.
pub const DEFAULT_LADDER: &str = include_str!("../../presets/default.toml");

/// The longest side a rung may have: the largest picture of H.264's and AV1's highest levels
/// (HEVC's and VP9's are larger; libx264 and SVT-AV1 stop at 16384).
pub const MAX_SIDE: u32 = 8192;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LadderEntryFile {
    height: u32,
    video_bitrate: Bitrate,
    maxrate: Option<Bitrate>,
    bufsize: Option<Bitrate>,
    #[serde(default = "yes")]
    auto: bool,
    quality_target: Option<f64>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LadderFile {
    rung: Vec<LadderEntryFile>,
}

/// One row of a ladder file.
#[derive(Debug, Clone, PartialEq)]
pub struct LadderEntry {
    /// The short side of the picture, in pixels.
    pub height: u32,
    pub rate: RateControl,
    /// Part of `--reps auto`.
    pub auto: bool,
    /// The Y PSNR (dB, against the source scaled to the rung's size) `--ladder-mode per-title`
    /// spends the fewest bits to reach.
    pub quality_target: Option<f64>,
}

/// The quality targets a ladder file may give, in dB of PSNR: below 20 dB a picture is barely
/// recognisable, above 60 dB x264 is close to lossless.
const QUALITY_TARGETS: std::ops::RangeInclusive<f64> = 20.0..=60.0;

/// The most a ladder file may hold: a few hundred rungs take a few KiB.
const LADDER_FILE_LIMIT: u64 = 1 << 20;

/// The bitrates to use per height, sorted by height.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    entries: Vec<LadderEntry>,
}

impl Ladder {
    pub fn default_ladder() -> Ladder {
        Ladder::parse(DEFAULT_LADDER).expect("the bundled ladder is valid")
    }

    pub fn from_file(path: &Path) -> Result<Ladder> {
        let text = crate::input::sidefile::read_text(path, LADDER_FILE_LIMIT).map_err(|e| Error::LadderFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ladder::parse(&text).map_err(|reason| Error::LadderFile {
            path: path.to_owned(),
            reason,
        })
    }

    pub fn parse(text: &str) -> Result<Ladder, String> {
        let file: LadderFile = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let mut entries = Vec::with_capacity(file.rung.len());
        for rung in file.rung {
            if rung.height < 2 {
                return Err(format!("rung height {} is too small", rung.height));
            }
            if rung.height > MAX_SIDE {
                return Err(format!("rung height {} is above {MAX_SIDE}", rung.height));
            }
            if let Some(target) = rung.quality_target.filter(|t| !QUALITY_TARGETS.contains(t)) {
                return Err(format!(
                    "rung height {}: quality_target {target} is outside {}–{} dB",
                    rung.height,
                    QUALITY_TARGETS.start(),
                    QUALITY_TARGETS.end()
                ));
            }
            let bitrate = rung.video_bitrate;
            entries.push(LadderEntry {
                height: rung.height,
                rate: RateControl {
                    bitrate,
                    maxrate: rung.maxrate.unwrap_or(Bitrate(bitrate.0 * 3 / 2)),
                    bufsize: rung.bufsize.unwrap_or(Bitrate(bitrate.0 * 2)),
                },
                auto: rung.auto,
                quality_target: rung.quality_target,
            });
        }
        if entries.is_empty() {
            return Err("the ladder has no [[rung]]".into());
        }
        entries.sort_by_key(|e| e.height);
        if let Some(pair) = entries.windows(2).find(|w| w[0].height == w[1].height) {
            return Err(format!("height {} is listed twice", pair[0].height));
        }
        for entry in &entries {
            entry
                .rate
                .check()
                .map_err(|e| format!("rung height {}: {e}", entry.height))?;
        }
        Ok(Ladder { entries })
    }

    pub fn entries(&self) -> &[LadderEntry] {
        &self.entries
    }

    /// The rate control for a picture whose short side is `height`: the listed one, or one
    /// interpolated by pixel count (bits per pixel) between the neighbouring rows.
    pub fn rate_for(&self, height: u32) -> RateControl {
        let pixels = |h: u32| f64::from(h) * f64::from(h);
        let upper = self.entries.iter().position(|e| e.height >= height);
        let (low, high) = match upper {
            Some(i) if self.entries[i].height == height => return self.entries[i].rate,
            Some(0) => (&self.entries[0], &self.entries[0]),
            Some(i) => (&self.entries[i - 1], &self.entries[i]),
            None => {
                let last = self.entries.last().expect("ladder is never empty");
                (last, last)
            }
        };
        let bitrate = if low.height == high.height {
            low.rate.bitrate.0 as f64 * pixels(height) / pixels(low.height)
        } else {
            let along = (pixels(height) - pixels(low.height)) / (pixels(high.height) - pixels(low.height));
            low.rate.bitrate.0 as f64 + along * (high.rate.bitrate.0 as f64 - low.rate.bitrate.0 as f64)
        };
        let nearest = if height.abs_diff(low.height) <= height.abs_diff(high.height) {
            low
        } else {
            high
        };
        nearest
            .rate
            .with_bitrate((bitrate.round() as u64).max(MIN_VIDEO_BITRATE.0))
    }

    /// The quality target of a rung whose short side is `height`: the listed row's, or for a
    /// height between rows (a top rung of the source's own size) the nearest row's.
    pub fn quality_target_for(&self, height: u32) -> Option<f64> {
        self.entries
            .iter()
            .min_by_key(|e| (e.height.abs_diff(height), std::cmp::Reverse(e.height)))
            .and_then(|e| e.quality_target)
    }
}

/// One rung as the user asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RungRequest {
    /// A short side in pixels, bitrate from the ladder.
    Height(u32),
    /// `WxH@bitrate`: the short side and bitrate are taken; the width follows the source's aspect.
    Explicit { width: u32, height: u32, bitrate: Bitrate },
}

/// The `--reps` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reps {
    Auto,
    List(Vec<RungRequest>),
}

impl FromStr for Reps {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim() == "auto" {
            return Ok(Reps::Auto);
        }
        let rungs = text
            .split(',')
            .map(|item| parse_rung(item.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Reps::List(rungs))
    }
}

fn parse_rung(item: &str) -> Result<RungRequest, String> {
    let positive = |text: &str, what: &str| -> Result<u32, String> {
        match text.trim_end_matches('p').parse::<u32>() {
            Ok(v) if (2..=MAX_SIDE).contains(&v) => Ok(v),
            _ => Err(format!(
                "`{item}`: {what} must be a whole number of pixels from 2 to {MAX_SIDE}"
            )),
        }
    };
    match item.split_once('@') {
        None if item.contains('x') => Err(format!(
            "`{item}`: an explicit rung needs a bitrate, as in 1280x720@3000k"
        )),
        None => Ok(RungRequest::Height(positive(item, "a rung height")?)),
        Some((size, bitrate)) => {
            let (w, h) = size
                .split_once('x')
                .ok_or_else(|| format!("`{item}`: expected WIDTHxHEIGHT@BITRATE, as in 1280x720@3000k"))?;
            let bitrate: Bitrate = bitrate.parse().map_err(|e| format!("`{item}`: {e}"))?;
            if !(MIN_VIDEO_BITRATE..=MAX_VIDEO_BITRATE).contains(&bitrate) {
                return Err(format!(
                    "`{item}`: the bitrate must be from {MIN_VIDEO_BITRATE} to {MAX_VIDEO_BITRATE}"
                ));
            }
            Ok(RungRequest::Explicit {
                width: positive(w, "the width")?,
                height: positive(h, "the height")?,
                bitrate,
            })
        }
    }
}

/// A rendition to make: its name (and folder), frame size and rate control.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub rate: RateControl,
    /// Encode at this CRF under `rate`'s maxrate and bufsize (what `--ladder-mode per-title`
    /// chooses) rather than at `rate`'s average bitrate.
    pub constant_quality: Option<f64>,
}

/// What `plan` gives: the rungs, and the requests dropped because they were above the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub rungs: Vec<Rung>,
    pub dropped_above_source: Vec<u32>,
}

/// Turns the request into rungs for a source of the given geometry, highest first, refusing a
/// rung the codec's encoder cannot make.
pub fn plan(
    reps: &Reps,
    ladder: &Ladder,
    source: DisplayGeometry,
    allow_upscale: bool,
    codec: VideoCodec,
) -> Result<Plan> {
    let source_short = source.short_side().round() as u32;
    let requests: Vec<(u32, RateControl)> = match reps {
        Reps::Auto => ladder
            .entries()
            .iter()
            .filter(|e| e.auto)
            .map(|e| (e.height, e.rate))
            .collect(),
        Reps::List(list) => list
            .iter()
            .map(|r| match *r {
                RungRequest::Height(h) => (h, ladder.rate_for(h)),
                RungRequest::Explicit { width, height, bitrate } => {
                    let short = width.min(height);
                    (short, ladder.rate_for(short).with_bitrate(bitrate.0))
                }
            })
            .collect(),
    };
    let (mut kept, dropped): (Vec<_>, Vec<_>) = requests
        .into_iter()
        .partition(|(h, _)| allow_upscale || *h <= source_short);
    if matches!(reps, Reps::Auto) && !dropped.is_empty() && worth_own_rung(source_short, &kept) {
        kept.push((source_short, ladder.rate_for(source_short)));
    }
    if kept.is_empty() {
        let asked: Vec<String> = dropped.iter().map(|(h, _)| h.to_string()).collect();
        return Err(Error::Ladder(format!(
            "no rung fits the source: it is {source_short} pixels high (short side) and the ladder asks for {} \
             (allow upscaling to encode above the source)",
            asked.join(", ")
        )));
    }
    let mut rungs: Vec<Rung> = kept
        .into_iter()
        .map(|(short, rate)| rung(short, rate, source, codec))
        .collect::<Result<_>>()?;
    rungs.sort_by_key(|r| std::cmp::Reverse((r.width * r.height, r.rate.bitrate)));
    rungs.dedup_by(|a, b| a.width == b.width && a.height == b.height && a.rate == b.rate);
    disambiguate_names(&mut rungs);
    Ok(Plan {
        rungs,
        dropped_above_source: dropped.into_iter().map(|(h, _)| h).collect(),
    })
}

/// Whether a source between the ladder's rungs gets a top rung of its own size: when it is
/// more than a tenth taller than the top rung that fits, so a 640x272 source gets a 272p rung
/// above 234p but a 1280x724 one no 724p rung beside 720p. A source below every rung still
/// gets no ladder at all.
fn worth_own_rung(source_short: u32, kept: &[(u32, RateControl)]) -> bool {
    kept.iter()
        .map(|(short, _)| *short)
        .max()
        .is_some_and(|top| f64::from(source_short) > 1.1 * f64::from(top))
}

/// The rung of short side `short` for the source's geometry, if the codec's encoder can make it.
fn rung(short: u32, rate: RateControl, source: DisplayGeometry, codec: VideoCodec) -> Result<Rung> {
    let name = format!("{short}p");
    let (width, height) = source.scaled_to(short);
    if width.max(height) > MAX_SIDE {
        return Err(Error::Ladder(format!(
            "the {name} rung would be {width}x{height}: more than the {MAX_SIDE} pixels a side the encoders take"
        )));
    }
    if width.min(height) < codec.min_side() {
        return Err(Error::Ladder(format!(
            "the {name} rung would be {width}x{height}: {codec} needs at least {} pixels a side",
            codec.min_side()
        )));
    }
    rate.check()
        .map_err(|reason| Error::Ladder(format!("the {name} rung: {reason}")))?;
    Ok(Rung {
        name,
        width,
        height,
        rate,
        constant_quality: None,
    })
}

/// Two rungs of one height (Apple's ladder has two 720p rungs) get their bitrate in the name.
pub(crate) fn disambiguate_names(rungs: &mut [Rung]) {
    let names: Vec<String> = rungs.iter().map(|r| r.name.clone()).collect();
    for rung in rungs.iter_mut() {
        if names.iter().filter(|n| **n == rung.name).count() > 1 {
            rung.name = format!("{}_{}", rung.name, rung.rate.bitrate);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: DisplayGeometry = DisplayGeometry {
        width: 1920.0,
        height: 1080.0,
    };

    #[test]
    fn reps_parse_heights_explicit_and_auto() {
        assert_eq!("auto".parse::<Reps>(), Ok(Reps::Auto));
        assert_eq!(
            "720,480p".parse::<Reps>(),
            Ok(Reps::List(vec![RungRequest::Height(720), RungRequest::Height(480)]))
        );
        assert_eq!(
            "1280x720@3000k".parse::<Reps>(),
            Ok(Reps::List(vec![RungRequest::Explicit {
                width: 1280,
                height: 720,
                bitrate: Bitrate(3_000_000)
            }]))
        );
        for bad in ["abc", "0", "720,", "1280x720", "1280x@3000k", "1280x720@fast", "-480"] {
            assert!(bad.parse::<Reps>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn widths_keep_display_aspect_and_are_even() {
        assert_eq!(WIDE.scaled_to(720), (1280, 720));
        assert_eq!(WIDE.scaled_to(480), (854, 480));
        assert_eq!(WIDE.scaled_to(240), (426, 240));
        let portrait = DisplayGeometry {
            width: 1080.0,
            height: 1920.0,
        };
        assert_eq!(portrait.scaled_to(720), (720, 1280));
        let four_three = DisplayGeometry {
            width: 640.0,
            height: 480.0,
        };
        assert_eq!(four_three.scaled_to(360), (480, 360));
    }

    #[test]
    fn listed_heights_use_the_ladder_and_others_interpolate_by_pixels() {
        let ladder = Ladder::default_ladder();
        assert_eq!(ladder.rate_for(720).bitrate, Bitrate(3_000_000));
        let b480 = ladder.rate_for(480).bitrate.0;
        assert!(b480 > 1_100_000 && b480 < 2_000_000, "{b480}");
        // 480² lies 41.7% of the way from 432² to 540².
        assert!((b480 as i64 - 1_475_000).abs() < 2_000, "{b480}");
        let tiny = ladder.rate_for(117).bitrate.0;
        assert!((tiny as i64 - 36_250).abs() < 100, "{tiny}");
    }

    #[test]
    fn rungs_above_the_source_are_dropped_and_an_empty_ladder_names_the_height() {
        let ladder = Ladder::default_ladder();
        let small = DisplayGeometry {
            width: 640.0,
            height: 360.0,
        };
        let plan = plan(&"720,360,240".parse().unwrap(), &ladder, small, false, VideoCodec::H264).unwrap();
        let names: Vec<_> = plan.rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["360p", "240p"]);
        assert_eq!(plan.dropped_above_source, [720]);
        let tiny = DisplayGeometry {
            width: 160.0,
            height: 90.0,
        };
        let err = super::plan(&"720".parse().unwrap(), &ladder, tiny, false, VideoCodec::H264).unwrap_err();
        assert!(err.to_string().contains("90 pixels high"), "{err}");
        assert!(super::plan(&"720".parse().unwrap(), &ladder, tiny, true, VideoCodec::H264).is_ok());
    }

    #[test]
    fn auto_takes_the_auto_rungs_up_to_the_source() {
        let ladder = Ladder::default_ladder();
        let plan = plan(&Reps::Auto, &ladder, WIDE, false, VideoCodec::H264).unwrap();
        let names: Vec<_> = plan.rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["1080p", "720p", "540p", "432p", "360p", "234p"]);
    }

    #[test]
    fn auto_adds_a_top_rung_at_the_size_of_a_source_between_rungs() {
        let ladder = Ladder::default_ladder();
        let scope = DisplayGeometry {
            width: 640.0,
            height: 272.0,
        };
        let plan = plan(&Reps::Auto, &ladder, scope, false, VideoCodec::H264).unwrap();
        let rungs: Vec<_> = plan
            .rungs
            .iter()
            .map(|r| (r.name.as_str(), r.width, r.height))
            .collect();
        assert_eq!(rungs, [("272p", 640, 272), ("234p", 550, 234)]);
        assert_eq!(plan.rungs[0].rate, ladder.rate_for(272));
        let near_720 = DisplayGeometry {
            width: 1288.0,
            height: 724.0,
        };
        let plan = super::plan(&Reps::Auto, &ladder, near_720, false, VideoCodec::H264).unwrap();
        assert_eq!(plan.rungs[0].name, "720p");
    }

    #[test]
    fn tiny_rungs_get_the_least_bitrate_and_huge_ones_are_refused() {
        let ladder = Ladder::default_ladder();
        assert_eq!(ladder.rate_for(2).bitrate, MIN_VIDEO_BITRATE);
        for bad in ["100000", "9000x720@3000k", "1280x720@999999999k", "1280x720@500"] {
            assert!(bad.parse::<Reps>().is_err(), "{bad} should be refused");
        }
        let err = plan(&"8000".parse().unwrap(), &ladder, WIDE, true, VideoCodec::H264).unwrap_err();
        assert!(err.to_string().contains("8192"), "{err}");
        let err = plan(
            &"1280x720@1500M".parse().unwrap(),
            &ladder,
            WIDE,
            false,
            VideoCodec::H264,
        )
        .unwrap_err();
        assert!(err.to_string().contains("maxrate"), "{err}");
        let err = plan(&"32".parse().unwrap(), &ladder, WIDE, false, VideoCodec::Av1).unwrap_err();
        assert!(err.to_string().contains("at least 64"), "{err}");
        assert!(Ladder::parse("[[rung]]\nheight = 360\nvideo_bitrate = \"1\"\n").is_err());
    }

    #[test]
    fn same_height_rungs_get_distinct_names() {
        let ladder = Ladder::default_ladder();
        let reps = "1280x720@3000k,1280x720@4500k".parse().unwrap();
        let plan = plan(&reps, &ladder, WIDE, false, VideoCodec::H264).unwrap();
        let names: Vec<_> = plan.rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["720p_4500k", "720p_3000k"]);
    }

    #[test]
    fn ladder_files_are_validated() {
        assert!(Ladder::parse("").is_err());
        assert!(Ladder::parse("[[rung]]\nheight = 360\n").is_err());
        assert!(Ladder::parse("[[rung]]\nheight = 360\nvideo_bitrate = \"1k\"\ncolor = 1\n").is_err());
        let twice = "[[rung]]\nheight = 360\nvideo_bitrate = \"1k\"\n[[rung]]\nheight = 360\nvideo_bitrate = \"2k\"\n";
        assert!(Ladder::parse(twice).unwrap_err().contains("twice"));
        let one = Ladder::parse("[[rung]]\nheight = 360\nvideo_bitrate = \"800k\"\n").unwrap();
        assert_eq!(one.rate_for(360).maxrate, Bitrate(1_200_000));
        assert_eq!(one.quality_target_for(360), None);
        let off = "[[rung]]\nheight = 360\nvideo_bitrate = \"1k\"\nquality_target = 75.0\n";
        assert!(Ladder::parse(off).unwrap_err().contains("quality_target 75"));
    }

    #[test]
    fn quality_targets_come_from_the_listed_or_nearest_row() {
        let two = "[[rung]]\nheight = 360\nvideo_bitrate = \"800k\"\nquality_target = 40.0\n\
                   [[rung]]\nheight = 720\nvideo_bitrate = \"3M\"\nquality_target = 42.5\n";
        let ladder = Ladder::parse(two).unwrap();
        assert_eq!(ladder.quality_target_for(360), Some(40.0));
        assert_eq!(ladder.quality_target_for(500), Some(40.0));
        assert_eq!(ladder.quality_target_for(600), Some(42.5));
        assert_eq!(ladder.quality_target_for(1080), Some(42.5));
    }
}
