//! A rung's rate–quality relation: PSNR = a + b·ln(bitrate), fitted by least squares over its
//! probe points. Over the few CRF steps the probe spans, x264's PSNR is close to linear in the
//! logarithm of the rate, and the fit can be inverted in closed form.

use serde::Serialize;

/// The least share of the points' PSNR variance the fit must explain to be trusted: the probe
/// points of a noisy title bend away from a log curve (measured: R² 0.76 at 360p over CRF
/// 18–34), yet still rise steadily with the rate.
const MIN_R_SQUARED: f64 = 0.7;

/// `quality = intercept + slope · ln(bits per second)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LogFit {
    pub intercept: f64,
    pub slope: f64,
    /// The share of the points' PSNR variance the fit explains.
    pub r_squared: f64,
}

impl LogFit {
    /// The fit over `(bits per second, PSNR dB)` points, or why it cannot be trusted: too few
    /// points, a rate or PSNR that is not a finite positive number (a lossless probe has an
    /// infinite PSNR), quality that does not rise with the rate, or points far from the curve.
    pub fn of(points: &[(f64, f64)]) -> Result<LogFit, String> {
        if points.len() < 3 {
            return Err(format!("{} probe points, 3 are needed", points.len()));
        }
        if let Some((rate, psnr)) = points
            .iter()
            .find(|(rate, psnr)| !(rate.is_finite() && *rate > 0.0 && psnr.is_finite() && *psnr > 0.0))
        {
            return Err(format!("probe point {rate} b/s at {psnr} dB cannot be fitted"));
        }
        let mut by_rate = points.to_vec();
        by_rate.sort_by(|a, b| a.0.total_cmp(&b.0));
        if by_rate.windows(2).any(|w| w[1].1 <= w[0].1) {
            return Err("the quality does not rise with the bitrate at every probe point".into());
        }
        let n = points.len() as f64;
        let xs: Vec<f64> = points.iter().map(|(rate, _)| rate.ln()).collect();
        let mean_x = xs.iter().sum::<f64>() / n;
        let mean_y = points.iter().map(|(_, psnr)| psnr).sum::<f64>() / n;
        let sxx: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
        let sxy: f64 = xs
            .iter()
            .zip(points)
            .map(|(x, (_, y))| (x - mean_x) * (y - mean_y))
            .sum();
        let syy: f64 = points.iter().map(|(_, y)| (y - mean_y).powi(2)).sum();
        if sxx <= 0.0 || syy <= 0.0 {
            return Err("every probe point has the same rate or the same quality".into());
        }
        // Positive: the quality rises with every step of the rate.
        let slope = sxy / sxx;
        let r_squared = sxy * sxy / (sxx * syy);
        if r_squared < MIN_R_SQUARED {
            return Err(format!(
                "the points lie off a log curve (R² {r_squared:.2}, {MIN_R_SQUARED} needed)"
            ));
        }
        Ok(LogFit {
            intercept: mean_y - slope * mean_x,
            slope,
            r_squared,
        })
    }

    /// The PSNR the fit predicts at `bitrate` bits per second.
    pub fn quality_at(&self, bitrate: f64) -> f64 {
        self.intercept + self.slope * bitrate.ln()
    }

    /// The bits per second at which the fit reaches `quality` dB.
    pub fn bitrate_for(&self, quality: f64) -> f64 {
        ((quality - self.intercept) / self.slope).exp()
    }
}

/// `y` at `x` along the polyline through `points` (`(x, y)`), extended beyond its ends by its
/// first and last pieces; `None` without two points of different `x`.
pub fn along(points: &[(f64, f64)], x: f64) -> Option<f64> {
    let mut sorted: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let piece = sorted.windows(2).find(|w| x <= w[1].0).or(sorted.windows(2).last())?;
    let ((x0, y0), (x1, y1)) = (piece[0], piece[1]);
    Some(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn along_interpolates_between_points_and_extends_the_end_pieces() {
        let points = [(30.0, 34.0), (40.0, 26.0), (50.0, 18.0), (45.0, 22.0)];
        assert_eq!(along(&points, 35.0), Some(30.0));
        assert_eq!(along(&points, 47.5), Some(20.0));
        assert_eq!(along(&points, 25.0), Some(38.0));
        assert_eq!(along(&points, 55.0), Some(14.0));
        assert_eq!(along(&[(1.0, 2.0)], 1.0), None);
        assert_eq!(along(&[(1.0, 2.0), (1.0, 3.0)], 1.0), None);
    }

    #[test]
    fn points_on_a_log_curve_give_its_coefficients_back() {
        let curve = |rate: f64| 12.0 + 2.5 * rate.ln();
        let points: Vec<(f64, f64)> = [100e3, 250e3, 900e3, 2e6].iter().map(|&r| (r, curve(r))).collect();
        let fit = LogFit::of(&points).unwrap();
        assert!((fit.intercept - 12.0).abs() < 1e-9, "{fit:?}");
        assert!((fit.slope - 2.5).abs() < 1e-9, "{fit:?}");
        assert!((fit.r_squared - 1.0).abs() < 1e-9, "{fit:?}");
        // 42 dB = 12 + 2.5 ln r  ⇒  r = e^12.
        assert!((fit.bitrate_for(42.0) / 12f64.exp() - 1.0).abs() < 1e-9);
        assert!((fit.quality_at(fit.bitrate_for(40.0)) - 40.0).abs() < 1e-9);
    }

    #[test]
    fn noisy_points_fit_by_least_squares() {
        // ln rates 0, 1, 2 with PSNR 30, 33, 34: slope (−1·−2.33 + 1·1.67)/2 = 2, mean 32.33 at ln 1.
        let e = std::f64::consts::E;
        let fit = LogFit::of(&[(1.0, 30.0), (e, 33.0), (e * e, 34.0)]).unwrap();
        assert!((fit.slope - 2.0).abs() < 1e-9, "{fit:?}");
        assert!((fit.intercept - (97.0 / 3.0 - 2.0)).abs() < 1e-9, "{fit:?}");
        // Residuals −1/3, 2/3, −1/3 of a total variance 26/3: R² = 1 − (2/3)/(26/3) = 12/13.
        assert!((fit.r_squared - 12.0 / 13.0).abs() < 1e-9, "{fit:?}");
    }

    #[test]
    fn insane_points_are_refused_with_the_reason() {
        let few = LogFit::of(&[(1e5, 30.0), (2e5, 32.0)]).unwrap_err();
        assert!(few.contains("3 are needed"), "{few}");
        let falling = LogFit::of(&[(1e5, 36.0), (2e5, 34.0), (4e5, 32.0)]).unwrap_err();
        assert!(falling.contains("does not rise"), "{falling}");
        let lossless = LogFit::of(&[(1e5, 36.0), (2e5, f64::INFINITY), (4e5, 40.0)]).unwrap_err();
        assert!(lossless.contains("cannot be fitted"), "{lossless}");
        let scattered = LogFit::of(&[(1e5, 30.0), (2e5, 30.1), (4e5, 30.2), (8e5, 45.0)]).unwrap_err();
        assert!(scattered.contains("R²"), "{scattered}");
        let bent = LogFit::of(&[(1e5, 30.0), (2e5, 32.0), (4e5, 31.0)]).unwrap_err();
        assert!(bent.contains("every probe point"), "{bent}");
        let same_rate = LogFit::of(&[(1e5, 30.0), (1e5, 31.0), (1e5, 32.0)]).unwrap_err();
        assert!(same_rate.contains("same"), "{same_rate}");
    }
}
