//! The CIBA poll loop as a state machine ([PROTOCOL §5](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#5-ciba-poll-mode-openid-ciba-core-10)).
//!
//! The caller sends the polls and sleeps; [`CibaPoller`] says how long to wait
//! and when to stop, from the responses and the time elapsed since the
//! request started. No clock is read here, so every path is tested exactly.

use std::time::Duration;

use crate::{
    AuthReqId, BackchannelAuthResponse, CibaPollResponse, Error, SLOW_DOWN_INCREMENT, TokenSet,
};

/// What to do after a poll.
#[derive(Debug)]
pub enum PollStep {
    /// Poll again after this long.
    Wait(Duration),
    /// The user approved: these are the tokens.
    Done(TokenSet),
    /// Stop: the user denied, the request expired, or the provider failed.
    Failed(Error),
}

/// Drives CIBA polling: honours `interval`, adds 5 s on `slow_down`, waits
/// at least as long as a `Retry-After` the provider sends (with
/// `authorization_pending`, `slow_down`, or a 429 or 503, which is tried
/// again), and stops once the next poll would come after `expires_in`.
///
/// ```
/// use std::time::Duration;
/// use onesoidc_core::{BackchannelAuthResponse, CibaPollResponse, CibaPoller, PollStep};
/// let started = BackchannelAuthResponse {
///     auth_req_id: "r1".into(),
///     expires_in: Duration::from_secs(60),
///     interval: Duration::from_secs(5),
/// };
/// let mut poller = CibaPoller::new(&started);
/// assert_eq!(poller.first_wait(), Duration::from_secs(5));
/// let slow_down = CibaPollResponse::SlowDown { retry_after: None };
/// match poller.on_response(Ok(slow_down), Duration::from_secs(5)) {
///     PollStep::Wait(d) => assert_eq!(d, Duration::from_secs(10)),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, Clone)]
pub struct CibaPoller {
    auth_req_id: AuthReqId,
    interval: Duration,
    expires_in: Duration,
    polls: u32,
}

impl CibaPoller {
    /// A poller for the request the provider just accepted.
    pub fn new(started: &BackchannelAuthResponse) -> Self {
        CibaPoller {
            auth_req_id: started.auth_req_id.clone(),
            interval: started.interval,
            expires_in: started.expires_in,
            polls: 0,
        }
    }

    /// How long to wait before the first poll: the interval, but never
    /// past `expires_in`.
    pub fn first_wait(&self) -> Duration {
        self.interval.min(self.expires_in)
    }

    /// The current poll interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many poll responses were handled.
    pub fn polls(&self) -> u32 {
        self.polls
    }

    /// Time left at `elapsed` since the request started.
    pub fn remaining(&self, elapsed: Duration) -> Duration {
        self.expires_in.saturating_sub(elapsed)
    }

    /// Handles one poll result received `elapsed` after the request started.
    pub fn on_response(
        &mut self,
        result: Result<CibaPollResponse, Error>,
        elapsed: Duration,
    ) -> PollStep {
        self.polls += 1;
        match result {
            Ok(CibaPollResponse::Tokens(tokens)) => PollStep::Done(tokens),
            Ok(CibaPollResponse::Pending { retry_after }) => {
                self.wait_or_expire(elapsed, retry_after)
            }
            Ok(CibaPollResponse::SlowDown { retry_after }) => {
                self.interval = self.interval.saturating_add(SLOW_DOWN_INCREMENT);
                self.wait_or_expire(elapsed, retry_after)
            }
            // A provider under load (429, 503) is asked again after its
            // `Retry-After` (or the interval), while there is time.
            Err(error) if matches!(error.http_status(), Some(429 | 503)) => {
                match self.wait_or_expire(elapsed, error.retry_after()) {
                    PollStep::Failed(_) => PollStep::Failed(error),
                    wait => wait,
                }
            }
            Err(error) => PollStep::Failed(error),
        }
    }

