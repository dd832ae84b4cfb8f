//! QR login, well-known applications, introspection and revocation against
//! the local provider.

mod support;

use std::time::Duration;

use onesoidc_core::{Error, ExposeSecret, QrStatus, TokenTypeHint};
use onesoidc_devidp::DevIdpConfig;
use onesoidc_flows::{CibaRequest, QrEvent, StreamExt, render};
use support::{config, world, world_with};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn qr_scan_then_ciba_logs_the_scanner_in() {
    let w = world().await;
    let idp = w.idp.clone();
    tokio::spawn(async move {
        let session = idp.next_qr_session().await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        idp.simulate_qr_scan(&session, "bob").unwrap();
        let request = idp.next_ciba_request().await;
        assert_eq!(request.qr_session_id.as_deref(), Some(session.as_str()));
        idp.approve_ciba(&request.auth_req_id).unwrap();
    });
    let mut shown = None;
    let login = w
        .client
        .qr_login(&CibaRequest::new(), |s| shown = Some(s.clone()))
        .await
        .unwrap();
    let session = shown.unwrap();
    assert!(session.cb_url.contains(session.session_id.as_str()));
    assert!(render::terminal(&session.cb_url).unwrap().lines().count() > 10);
    // The flow validated the ID token and hands its claims over.
    let claims = login.claims.expect("an ID token came");
    assert_eq!(claims.sub, "bob");
    let again = w
        .client
        .validate_id_token(login.tokens.id_token.as_ref().unwrap().expose_secret())
        .await
        .unwrap();
    assert_eq!(again, claims);
}

#[tokio::test(start_paused = true)]
async fn qr_events_then_ciba_events() {
    let w = world().await;
    let idp = w.idp.clone();
    tokio::spawn(async move {
        let session = idp.next_qr_session().await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        idp.simulate_qr_scan(&session, "alice").unwrap();
        let request = idp.next_ciba_request().await;
        idp.approve_ciba(&request.auth_req_id).unwrap();
    });
    let events: Vec<QrEvent> = w.client.qr_events(CibaRequest::new()).collect().await;
    assert!(
        matches!(events.first(), Some(QrEvent::SessionCreated(_))),
        "{events:?}"
    );
    let scanned = events
        .iter()
        .position(|e| matches!(e, QrEvent::Scanned))
        .expect("scanned");
    assert!(
        events[1..scanned]
            .iter()
            .all(|e| matches!(e, QrEvent::WaitingForScan { .. }))
    );
    assert!(
        matches!(events.last(), Some(QrEvent::Authenticated(_))),
        "{events:?}"
    );
    let failures = events
        .iter()
        .filter(|e| matches!(e, QrEvent::Failed(_)))
        .count();
    assert_eq!(failures, 0);
}

#[tokio::test(start_paused = true)]
async fn qr_session_expires_when_nobody_scans() {
    let w = world_with(DevIdpConfig {
        qr_expires_in: Duration::from_secs(5),
        ..config()
    })
    .await;
    let session = w.client.qr_create().await.unwrap();
    assert_eq!(
        w.client.qr_check(&session.session_id).await.unwrap(),
        QrStatus::Pending
    );
    let began = Instant::now();
    let err = w.client.qr_wait_for_scan(&session).await.unwrap_err();
    assert!(matches!(err, Error::Expired { .. }), "{err}");
    assert_eq!(
        began.elapsed(),
        Duration::from_secs(5),
        "checks at 1, 2, .. 5 s"
    );
    let err = w
        .client
        .qr_check(&"no-such-session".into())
        .await
        .unwrap_err();
    assert_eq!(err.http_status(), Some(404));
}

