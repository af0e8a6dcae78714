//! Network operations whose failures may pass (a refused connection, a 5xx, 408 or 429) are tried
//! again after a wait that doubles each time, with jitter so that many clients that failed together
//! do not come back together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often and how patiently an operation is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; each later wait is about twice the one before.
    pub first_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_wait: Duration::from_millis(250),
        }
    }
}

/// Why one attempt failed, and whether another may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub transient: bool,
}

impl Failure {
    /// A failure another attempt may not see: the connection broke, timed out or was refused.
    pub fn transient(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            transient: true,
        }
    }

    /// A failure every attempt would see.
    pub fn permanent(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            transient: false,
        }
    }

    /// An HTTP status that is not a success: a server error, 408 Request Timeout and 429 Too Many
    /// Requests may pass; any other client error will not.
    pub fn status(status: ureq::http::StatusCode) -> Failure {
        let code = status.as_u16();
        Failure {
            reason: format!("HTTP {status}"),
            transient: status.is_server_error() || code == 408 || code == 429,
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, runs out of attempts, or `stop` is set.
/// `on_retry` hears of every failure that is tried again and of the wait before it. The failure
/// returned says how many attempts were made when there was more than one.
pub fn retry<T>(
    policy: RetryPolicy,
    stop: &AtomicBool,
    mut attempt: impl FnMut() -> Result<T, Failure>,
    mut on_retry: impl FnMut(&Failure, Duration),
) -> Result<T, Failure> {
    let mut wait = policy.first_wait;
    for made in 1.. {
        let failure = match attempt() {
            Ok(done) => return Ok(done),
            Err(failure) => failure,
        };
        if !failure.transient || made >= policy.attempts || stop.load(Ordering::SeqCst) {
            return Err(match made {
                1 => failure,
                _ => Failure {
                    reason: format!("{} (after {made} attempts)", failure.reason),
                    ..failure
                },
            });
        }
        // Equal jitter: between half the wait and all of it.
        let jittered = wait.mul_f64(rand::random_range(0.5..=1.0));
        on_retry(&failure, jittered);
        std::thread::sleep(jittered);
        wait *= 2;
    }
    unreachable!("the attempts loop returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: RetryPolicy = RetryPolicy {
        attempts: 4,
        first_wait: Duration::from_millis(1),
    };

    #[test]
    fn transient_failures_are_retried_until_success() {
        let mut calls = 0;
        let mut waits = Vec::new();
        let result = retry(
            QUICK,
            &AtomicBool::new(false),
            || {
                calls += 1;
                if calls < 3 {
                    Err(Failure::transient("refused"))
                } else {
                    Ok(calls)
                }
            },
            |_, wait| waits.push(wait),
        );
        assert_eq!(result, Ok(3));
        assert_eq!(waits.len(), 2);
        assert!(waits[0] <= Duration::from_millis(1) && waits[1] <= Duration::from_millis(2));
        assert!(
            waits[1] >= Duration::from_millis(1),
            "the second wait doubles: {waits:?}"
        );
    }

    #[test]
    fn a_permanent_failure_is_not_retried() {
        let mut calls = 0;
        let result: Result<(), _> = retry(
            QUICK,
            &AtomicBool::new(false),
            || {
                calls += 1;
                Err(Failure::status(ureq::http::StatusCode::FORBIDDEN))
            },
            |_, _| {},
        );
        assert_eq!(calls, 1);
        assert_eq!(result.unwrap_err().reason, "HTTP 403 Forbidden");
    }

    #[test]
    fn attempts_run_out_and_are_counted() {
        let result: Result<(), _> = retry(
            QUICK,
            &AtomicBool::new(false),
            || Err(Failure::status(ureq::http::StatusCode::SERVICE_UNAVAILABLE)),
            |_, _| {},
        );
        assert_eq!(
            result.unwrap_err().reason,
            "HTTP 503 Service Unavailable (after 4 attempts)"
        );
    }

    #[test]
    fn a_stop_ends_the_retries() {
        let stop = AtomicBool::new(true);
        let mut calls = 0;
        let _ = retry::<()>(
            QUICK,
            &stop,
            || {
                calls += 1;
                Err(Failure::transient("refused"))
            },
            |_, _| {},
        );
        assert_eq!(calls, 1);
    }

    #[test]
    fn statuses_that_may_pass() {
        use ureq::http::StatusCode;
        for (status, transient) in [
            (StatusCode::INTERNAL_SERVER_ERROR, true),
            (StatusCode::BAD_GATEWAY, true),
            (StatusCode::REQUEST_TIMEOUT, true),
            (StatusCode::TOO_MANY_REQUESTS, true),
            (StatusCode::NOT_FOUND, false),
            (StatusCode::CONFLICT, false),
            (StatusCode::METHOD_NOT_ALLOWED, false),
        ] {
            assert_eq!(Failure::status(status).transient, transient, "{status}");
        }
    }
}
