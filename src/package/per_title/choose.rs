//! Choosing the ladder from the fitted curves: each rung the fewest bits that reach its quality
//! target, within its maxrate; then the rungs that do not earn their place are dropped.
//!
//! A chosen rung is encoded at the CRF that reached its target in the probe, under the ladder
//! rung's maxrate and bufsize ("capped CRF"), not at the chosen average bitrate: x264's one-pass
//! average-bitrate mode starves the first keyframe of a static title it has no history of
//! (measured: a slide at 11 kb/s came out at 17 dB PSNR where CRF 34 made 45.9 dB of the same
//! bits), and a static picture keeps that keyframe's quality to the end of the segment.

use serde::Serialize;

use super::fit::{self, LogFit};
use crate::package::rate::{Bitrate, MIN_VIDEO_BITRATE, RateControl};

/// The least gain, in dB of PSNR at the top rung's size, a rung must add over the rung below it:
/// below this a viewer switching between the two sees no step, and the rung only costs storage.
pub const QUALITY_STEP_DB: f64 = 0.5;

/// x264's largest CRF for 8-bit video.
const MAX_CRF: f64 = 51.0;

/// One probe encode of a rung.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbePoint {
    pub crf: u32,
    /// Bits per second of the probe's packets.
    pub bitrate: f64,
    /// Y PSNR against the source scaled to the rung's size.
    pub psnr: f64,
    /// Y PSNR of the probe upscaled to the top rung's size, against the source at that size.
    pub psnr_at_top: f64,
}

/// What the probe measured of one rung, before the choice.
#[derive(Debug, Clone)]
pub struct Measured {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The fixed ladder's rate control for the rung.
    pub fixed: RateControl,
    /// dB of Y PSNR; `None` when the ladder file gives none.
    pub quality_target: Option<f64>,
    pub points: Vec<ProbePoint>,
}

/// What was decided for a rung.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Decision {
    /// The chosen bitrate reaches the target.
    Reached,
    /// The target needs more than the rung's maxrate: the rung gets its maxrate.
    Capped,
    /// The target needs more than the fixed rate, but past some rate the larger rung above looks
    /// better at the top rung's size for the same bits: the rung stops there (not below the
    /// fixed rate).
    Held { reason: String },
    /// The target needs more than the fixed rate, and even at the fixed rate the larger rung
    /// above looks better at the top rung's size: the rung is encoded at that rung's size, at
    /// the fixed rate.
    Resized { to: String, reason: String },
    /// The probe could not be trusted: the rung keeps the fixed ladder's rate.
    Fixed { reason: String },
    /// Left out of the ladder.
    Dropped { reason: String },
}

/// One rung of the chosen ladder, with the curves it was chosen from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RungChoice {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// The fixed ladder's bitrate for the rung, for comparison.
    pub fixed_bitrate: u64,
    pub quality_target: Option<f64>,
    /// The average bits per second the fit predicts for the rung at its target (what it would
    /// have been, when dropped): the fixed bitrate when the rung keeps the fixed ladder's rate.
    pub chosen_bitrate: u64,
    /// The CRF the rung is encoded at, under the fixed rung's maxrate and bufsize; `None` when it
    /// is encoded at its average rate (it keeps the fixed ladder's rate, or is held).
    pub crf: Option<f64>,
    /// The PSNR the fit predicts at the chosen bitrate, at the rung's size.
    pub predicted_psnr: Option<f64>,
    /// The same at the top rung's size, which makes rungs of different sizes comparable.
    pub predicted_psnr_at_top: Option<f64>,
    pub fit: Option<LogFit>,
    pub points: Vec<ProbePoint>,
    pub decision: Decision,
}

impl RungChoice {
    pub fn kept(&self) -> bool {
        !matches!(self.decision, Decision::Dropped { .. })
    }

