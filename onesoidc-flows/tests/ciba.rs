//! CIBA against the local provider, on a paused tokio clock: the number of
//! polls and the time they take are exact.

mod support;

use std::time::Duration;

use onesoidc_core::{CibaRequest, Error};

use onesoidc_devidp::DevIdpConfig;
use onesoidc_flows::{CibaEvent, StreamExt};
use support::{config, world, world_with};
use tokio::time::Instant;

fn alice() -> CibaRequest {
    CibaRequest::for_username("alice").binding_message("Kiosk 7")
}

#[tokio::test(start_paused = true)]
async fn approve_after_three_and_a_half_seconds_takes_four_polls() {
    let w = world().await;
    let idp = w.idp.clone();
    let approver = tokio::spawn(async move {
        let request = idp.next_ciba_request().await;
        assert_eq!(request.login_hint, "alice");
        assert_eq!(request.binding_message.as_deref(), Some("Kiosk 7"));
        tokio::time::sleep(Duration::from_millis(3500)).await;
        idp.approve_ciba(&request.auth_req_id).unwrap();
        request.auth_req_id
    });
    let began = Instant::now();
    let login = w.client.ciba(&alice()).await.unwrap();
    let auth_req_id = approver.await.unwrap();
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(4),
        "approved at 3.5 s, seen at the poll at 4 s"
    );
    assert_eq!(w.idp.stats().ciba_polls(&auth_req_id), 4);
    assert!(
        login.tokens.refresh_token.is_some(),
        "offline_access is in the default scope"
    );
    let claims = login.claims.expect("the ID token's validated claims");
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.iss, w.client.issuer().to_string());
}

#[tokio::test(start_paused = true)]
async fn denial_stops_with_access_denied() {
    let w = world().await;
    let idp = w.idp.clone();
    tokio::spawn(async move {
        let request = idp.next_ciba_request().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        idp.deny_ciba(&request.auth_req_id).unwrap();
    });
    let err = w.client.ciba(&alice()).await.unwrap_err();
    assert_eq!(err.oauth_error(), Some("access_denied"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn nobody_answers_until_expiry() {
    let w = world_with(DevIdpConfig {
        ciba_expires_in: Duration::from_secs(10),
        ..config()
    })
    .await;
    let began = Instant::now();
    let err = w.client.ciba(&alice()).await.unwrap_err();
    // The poll at 9 s is pending; the one at 10 s finds the request expired.
    assert_eq!(err.oauth_error(), Some("expired_token"), "{err}");
    assert_eq!(began.elapsed(), Duration::from_secs(10));
    assert_eq!(w.idp.stats().ciba_polls.values().sum::<u64>(), 10);
}

#[tokio::test(start_paused = true)]
async fn slow_down_adds_five_seconds() {
    // The provider wants 7 s between polls and measures from the previous
    // poll. The client polls at 1 s (slow_down: interval 6 s), at 7 s (6 s
    // after the last poll: slow_down again, interval 11 s), and at 18 s.
    let w = world_with(DevIdpConfig {
        ciba_interval: Duration::from_secs(7),
        ..config()
    })
    .await;
    let started = w.client.ciba_start(&alice()).await.unwrap();
    let pretend = onesoidc_core::BackchannelAuthResponse {
        interval: Duration::from_secs(1),
        ..started.clone()
    };
    let idp = w.idp.clone();
    let id = started.auth_req_id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(15)).await;
        idp.approve_ciba(&id).unwrap();
    });
    let began = Instant::now();
    w.client.ciba_wait(&pretend).await.unwrap();
    assert_eq!(began.elapsed(), Duration::from_secs(18));
    assert_eq!(w.idp.stats().ciba_polls(&started.auth_req_id), 3);
    assert_eq!(w.idp.stats().rejected("slow_down"), 2);
}

#[tokio::test(start_paused = true)]
async fn unknown_user_is_refused_at_the_start() {
    let w = world().await;
    let err = w
        .client
        .ciba(&CibaRequest::for_username("mallory"))
        .await
        .unwrap_err();
    assert_eq!(err.oauth_error(), Some("unknown_user_id"), "{err}");
    assert_eq!(err.http_status(), Some(400));
}

#[tokio::test(start_paused = true)]
async fn events_in_order_and_drop_cancels() {
    let w = world().await;
    let idp = w.idp.clone();
    tokio::spawn(async move {
        let request = idp.next_ciba_request().await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        idp.approve_ciba(&request.auth_req_id).unwrap();
    });
    let events: Vec<CibaEvent> = w.client.ciba_events(alice()).collect().await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| match e {
            CibaEvent::Started { .. } => "started",
            CibaEvent::WaitingForAuthorization { .. } => "waiting",
            CibaEvent::Authenticated(_) => "authenticated",
            CibaEvent::Failed(_) => "failed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        names,
        ["started", "waiting", "waiting", "waiting", "authenticated"]
    );

    // Dropping the stream stops the polling.
    let mut stream = w.client.ciba_events(CibaRequest::for_username("bob"));
    assert!(matches!(
        stream.next().await,
        Some(CibaEvent::Started { .. })
    ));
    let before = w.idp.stats().ciba_polls.values().sum::<u64>();
    drop(stream);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        w.idp.stats().ciba_polls.values().sum::<u64>(),
        before,
        "no polls after the stream is dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn tampered_id_token_is_rejected() {
    let w = world().await;
    let err = w
        .client
        .validate_id_token("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::IdToken {
                source: onesoidc_core::IdTokenError::Unsigned,
                ..
            }
        ),
        "{err}"
    );
}
