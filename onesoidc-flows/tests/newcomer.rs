//! The six programs a newcomer wrote from the README and the docs alone
//! (device token; CIBA with events for a well-known app; QR with events;
//! a registry with a device manager and 100 callers; validation,
//! introspection and revocation; a logging HTTP decorator), against the
//! local provider. Each is written as a user would: `?` on one error
//! type, no `Arc::new`, no `Box<dyn Error>`, events and errors printed
//! with `Display`.

use std::time::Duration;

use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};
use onesoidc_flows::core::{ExposeSecret, KeyType};
use onesoidc_flows::http_client::{
    BoxFuture, HttpClient, HttpRequest, HttpResponse, ReqwestClient, TransportError,
};
use onesoidc_flows::{CibaEvent, CibaRequest, Error, OnesIdClient, QrEvent, StreamExt};

/// A provider on loopback that approves after 100 ms, and a device
/// registered with it (the newcomer has theirs in /etc/px-device-identity).
struct Local {
    /// Kept alive for the test's length: dropping it stops the provider.
    _idp: DevIdp,
    paths: onesoidc_flows::IdentityPaths,
    _dir: tempfile::TempDir,
}

async fn local() -> Local {
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: Duration::from_secs(1),
        qr_interval: Duration::from_secs(1),
        auto_approve: Some(AutoApprove::approve_after(Duration::from_millis(100))),
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let paths = idp.provision_device(dir.path(), KeyType::EccP256).unwrap();
    Local {
        _idp: idp,
        paths,
        _dir: dir,
    }
}

#[tokio::test]
async fn one_the_device_token() -> Result<(), Error> {
    let local = local().await;
    let client = OnesIdClient::from_paths(&local.paths)?;
    let tokens = client.device_token().await?;
    let line = format!("the device token expires {}", tokens.expiry());
    assert!(line.contains("expires at 20"), "{line}");
    Ok(())
}

#[tokio::test]
async fn two_ciba_with_events_for_a_well_known_app() -> Result<(), Error> {
    let local = local().await;
    let client = OnesIdClient::from_paths(&local.paths)?;
    let app = client.application("vhh-server").await?;
    let request = CibaRequest::for_username("alice")
        .binding_message("Log in to kiosk 7")
        .resource(app.url);
    let mut lines = Vec::new();
    let mut events = client.ciba_events(request);
    while let Some(event) = events.next().await {
        lines.push(event.to_string());
        if let CibaEvent::Failed(error) = event {
            return Err(Error::Other(Box::new(error)));
        }
    }
    assert!(lines[0].contains("Log in to kiosk 7"), "{lines:?}");
    assert!(
        lines.last().unwrap().starts_with("authenticated alice"),
        "{lines:?}"
    );
    Ok(())
}

#[tokio::test]
async fn three_qr_with_events() -> Result<(), Error> {
    let local = local().await;
    let client = OnesIdClient::from_paths(&local.paths)?;
    let mut events = client.qr_events(CibaRequest::new());
    let mut last = None;
    while let Some(event) = events.next().await {
        if let QrEvent::SessionCreated(session) = &event {
            assert!(onesoidc_flows::render::svg(&session.cb_url)?.contains("<svg"));
        }
        last = Some(event);
    }
    match last {
        Some(QrEvent::Authenticated(login)) => {
            assert_eq!(login.claims.map(|c| c.sub).as_deref(), Some("alice"));
        }
        other => panic!(
            "ended with {}",
            other.map(|e| e.to_string()).unwrap_or_default()
        ),
    }
    Ok(())
}

#[tokio::test]
async fn five_validation_introspection_and_revocation() -> Result<(), Error> {
    let local = local().await;
    let client = OnesIdClient::from_paths(&local.paths)?;
    let login = client.ciba(&CibaRequest::for_username("bob")).await?;
    let id_token = login.tokens.id_token.as_ref().expect("an ID token");
    let claims = client.validate_id_token(id_token.expose_secret()).await?;
    assert_eq!(claims.sub, "bob");
    assert!(
        client
            .introspect(&login.tokens.access_token, None)
            .await?
            .active
    );
    client.revoke(&login.tokens.access_token, None).await?;
    assert!(
        !client
            .introspect(&login.tokens.access_token, None)
            .await?
            .active
    );
    Ok(())
}

/// Sends `METHOD URL -> STATUS` for every exchange to `lines`.
struct Logged<C> {
    inner: C,
    lines: std::sync::mpsc::Sender<String>,
}

impl<C: HttpClient> HttpClient for Logged<C> {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        let line = format!("{} {}", request.method(), request.uri());
        Box::pin(async move {
            let result = self.inner.execute(request).await;
            let outcome = match &result {
                Ok(response) => response.status().to_string(),
                Err(error) => error.to_string(),
            };
            let _ = self.lines.send(format!("{line} -> {outcome}"));
            result
        })
    }
}

#[tokio::test]
async fn six_a_logging_http_decorator() -> Result<(), Error> {
    let local = local().await;
    let (sender, log) = std::sync::mpsc::channel();
    let client = OnesIdClient::builder()
        .identity_paths(local.paths.clone())
        .http(Logged {
            inner: ReqwestClient::new()?,
            lines: sender,
        })
        .build()?;
    client.device_token().await?;
    let lines: Vec<String> = log.try_iter().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("GET ") && lines[0].contains("openid-configuration"));
    assert!(lines[1].starts_with("POST ") && lines[1].ends_with("/oidc/token -> 200 OK"));
    Ok(())
}
