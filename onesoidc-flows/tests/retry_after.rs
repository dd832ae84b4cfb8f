//! A provider under load is obeyed: `Retry-After` (seconds or an HTTP date)
//! on a 429 or 503, or with `authorization_pending`/`slow_down`, sets the
//! earliest next attempt, never sooner than the flow's own schedule and
//! never past its deadline. Paused clock, provider in process: exact times.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use onesoidc_core::CibaRequest;
use onesoidc_devidp::{AutoApprove, DevIdp};
use onesoidc_flows::http_client::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError,
};
use onesoidc_flows::{DeviceIdentity, OnesIdClient};
use tokio::time::Instant;

/// The in-process provider, except that requests `matching` are answered
/// with the queued busy answers first (status, `Retry-After`), recording
/// when each matching request came.
struct Busy {
    provider: onesoidc_devidp::InProcessClient,
    matching: fn(&HttpRequest) -> bool,
    answers: Mutex<Vec<(u16, &'static str)>>,
    seen: Mutex<Vec<Instant>>,
}

impl HttpClient for Busy {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        if (self.matching)(&request) {
            self.seen.lock().unwrap().push(Instant::now());
            let busy = {
                let mut answers = self.answers.lock().unwrap();
                (!answers.is_empty()).then(|| answers.remove(0))
            };
            if let Some((status, retry_after)) = busy {
                let response = http::Response::builder()
                    .status(status)
                    .header("retry-after", retry_after)
                    .header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
                    .body(Vec::new())
                    .unwrap();
                return Box::pin(async move { Ok(response) });
            }
        }
        self.provider.execute(request)
    }
}

fn token_requests(request: &HttpRequest) -> bool {
    request.uri().path() == "/oidc/token"
}

fn qr_status_checks(request: &HttpRequest) -> bool {
    request.method() == http::Method::GET && request.uri().path().starts_with("/oidc/qr/sessions/")
}

/// A provider approving CIBA after `approve_after`, and a client whose
/// requests `matching` meet `answers` first.
async fn busy(
    matching: fn(&HttpRequest) -> bool,
    answers: Vec<(u16, &'static str)>,
    approve_after: Duration,
) -> (
    DevIdp,
    std::sync::Arc<Busy>,
    OnesIdClient,
    tempfile::TempDir,
) {
    let idp = DevIdp::start(onesoidc_devidp::DevIdpConfig {
        auto_approve: Some(AutoApprove::approve_after(approve_after)),
        ..support::config()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    let http = std::sync::Arc::new(Busy {
        provider: idp.in_process_client(),
        matching,
        answers: Mutex::new(answers),
        seen: Mutex::new(Vec::new()),
    });
    let client = OnesIdClient::new(DeviceIdentity::load(&paths).unwrap(), http.clone()).unwrap();
    (idp, http, client, dir)
}

fn gaps(seen: &[Instant]) -> Vec<Duration> {
    seen.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test(start_paused = true)]
async fn ciba_polls_wait_out_retry_after_on_503_and_429() {
    // Interval 1 s. The first poll (at 1 s) gets 503 "7", the second 429 in
    // HTTP-date form, 30 s after the response's Date; then the real answers.
    let (_idp, http, client, _dir) =
        busy(token_requests, Vec::new(), Duration::from_millis(500)).await;
    client.provider_metadata().await.unwrap();
    *http.answers.lock().unwrap() = vec![(503, "7"), (429, "Sun, 06 Nov 1994 08:50:07 GMT")];
    let login = client
        .ciba(&CibaRequest::for_username("alice"))
        .await
        .unwrap();
    assert_eq!(login.claims.unwrap().sub, "alice");
    let seen = http.seen.lock().unwrap().clone();
    assert_eq!(
        gaps(&seen),
        [Duration::from_secs(7), Duration::from_secs(30)],
        "polls at 1 s, then 7 s and 30 s later as asked (the login had been approved meanwhile)"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_past_the_deadline_ends_the_login_with_the_error() {
    // The CIBA request expires after 120 s; the provider asks for an hour.
    let (_idp, _http, client, _dir) = busy(
        token_requests,
        vec![(503, "3600")],
        Duration::from_secs(600),
    )
    .await;
    client.provider_metadata().await.unwrap();
    let began = Instant::now();
    let err = client
        .ciba(&CibaRequest::for_username("alice"))
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(503), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(1),
        "gave up at the first poll"
    );
}

#[tokio::test(start_paused = true)]
async fn qr_status_checks_wait_out_retry_after() {
    // Interval 1 s. The first check (at 1 s) gets 503 "12"; the phone scans
    // at 5 s; the next check, 12 s after the first, sees it.
    let (idp, http, client, _dir) = busy(
        qr_status_checks,
        vec![(503, "12")],
        Duration::from_secs(600),
    )
    .await;
    let session = client.qr_create().await.unwrap();
    let scanner = {
        let idp = idp.clone();
        let id = session.session_id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            idp.simulate_qr_scan(&id, "bob").unwrap();
        })
    };
    let began = Instant::now();
    client.qr_wait_for_scan(&session).await.unwrap();
    scanner.await.unwrap();
    assert_eq!(began.elapsed(), Duration::from_secs(13));
    assert_eq!(gaps(&http.seen.lock().unwrap()), [Duration::from_secs(12)]);
}