#[tokio::test(start_paused = true)]
async fn qr_events_end_with_cancelled_when_the_phone_cancels() {
    let w = world().await;
    let idp = w.idp.clone();
    tokio::spawn(async move {
        let session = idp.next_qr_session().await;
        idp.simulate_qr_cancel(&session).unwrap();
    });
    let events: Vec<QrEvent> = w.client.qr_events(CibaRequest::new()).collect().await;
    match events.last() {
        Some(QrEvent::Failed(error)) => {
            assert!(matches!(**error, Error::Cancelled { .. }), "{error}");
            assert!(
                error.is_denied(),
                "a cancel on the phone is the person saying no"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.idp.stats().backchannel_requests,
        0,
        "no CIBA after a cancel"
    );
}

#[tokio::test(start_paused = true)]
async fn qr_session_cancelled_on_the_phone_is_cancelled_not_expired() {
    let w = world().await;
    let session = w.client.qr_create().await.unwrap();
    w.idp.simulate_qr_cancel(&session.session_id).unwrap();
    let err = w.client.qr_wait_for_scan(&session).await.unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err:?}");
    assert!(
        err.to_string().contains(session.session_id.as_str()),
        "{err}"
    );
    // Only a pending session can be cancelled.
    assert!(w.idp.simulate_qr_cancel(&session.session_id).is_err());
}

#[tokio::test]
async fn applications_and_resource_tokens() {
    let w = world().await;
    let apps = w.client.applications().await.unwrap();
    assert!(apps.iter().any(|a| a.client_identifier == "vhh-server"));
    let app = w.client.application("vhh-server").await.unwrap();
    assert_eq!(app.url, "https://vhh.example.com");
    let err = w.client.application("nope").await.unwrap_err();
    assert!(matches!(err, Error::UnknownApplication { .. }), "{err}");
    assert!(
        err.to_string().contains("vhh-server"),
        "the error lists what exists: {err}"
    );

    w.idp
        .set_auto_approve(Some(onesoidc_devidp::AutoApprove::approve_after(
            Duration::from_millis(10),
        )));
    let request = CibaRequest::for_username("alice").resource(app.url.clone());
    let tokens = w.client.ciba(&request).await.unwrap().tokens;
    let info = w
        .client
        .introspect(&tokens.access_token, Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    assert!(info.active);
    assert_eq!(info.sub.as_deref(), Some("alice"));
    assert_eq!(info.aud, std::slice::from_ref(&app.url));

    w.client
        .revoke(&tokens.access_token, Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    let info = w
        .client
        .introspect(&tokens.access_token, None)
        .await
        .unwrap();
    assert!(!info.active, "revoked tokens introspect inactive");

    let refreshed = w.client.refresh(&tokens).await.unwrap();
    assert_ne!(
        refreshed.refresh_token.as_ref().unwrap().expose_secret(),
        tokens.refresh_token.as_ref().unwrap().expose_secret(),
        "rotation"
    );
    let err = w.client.refresh(&tokens).await.unwrap_err();
    assert_eq!(
        err.oauth_error(),
        Some("invalid_grant"),
        "the old refresh token is spent"
    );
}

#[tokio::test]
async fn device_token_over_real_http() {
    let idp = onesoidc_devidp::DevIdp::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for kt in onesoidc_core::KeyType::ALL {
        let sub = dir.path().join(kt.to_string().replace(':', "-"));
        let paths = idp.provision_device(&sub, kt).unwrap();
        let client = onesoidc_flows::OnesIdClient::from_paths(&paths).unwrap();
        let tokens = client
            .device_token()
            .await
            .unwrap_or_else(|e| panic!("{kt}: {e}"));
        let info = client.introspect(&tokens.access_token, None).await.unwrap();
        assert!(info.active, "{kt}");
        assert_eq!(
            info.client_id.as_deref(),
            client.identity().config.client_id.as_deref()
        );
    }
}

/// Counts the requests it passes on.
struct Counting<C> {
    inner: C,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<C: onesoidc_flows::http_client::HttpClient> onesoidc_flows::http_client::HttpClient
    for Counting<C>
{
    fn execute(
        &self,
        request: onesoidc_flows::http_client::HttpRequest,
    ) -> onesoidc_flows::http_client::BoxFuture<
        '_,
        Result<onesoidc_flows::http_client::HttpResponse, onesoidc_core::TransportError>,
    > {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.execute(request)
    }
}

/// Dropping a QR event stream (the kiosk's screen went away) stops the
/// polling: no request after the drop.
#[tokio::test(start_paused = true)]
async fn dropping_a_qr_event_stream_stops_polling() {
    let idp = onesoidc_devidp::DevIdp::start(config()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp
        .provision_device(dir.path(), onesoidc_core::KeyType::EccP256)
        .unwrap();
    let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let client = onesoidc_flows::OnesIdClient::new(
        onesoidc_flows::DeviceIdentity::load(&paths).unwrap(),
        Counting {
            inner: idp.in_process_client(),
            requests: requests.clone(),
        },
    )
    .unwrap();
    let mut events = client.qr_events(CibaRequest::new());
    assert!(matches!(
        events.next().await,
        Some(QrEvent::SessionCreated(_))
    ));
    assert!(matches!(
        events.next().await,
        Some(QrEvent::WaitingForScan { .. })
    ));
    let before = requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        before >= 3,
        "discovery, the device token, the session, a poll"
    );
    drop(events);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        requests.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "no request after the stream is dropped"
    );
}

/// An administrator's typo in one entry (a URL that is not http(s)) fails
/// only the look-up of that entry, whose error names it; the other
/// applications stay usable, and the list leaves the bad one out.
#[tokio::test]
async fn one_bad_application_entry_fails_only_its_own_look_up() {
    let app = |id: &str, url: &str| onesoidc_devidp::Application {
        client_identifier: id.into(),
        client_id: format!("{id}-client"),
        name: id.into(),
        url: url.into(),
        access_token_format: Default::default(),
        require_dpop: false,
    };
    let w = world_with(DevIdpConfig {
        applications: vec![
            app("ok-app", "https://ok.example.com"),
            app("typo-app", "htps//typo.example.com"),
            app("ftp-app", "ftp://files.example.com"),
            app("path-app", "/path-app"),
        ],
        ..config()
    })
    .await;
    let ok = w.client.application("ok-app").await.unwrap();
    assert_eq!(ok.url, "https://ok.example.com");
    let path = w.client.application("path-app").await.unwrap();
    assert!(path.url.ends_with("/path-app"), "{}", path.url);

    for bad in ["typo-app", "ftp-app"] {
        let err = w.client.application(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{err}");
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }

    let listed: Vec<String> = w
        .client
        .applications()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.client_identifier)
        .collect();
    assert_eq!(listed, ["ok-app", "path-app"]);
}
