//! `CibaPoller` driven by arbitrary responses and times: never panics (no
//! overflow), and stops once the request has expired.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use onesoidc_core::{BackchannelAuthResponse, CibaPollResponse, CibaPoller, Error, PollStep};

#[derive(Arbitrary, Debug)]
enum Answer {
    Pending,
    SlowDown,
    Denied,
}

#[derive(Arbitrary, Debug)]
struct Run {
    expires_in: u64,
    interval: u64,
    /// Each poll: the answer and how many seconds after the previous one it came.
    polls: Vec<(Answer, u64)>,
}

fuzz_target!(|run: Run| {
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
            Answer::Pending => Ok(CibaPollResponse::Pending),
            Answer::SlowDown => Ok(CibaPollResponse::SlowDown),
            Answer::Denied => Err(Error::OAuth {
                endpoint: "t".into(),
                status: 400,
                error: "access_denied".into(),
                description: None,
            }),
        };
        match poller.on_response(result, elapsed) {
            PollStep::Wait(wait) => {
                assert!(elapsed <= started.expires_in, "waits after expiry");
                assert!(!wait.is_zero());
            }
            PollStep::Failed(_) | PollStep::Done(_) => return,
        }
    }
});