    /// The rung's rate control: the chosen bitrate, to the kb/s (it names the rung's folder when
    /// two rungs share a size), within the fixed rung's maxrate and bufsize. The bounds are not
    /// scaled down with the bitrate: an easy title's keyframes need the room.
    pub fn rate(&self, fixed: RateControl) -> RateControl {
        let kbps = (self.chosen_bitrate + 500) / 1000;
        RateControl {
            bitrate: MIN_VIDEO_BITRATE.max(Bitrate(kbps * 1000)),
            ..fixed
        }
    }
}

/// The choice for every measured rung, largest first. `correction` turns the probe preset's
/// bitrate into the real preset's at the same quality.
pub fn choose(measured: Vec<Measured>, correction: f64) -> Vec<RungChoice> {
    let mut choices: Vec<RungChoice> = measured.into_iter().map(|m| choose_rung(m, correction)).collect();
    hold_to_the_hull(&mut choices, correction);
    drop_costlier_than_above(&mut choices);
    drop_small_steps(&mut choices);
    choices
}

/// The fewest bits that reach the rung's target by its fit, within its maxrate.
fn choose_rung(measured: Measured, correction: f64) -> RungChoice {
    let own: Vec<(f64, f64)> = measured.points.iter().map(|p| (p.bitrate, p.psnr)).collect();
    let fitted = match measured.quality_target {
        Some(target) => LogFit::of(&own).map(|fit| (fit, target)),
        None => Err("the ladder gives no quality_target for it".into()),
    };
    let mut choice = RungChoice {
        name: measured.name,
        width: measured.width,
        height: measured.height,
        fixed_bitrate: measured.fixed.bitrate.0,
        quality_target: measured.quality_target,
        chosen_bitrate: measured.fixed.bitrate.0,
        crf: None,
        predicted_psnr: None,
        predicted_psnr_at_top: None,
        fit: None,
        points: measured.points,
        decision: Decision::Reached,
    };
    let (fit, target) = match fitted {
        Ok(fitted) => fitted,
        Err(reason) => {
            choice.decision = Decision::Fixed { reason };
            return choice;
        }
    };
    // Between and beyond the probe points the curve is taken piece by piece, linear in ln(rate):
    // through every point, where the least-squares fit (the check that the points are sane)
    // strays on titles whose curve bends, such as noise.
    let by_quality: Vec<(f64, f64)> = own.iter().map(|&(rate, psnr)| (psnr, rate.ln())).collect();
    let needed = fit::along(&by_quality, target).map_or_else(|| fit.bitrate_for(target), f64::exp) * correction;
    let ceiling = measured.fixed.maxrate.0 as f64;
    choice.fit = Some(fit);
    // Not raised to the encoders' least bitrate here: the rungs are compared by what they need,
    // and a capped-CRF encode is not held to its average (`rate` raises it for the encoder).
    settle(&mut choice, needed.min(ceiling).round(), correction);
    if needed > ceiling {
        choice.decision = Decision::Capped;
    }
    choice
}

/// Gives a fitted rung `chosen` bits per second (of the real preset) and what follows from it: the
/// PSNR its curve predicts there, at its size and at the top rung's, and the CRF that reaches it.
fn settle(choice: &mut RungChoice, chosen: f64, correction: f64) {
    let probe_rate = chosen / correction;
    let own: Vec<(f64, f64)> = choice.points.iter().map(|p| (p.bitrate.ln(), p.psnr)).collect();
    let predicted = fit::along(&own, probe_rate.ln())
        .or_else(|| choice.fit.as_ref().map(|fit| fit.quality_at(probe_rate)))
        .unwrap_or(f64::NAN);
    let crf_by_quality: Vec<(f64, f64)> = choice.points.iter().map(|p| (p.psnr, f64::from(p.crf))).collect();
    choice.crf = fit::along(&crf_by_quality, predicted).map(|crf| crf.clamp(0.0, MAX_CRF));
    choice.chosen_bitrate = chosen as u64;
    choice.predicted_psnr = Some(predicted);
    choice.predicted_psnr_at_top = quality_at_top(&choice.points, probe_rate);
}

