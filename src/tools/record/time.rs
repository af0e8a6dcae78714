//! When a recording starts (`--at`) and how long things last (`--for`, `--split`).

use std::time::{Duration, SystemTime};

use jiff::{Timestamp, Zoned, civil};

use crate::error::Result;
use crate::progress::Cancel;

/// `90s`, `10m`, `1h30m`, or plain seconds; never zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Duration::from_secs_f64(seconds),
        Ok(_) => return Err(format!("`{text}`: the duration must be positive")),
        Err(_) => humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e}"))?,
    };
    if duration.is_zero() {
        return Err(format!("`{text}`: the duration must be positive"));
    }
    Ok(duration)
}

/// When to start, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum StartAt {
    /// An RFC 3339 instant: `2026-12-01T20:00:00+09:00`.
    Instant(Timestamp),
    /// A clock time in the system's time zone: `20:00`, today or, once passed, tomorrow.
    Clock(civil::Time),
    /// A delay from now: `+10m`.
    After(Duration),
}

impl std::str::FromStr for StartAt {
    type Err = String;

    fn from_str(text: &str) -> Result<StartAt, String> {
        if let Some(delay) = text.strip_prefix('+') {
            return parse_duration(delay).map(StartAt::After);
        }
        if let Ok(instant) = text.parse::<Timestamp>() {
            return Ok(StartAt::Instant(instant));
        }
        if let Ok(clock) = text.parse::<civil::Time>() {
            return Ok(StartAt::Clock(clock));
        }
        Err(format!(
            "`{text}`: expected an RFC 3339 time (2026-12-01T20:00:00+09:00), a clock time (20:00) or a delay (+10m)"
        ))
    }
}

/// A start resolved against the clock, and how to say it.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    pub at: SystemTime,
    /// `20:00 tomorrow (2026-11-22 20:00:00 UTC)`.
    pub description: String,
}

impl StartAt {
    /// The instant this names, seen from `now`; an RFC 3339 instant already past is refused.
    pub fn resolve(&self, now: &Zoned) -> Result<Start, String> {
        let zoned = match self {
            StartAt::Instant(instant) => {
                if *instant <= now.timestamp() {
                    return Err(format!("{instant}: is in the past"));
                }
                instant.to_zoned(now.time_zone().clone())
            }
            StartAt::Clock(clock) => {
                let today = now.date().to_datetime(*clock);
                let zoned = today.to_zoned(now.time_zone().clone()).map_err(|e| e.to_string())?;
                if zoned > *now {
                    zoned
                } else {
                    today
                        .date()
                        .tomorrow()
                        .and_then(|d| d.to_datetime(*clock).to_zoned(now.time_zone().clone()))
                        .map_err(|e| e.to_string())?
                }
            }
            StartAt::After(delay) => {
                let span = jiff::SignedDuration::try_from(*delay).map_err(|e| e.to_string())?;
                now.checked_add(span).map_err(|e| e.to_string())?
            }
        };
        let shown = zoned.strftime("%Y-%m-%d %H:%M:%S %Z");
        let description = match self {
            StartAt::Clock(clock) if zoned.date() == now.date() => format!("{} today ({shown})", clock_text(*clock)),
            StartAt::Clock(clock) => format!("{} tomorrow ({shown})", clock_text(*clock)),
            _ => shown.to_string(),
        };
        Ok(Start {
            at: SystemTime::from(zoned.timestamp()),
            description,
        })
    }
}

fn clock_text(clock: civil::Time) -> String {
    clock.strftime("%H:%M").to_string()
}

/// Sleeps until `at`, waking often enough to notice `cancel`.
pub fn wait_until(at: SystemTime, cancel: &Cancel) -> Result<()> {
    const TICK: Duration = Duration::from_millis(100);
    loop {
        cancel.check()?;
        match at.duration_since(SystemTime::now()) {
            Ok(left) if !left.is_zero() => std::thread::sleep(left.min(TICK)),
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Zoned {
        "2026-11-21T19:30:00+00:00[UTC]".parse().unwrap()
    }

    #[test]
    fn durations_take_units_or_seconds() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("-3").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn a_clock_time_is_today_until_it_has_passed() {
        let later: StartAt = "20:00".parse().unwrap();
        let start = later.resolve(&now()).unwrap();
        assert_eq!(start.description, "20:00 today (2026-11-21 20:00:00 UTC)");
        let passed: StartAt = "19:00".parse().unwrap();
        let start = passed.resolve(&now()).unwrap();
        assert_eq!(start.description, "19:00 tomorrow (2026-11-22 19:00:00 UTC)");
        assert_eq!(
            start.at.duration_since(SystemTime::from(now().timestamp())).unwrap(),
            Duration::from_secs(23 * 3600 + 1800)
        );
    }

    #[test]
    fn instants_keep_their_offset_and_delays_count_from_now() {
        let instant: StartAt = "2026-12-01T20:00:00+09:00".parse().unwrap();
        let start = instant.resolve(&now()).unwrap();
        assert_eq!(start.description, "2026-12-01 11:00:00 UTC");
        let delay: StartAt = "+10m".parse().unwrap();
        assert_eq!(delay.resolve(&now()).unwrap().description, "2026-11-21 19:40:00 UTC");
        let past: StartAt = "2026-11-21T19:00:00Z".parse().unwrap();
        assert!(past.resolve(&now()).unwrap_err().contains("in the past"));
        assert!(
            "tonight"
                .parse::<StartAt>()
                .unwrap_err()
                .contains("expected an RFC 3339 time")
        );
        assert!("+0s".parse::<StartAt>().is_err());
    }
}