    /// The next wait: the interval, or longer if the provider asked with
    /// `Retry-After`; expired if it would end past `expires_in`.
    fn wait_or_expire(&self, elapsed: Duration, retry_after: Option<Duration>) -> PollStep {
        let wait = self.interval.max(retry_after.unwrap_or(Duration::ZERO));
        // Saturating: `interval` comes from the provider and may be huge.
        if elapsed.saturating_add(wait) > self.expires_in {
            PollStep::Failed(Error::Expired {
                what: format!("authentication request {}", self.auth_req_id),
                after: self.expires_in,
            })
        } else {
            PollStep::Wait(wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(expires: u64, interval: u64) -> CibaPoller {
        CibaPoller::new(&BackchannelAuthResponse {
            auth_req_id: "r".into(),
            expires_in: Duration::from_secs(expires),
            interval: Duration::from_secs(interval),
        })
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn pending_waits_one_interval_until_expiry() {
        let mut p = started(20, 5);
        assert_eq!(p.first_wait(), secs(5));
        for t in [5, 10, 15] {
            assert!(
                matches!(p.on_response(Ok(CibaPollResponse::Pending { retry_after: None }), secs(t)), PollStep::Wait(d) if d == secs(5)),
                "t={t}"
            );
        }
        // At 20 s a further wait would pass expires_in.
        match p.on_response(
            Ok(CibaPollResponse::Pending { retry_after: None }),
            secs(20),
        ) {
            PollStep::Failed(Error::Expired { after, .. }) => assert_eq!(after, secs(20)),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.polls(), 4);
    }

    #[test]
    fn slow_down_adds_five_seconds_each_time() {
        let mut p = started(100, 2);
        assert!(
            matches!(p.on_response(Ok(CibaPollResponse::SlowDown { retry_after: None }), secs(2)), PollStep::Wait(d) if d == secs(7))
        );
        assert!(
            matches!(p.on_response(Ok(CibaPollResponse::SlowDown { retry_after: None }), secs(9)), PollStep::Wait(d) if d == secs(12))
        );
        assert!(
            matches!(p.on_response(Ok(CibaPollResponse::Pending { retry_after: None }), secs(21)), PollStep::Wait(d) if d == secs(12))
        );
        assert_eq!(p.interval(), secs(12));
    }

    #[test]
    fn errors_stop_and_tokens_finish() {
        let mut p = started(100, 5);
        let denied = Error::oauth("t", 400, "access_denied", None);
        assert!(
            matches!(p.on_response(Err(denied), secs(5)), PollStep::Failed(e) if e.oauth_error() == Some("access_denied"))
        );
        let tokens = TokenSet {
            access_token: "a".into(),
            token_type: "Bearer".into(),
            expires_at: None,
            refresh_token: None,
            id_token: None,
            scope: None,
            dpop_jkt: None,
        };
        assert!(matches!(
            p.on_response(Ok(CibaPollResponse::Tokens(tokens)), secs(10)),
            PollStep::Done(_)
        ));
    }

    #[test]
    fn huge_interval_or_elapsed_expires_instead_of_overflowing() {
        // Found by fuzz/fuzz_targets/ciba_poller.rs: a provider may send any
        // u64 `interval`; adding to it overflowed and panicked.
        let mut p = started(u64::MAX, u64::MAX);
        assert!(matches!(
            p.on_response(
                Ok(CibaPollResponse::SlowDown { retry_after: None }),
                secs(1)
            ),
            PollStep::Failed(Error::Expired { .. })
        ));
        assert_eq!(p.interval(), Duration::MAX);
        let mut p = started(100, 5);
        assert!(matches!(
            p.on_response(
                Ok(CibaPollResponse::Pending { retry_after: None }),
                Duration::MAX
            ),
            PollStep::Failed(Error::Expired { .. })
        ));
    }

    #[test]
    fn remaining_time() {
        let p = started(30, 5);
        assert_eq!(p.remaining(secs(12)), secs(18));
        assert_eq!(p.remaining(secs(40)), Duration::ZERO);
    }
}