/// PSNR at the top rung's size that a rung's probe points predict at `probe_rate`.
fn quality_at_top(points: &[ProbePoint], probe_rate: f64) -> Option<f64> {
    let at_top: Vec<(f64, f64)> = points.iter().map(|p| (p.bitrate.ln(), p.psnr_at_top)).collect();
    fit::along(&at_top, probe_rate.ln())
}

/// A rung given more than its fixed rate (a hard title) is worth those bits only while it looks
/// better than the larger rung above it would at the same rate, at the top rung's size: beyond
/// that a player with the bandwidth should get the larger picture, and the ladder leaves its
/// convex hull (measured: a sport-like title's 540p at 3.0 Mb/s upscaled gave 32.0 dB where
/// 720p gave 36.1 dB at 2.9 Mb/s). Such a rung is held at the highest rate, down to its fixed
/// one, where it is still the better of the two. When the larger picture is better even at the
/// fixed rate, the rung takes the larger size at that rate, as a convex-hull ladder would: the
/// larger rung having been raised, the ladder would otherwise lack a good picture near its
/// fixed rate (measured: a sport-like title's 540p at 1.9 Mb/s upscaled gave 30.9 dB, 720p at
/// 1.9 Mb/s 33.9 dB).
fn hold_to_the_hull(choices: &mut [RungChoice], correction: f64) {
    for i in 1..choices.len() {
        let (above, rest) = choices.split_at_mut(i);
        let (larger, rung) = (&above[i - 1], &mut rest[0]);
        if rung.fit.is_none() || rung.chosen_bitrate <= rung.fixed_bitrate {
            continue;
        }
        let better_than_larger = |rate: f64| {
            let probe_rate = rate / correction;
            match (
                quality_at_top(&rung.points, probe_rate),
                quality_at_top(&larger.points, probe_rate),
            ) {
                (Some(own), Some(other)) => own >= other,
                _ => true,
            }
        };
        let (low, high) = (rung.fixed_bitrate as f64, rung.chosen_bitrate as f64);
        if better_than_larger(high) {
            continue;
        }
        // The larger rung's curve is trusted only where its probe measured it: below its lowest
        // point it is extrapolated, and a noisy title's curve falls away there (measured: grain's
        // 720p, 31.6 dB at 637 kb/s in the probe, gave 30.1 dB at 376 kb/s, under 360p's 31.2).
        let larger_from = larger.points.iter().map(|p| p.bitrate).fold(f64::INFINITY, f64::min) * correction;
        match highest_where(low, high, better_than_larger) {
            None if low >= larger_from => {
                let reason = format!(
                    "at its fixed {} kb/s a {}x{} picture looks better than its {}x{}",
                    rung.fixed_bitrate / 1000,
                    larger.width,
                    larger.height,
                    rung.width,
                    rung.height
                );
                let to = match &larger.decision {
                    Decision::Resized { to, .. } => to.clone(),
                    _ => larger.name.clone(),
                };
                (rung.width, rung.height) = (larger.width, larger.height);
                rung.points = larger.points.clone();
                rung.fit = larger.fit;
                settle(rung, low, correction);
                rung.decision = Decision::Resized { to, reason };
            }
            held => {
                let held = held.unwrap_or(low).round();
                let reason = format!(
                    "above {} kb/s the {} rung looks better for the same bits",
                    held as u64 / 1000,
                    larger.name
                );
                settle(rung, held, correction);
                rung.decision = Decision::Held { reason };
            }
        }
        // At that average rate, like the fixed ladder's rung: a capped-CRF encode of a hard title
        // overshoots the probe's prediction (measured: 540p asked 2000 kb/s, made 2316), which
        // puts the rung back past the crossing.
        rung.crf = None;
    }
}

