//! `CibaPoller` driven by arbitrary responses and times: never panics (no
//! overflow), and stops once the request has expired.

use std::time::Duration;

use arbitrary::Arbitrary;
use onesoidc_core::{BackchannelAuthResponse, CibaPollResponse, CibaPoller, Error, PollStep};

#[derive(Arbitrary, Debug)]
enum Answer {
    /// `authorization_pending`, with a `Retry-After` in seconds or none.
    Pending(Option<u16>),
    /// `slow_down`, with a `Retry-After` in seconds or none.
    SlowDown(Option<u16>),
    Denied,
}

#[derive(Arbitrary, Debug)]
pub struct Run {
    expires_in: u64,
    interval: u64,
    /// Each poll: the answer and how many seconds after the previous one it came.
    polls: Vec<(Answer, u64)>,
}

/// One input: never panics; successes respect their invariants.
pub fn run(run: Run) {
    let started = BackchannelAuthResponse {
        auth_req_id: "req".into(),
        expires_in: Duration::from_secs(run.expires_in),
        interval: Duration::from_secs(run.interval.max(1)),
    };
    let mut poller = CibaPoller::new(&started);
    let _ = poller.first_wait();
    let mut elapsed = Duration::ZERO;
    for (answer, after) in run.polls {
        elapsed = elapsed.saturating_add(Duration::from_secs(after));
        let _ = poller.remaining(elapsed);
        let result = match answer {
            Answer::Pending(after) => Ok(CibaPollResponse::Pending {
                retry_after: after.map(|s| Duration::from_secs(s.into())),
            }),
            Answer::SlowDown(after) => Ok(CibaPollResponse::SlowDown {
                retry_after: after.map(|s| Duration::from_secs(s.into())),
            }),
            Answer::Denied => Err(Error::oauth("t", 400, "access_denied", None)),
        };
        match poller.on_response(result, elapsed) {
            PollStep::Wait(wait) => {
                assert!(elapsed <= started.expires_in, "waits after expiry");
                assert!(!wait.is_zero());
            }
            PollStep::Failed(_) | PollStep::Done(_) => return,
        }
    }
}