/// The highest rate in `low..=high` (searched on a log scale) where `holds`, if any; `holds(high)`
/// is false.
fn highest_where(low: f64, high: f64, holds: impl Fn(f64) -> bool) -> Option<f64> {
    if !holds(low) {
        return None;
    }
    let (mut good, mut bad) = (low.ln(), high.ln());
    for _ in 0..40 {
        let middle = (good + bad) / 2.0;
        if holds(middle.exp()) {
            good = middle;
        } else {
            bad = middle;
        }
    }
    Some(good.exp())
}

/// A smaller rung that needs at least the bits of the kept rung above it is of no use: a player
/// with that bandwidth gets the larger picture for the same bits.
fn drop_costlier_than_above(choices: &mut [RungChoice]) {
    let mut above: Option<(String, u64)> = None;
    for choice in choices.iter_mut() {
        match &above {
            Some((name, rate)) if choice.chosen_bitrate >= *rate => {
                choice.decision = Decision::Dropped {
                    reason: format!(
                        "it needs {} kb/s, not less than the {name} rung's {} kb/s",
                        choice.chosen_bitrate / 1000,
                        rate / 1000
                    ),
                };
            }
            _ => above = Some((choice.name.clone(), choice.chosen_bitrate)),
        }
    }
}

/// Walking up from the smallest kept rung, a rung that adds less than `QUALITY_STEP_DB` at the
/// top rung's size over the last kept rung is dropped; the top rung itself is always kept (it
/// is the best the title gets), and the kept rung below it is dropped instead. A rung whose
/// quality at the top size is not known (its probe gave no sane fit) is kept.
fn drop_small_steps(choices: &mut [RungChoice]) {
    let kept: Vec<usize> = (0..choices.len()).rev().filter(|&i| choices[i].kept()).collect();
    let mut below: Option<usize> = None;
    for i in kept {
        let (Some(lower), Some(quality)) = (below, choices[i].predicted_psnr_at_top) else {
            below = Some(i);
            continue;
        };
        let Some(lower_quality) = choices[lower].predicted_psnr_at_top else {
            below = Some(i);
            continue;
        };
        let gain = quality - lower_quality;
        if gain >= QUALITY_STEP_DB {
            below = Some(i);
            continue;
        }
        let (dropped, other) = if i == 0 { (lower, i) } else { (i, lower) };
        let reason = format!(
            "it differs by {gain:.2} dB from the {} rung at the top rung's size, less than the {QUALITY_STEP_DB} dB step",
            choices[other].name
        );
        choices[dropped].decision = Decision::Dropped { reason };
        if i == 0 {
            below = Some(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rung whose probe points lie on `psnr = a + b ln(rate)`, the top-size PSNR `top_loss`
    /// below it.
    fn measured(name: &str, height: u32, fixed: u64, target: f64, (a, b): (f64, f64), top_loss: f64) -> Measured {
        let points = [100e3, 300e3, 900e3]
            .iter()
            .enumerate()
            .map(|(i, &rate)| ProbePoint {
                crf: 20 + 6 * i as u32,
                bitrate: rate,
                psnr: a + b * f64::ln(rate),
                psnr_at_top: a + b * f64::ln(rate) - top_loss,
            })
            .collect();
        Measured {
            name: name.into(),
            width: height * 16 / 9,
            height,
            fixed: RateControl {
                bitrate: Bitrate(fixed),
                maxrate: Bitrate(fixed * 3 / 2),
                bufsize: Bitrate(fixed * 2),
            },
            quality_target: Some(target),
            points,
        }
    }

    #[test]
    fn each_rung_gets_the_bits_its_target_needs_within_maxrate() {
        // 40 = 10 + 2.5 ln r ⇒ r = e^12 ≈ 162.8k; with a correction of 0.8, 130.2k.
        let easy = measured("360p", 360, 1_000_000, 40.0, (10.0, 2.5), 0.0);
        let [choice] = choose(vec![easy], 0.8).try_into().unwrap();
        assert_eq!(choice.decision, Decision::Reached);
        assert!(
            (choice.chosen_bitrate as f64 - 0.8 * 12f64.exp()).abs() <= 1.0,
            "{choice:?}"
        );
        assert!((choice.predicted_psnr.unwrap() - 40.0).abs() < 1e-3, "{choice:?}");
        // The same curve with a 50 dB target needs e^16 ≈ 8.9M: capped at the 1.5M maxrate.
        let hard = measured("360p", 360, 1_000_000, 50.0, (10.0, 2.5), 0.0);
        let [choice] = choose(vec![hard], 1.0).try_into().unwrap();
        assert_eq!(choice.decision, Decision::Capped);
        assert_eq!(choice.chosen_bitrate, 1_500_000);
        let rate = choice.rate(RateControl {
            bitrate: Bitrate(1_000_000),
            maxrate: Bitrate(1_500_000),
            bufsize: Bitrate(2_000_000),
        });
        assert_eq!(rate.bitrate, Bitrate(1_500_000));
        assert_eq!((rate.maxrate, rate.bufsize), (Bitrate(1_500_000), Bitrate(2_000_000)));
    }

    #[test]
    fn a_rung_given_more_than_its_fixed_rate_stops_where_the_larger_rung_looks_better() {
        // At the top size 720p is 3 ln r and 540p 9 + 2.3 ln r: 540p is the better below
        // e^(9/0.7) ≈ 383.3k, 720p above. 540p's 45 dB target needs far more than its 450k
        // maxrate, so it would be capped at 450k, past the crossing; it is held there instead.
        let top = measured("720p", 720, 3_000_000, 40.0, (0.0, 3.0), 0.0);
        let hard = measured("540p", 540, 300_000, 45.0, (10.0, 2.3), 1.0);
        let choices = choose(vec![top, hard], 1.0);
        let held = &choices[1];
        let Decision::Held { reason } = &held.decision else {
            panic!("540p not held: {choices:?}");
        };
        assert!(reason.contains("720p"), "{reason}");
        let crossing = (9.0f64 / 0.7).exp();
        assert!((held.chosen_bitrate as f64 - crossing).abs() <= 1.0, "{held:?}");
        let predicted = 10.0 + 2.3 * crossing.ln();
        assert!((held.predicted_psnr.unwrap() - predicted).abs() < 1e-3, "{held:?}");
        assert_eq!(held.crf, None, "a held rung is encoded at its average rate: {held:?}");
    }

    #[test]
    fn a_rung_the_larger_one_beats_even_at_its_fixed_rate_takes_the_larger_size() {
        // At the top size 540p is 7 + 2.3 ln r: below 720p's 3 ln r from e^10 ≈ 22k on, so at
        // its fixed 300k as well. It is encoded as 720p at 300k, on 720p's curve.
        let top = measured("720p", 720, 3_000_000, 40.0, (0.0, 3.0), 0.0);
        let worse = measured("540p", 540, 300_000, 45.0, (10.0, 2.3), 3.0);
        let choices = choose(vec![top, worse], 1.0);
        let resized = &choices[1];
        let Decision::Resized { to, reason } = &resized.decision else {
            panic!("540p not resized: {choices:?}");
        };
        assert_eq!(to, "720p");
        assert!(reason.contains("1280x720") && reason.contains("960x540"), "{reason}");
        assert_eq!((resized.width, resized.height), (1280, 720));
        assert_eq!(resized.chosen_bitrate, 300_000);
        assert_eq!(resized.crf, None, "{resized:?}");
        let on_720p = 3.0 * f64::ln(300e3);
        assert!((resized.predicted_psnr.unwrap() - on_720p).abs() < 1e-3, "{resized:?}");
        assert!(resized.kept());
        // At a fixed 50k, below the 100k of 720p's lowest probe point, 720p's curve is a guess:
        // the rung keeps its size and its fixed rate.
        let top = measured("720p", 720, 3_000_000, 40.0, (0.0, 3.0), 0.0);
        let below_the_probe = measured("540p", 540, 50_000, 45.0, (10.0, 2.3), 3.0);
        let choices = choose(vec![top, below_the_probe], 1.0);
        assert!(matches!(choices[1].decision, Decision::Held { .. }), "{choices:?}");
        assert_eq!((choices[1].height, choices[1].chosen_bitrate), (540, 50_000));
    }

    #[test]
    fn a_rung_without_a_sane_fit_or_target_keeps_the_fixed_rate() {
        let mut flat = measured("360p", 360, 365_000, 40.0, (40.0, 0.0), 0.0);
        flat.points[1].psnr = 41.0;
        flat.points[2].psnr = 39.0;
        let mut untargeted = measured("234p", 234, 145_000, 40.0, (10.0, 2.5), 0.0);
        untargeted.quality_target = None;
        let choices = choose(vec![flat, untargeted], 1.0);
        assert_eq!(choices[0].chosen_bitrate, 365_000);
        assert!(matches!(&choices[0].decision, Decision::Fixed { reason } if reason.contains("rise")));
        assert!(matches!(&choices[1].decision, Decision::Fixed { reason } if reason.contains("quality_target")));
    }

    #[test]
    fn a_smaller_rung_needing_as_many_bits_as_the_one_above_is_dropped() {
        // 720p reaches 40 dB at e^12; 540p's curve is 2 dB lower and its target 2 dB higher.
        let top = measured("720p", 720, 3_000_000, 40.0, (10.0, 2.5), 0.0);
        let costly = measured("540p", 540, 2_000_000, 42.0, (8.0, 2.5), 3.0);
        let small = measured("360p", 360, 1_000_000, 36.0, (10.0, 2.5), 6.0);
        let choices = choose(vec![top, costly, small], 1.0);
        assert!(choices[0].kept() && choices[2].kept(), "{choices:?}");
        let Decision::Dropped { reason } = &choices[1].decision else {
            panic!("540p kept: {choices:?}");
        };
        assert!(reason.contains("720p"), "{reason}");
    }

    #[test]
    fn a_rung_adding_less_than_the_step_over_the_one_below_is_dropped() {
        // At equal targets, each smaller rung needs fewer bits; at the top size 540p adds 0.3 dB
        // over 360p, 720p 3 dB over 540p.
        let top = measured("720p", 720, 3_000_000, 40.0, (10.0, 2.5), 0.0);
        let middle = measured("540p", 540, 2_000_000, 40.0, (11.0, 2.5), 3.0);
        let bottom = measured("360p", 360, 1_000_000, 40.0, (12.0, 2.5), 3.3);
        let choices = choose(vec![top, middle, bottom], 1.0);
        let kept: Vec<&str> = choices.iter().filter(|c| c.kept()).map(|c| c.name.as_str()).collect();
        assert_eq!(kept, ["720p", "360p"]);
        let Decision::Dropped { reason } = &choices[1].decision else {
            panic!("540p kept: {choices:?}");
        };
        assert!(reason.contains("0.30 dB") && reason.contains("360p"), "{reason}");
    }

    #[test]
    fn the_top_rung_is_kept_and_the_one_below_dropped_when_they_differ_too_little() {
        let top = measured("720p", 720, 3_000_000, 40.0, (10.0, 2.5), 0.0);
        let near = measured("704p", 704, 2_900_000, 40.0, (10.1, 2.5), 0.2);
        let choices = choose(vec![top, near], 1.0);
        assert!(choices[0].kept());
        let Decision::Dropped { reason } = &choices[1].decision else {
            panic!("704p kept: {choices:?}");
        };
        assert!(reason.contains("0.20 dB") && reason.contains("720p"), "{reason}");
    }
}
