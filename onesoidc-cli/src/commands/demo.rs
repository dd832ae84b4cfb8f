//! `demo`: every flow, one after the other, against an embedded provider.

use crate::output::out;
use std::future::Future;
use std::time::{Duration, SystemTime};

use onesoidc_core::{DeviceTokenRequest, DpopKey, ExposeSecret, KeyType, TokenSet, TokenTypeHint};
use onesoidc_devidp::{AutoApprove, DevIdp, DevIdpConfig};
use onesoidc_flows::{
    CibaEvent, CibaRequest, DeviceRegistration, IdentityPaths, Login, OnesIdClient, QrEvent,
    RegistrationProgress, StreamExt, register_device, render,
};
use onesoidc_http::ReqwestClient;
use onesoidc_tokens::{TokenEvent, TokenManager, device_refresh};
use tokio::time::Instant;

use crate::cli::GlobalArgs;
use crate::output::{Failure, spinner};

/// How long the embedded provider's "person" and "administrator" take to answer.
const ANSWER_AFTER: Duration = Duration::from_millis(1500);
/// Device access tokens live this long, so the token manager visibly refreshes.
const DEVICE_TOKEN_TTL: Duration = Duration::from_secs(6);
/// The manager refreshes this long before expiry.
const REFRESH_SKEW: Duration = Duration::from_secs(2);

/// Numbered steps with their outcome and duration.
struct Steps {
    json: bool,
    done: Vec<(String, Duration)>,
    started: Instant,
}

impl Steps {
    async fn run<T, F>(&mut self, name: &str, work: F) -> Result<T, Failure>
    where
        F: Future<Output = Result<(T, String), Failure>>,
    {
        let number = self.done.len() + 1;
        let began = Instant::now();
        if !self.json {
            out!("{number}. {name}");
        }
        match work.await {
            Ok((value, detail)) => {
                let took = began.elapsed();
                if self.json {
                    out!(
                        "{}",
                        serde_json::json!({"step": number, "name": name, "ok": true, "detail": detail, "ms": took.as_millis() as u64})
                    );
                } else {
                    out!("   \u{2713} {detail}  ({} ms)", took.as_millis());
                }
                self.done.push((name.to_string(), took));
                Ok(value)
            }
            Err(failure) => {
                if !self.json {
                    out!("   \u{2717} failed: {}", failure.message);
                }
                Err(Failure {
                    message: format!("demo step {number} ({name}) failed: {}", failure.message),
                    code: failure.code,
                })
            }
        }
    }
}

pub async fn run(g: &GlobalArgs) -> Result<(), Failure> {
    let json = g.json;
    let dir = tempfile::tempdir()?;
    let mut steps = Steps {
        json,
        done: Vec::new(),
        started: Instant::now(),
    };
    if !json {
        out!("onesoidc demo: every flow against an embedded OnesID-compatible provider");
        out!(
            "(the provider's \"person\" and \"administrator\" answer after {} ms)\n",
            ANSWER_AFTER.as_millis()
        );
    }

    let idp = steps
        .run("Start a local OnesID-compatible provider", async {
            let config = DevIdpConfig {
                access_token_ttl: DEVICE_TOKEN_TTL,
                ciba_interval: Duration::from_secs(1),
                qr_interval: Duration::from_secs(1),
                registration_poll_interval: Duration::from_secs(1),
                auto_approve: Some(AutoApprove::approve_after(ANSWER_AFTER)),
                ..DevIdpConfig::default()
            };
            let idp = DevIdp::start(config).await?;
            let detail = format!(
                "{} (users alice and bob; application vhh-server)",
                idp.issuer()
            );
            Ok((idp, detail))
        })
        .await?;

    let paths = IdentityPaths::new(dir.path().join("device.yml"), dir.path().join("keys"));
    steps
        .run(
            "Register this device (onesoidc register)",
            register(&idp, &paths),
        )
        .await?;

    let client = OnesIdClient::from_paths(&paths)?;
    steps
        .run(
            "Get the device's access token (client credentials, private_key_jwt)",
            async {
                let tokens = client.device_token().await?;
                Ok((
                    (),
                    format!("a Bearer token that expires in {}", expires_in(&tokens)),
                ))
            },
        )
        .await?;

    let app = steps
        .run("Look up the well-known application vhh-server", async {
            let app = client.application("vhh-server").await?;
            let detail = format!("{} is at {}", app.name.clone().unwrap_or_default(), app.url);
            Ok((app, detail))
        })
        .await?;

    let alice = steps
        .run("Log alice in on her phone (CIBA), for vhh-server", async {
            let request = CibaRequest::for_username("alice")
                .binding_message("onesoidc demo")
                .resource(app.url.clone());
            let login = follow_ciba(client.ciba_events(request), json).await?;
            let detail = format!(
                "alice approved \u{201c}onesoidc demo\u{201d}: access token for {}, refresh token {}",
                app.url,
                if login.tokens.refresh_token.is_some() { "kept" } else { "absent" }
            );
            Ok((login, detail))
        })
        .await?;

    steps
        .run(
            "Validate alice's ID token against the provider's keys (the login did; once more by hand)",
            async {
                let claims = client.validate_id_token(id_token(&alice.tokens)?).await?;
                if alice.claims.as_ref() != Some(&claims) {
                    return Err(Failure::from(
                        "the claims differ from those the login validated",
                    ));
                }
                Ok((
                    (),
                    format!(
                        "signature, issuer, audience and lifetime check out: sub {}",
                        claims.sub
                    ),
                ))
            },
        )
        .await?;
    let alice = alice.tokens;

    steps
        .run(
            "Introspect alice's access token, revoke it, introspect again",
            async {
                let token = &alice.access_token;
                let hint = Some(TokenTypeHint::AccessToken);
                let before = client.introspect(token, hint).await?;
                client.revoke(token, hint).await?;
                let after = client.introspect(token, hint).await?;
                if !before.active || after.active {
                    return Err(Failure::from(format!(
                        "expected active then inactive, got {} then {}",
                        before.active, after.active
                    )));
                }
                let aud = before.aud.join(", ");
                Ok((
                    (),
                    format!(
                        "active for {} (aud {aud}), then inactive",
                        before.sub.unwrap_or_default()
                    ),
                ))
            },
        )
        .await?;

    steps
        .run(
            "Log a person in by QR code (the scan is simulated)",
            async {
                let login = follow_qr(&client, json).await?;
                let who = login.claims.map(|c| c.sub).ok_or("no ID token came")?;
                Ok(((), format!("{who} scanned the code and approved")))
            },
        )
        .await?;

    steps
        .run("Keep the device token fresh with a token manager", async {
            let manager = TokenManager::builder("device", device_refresh(client.clone()))
                .refresh_skew(REFRESH_SKEW)
                .jitter(Duration::ZERO)
                .build();
            let mut events = manager.events();
            let first = manager
                .access_token()
                .await
                .map_err(|e| e.to_string())?
                .expires_at();
            let began = Instant::now();
            tokio::time::timeout(DEVICE_TOKEN_TTL * 2, async {
                while let Some(event) = events.next().await {
                    match event {
                        // The first fetch may be reported too; wait for a new token.
                        TokenEvent::Refreshed { expires_at } if expires_at != first => {
                            return Ok(());
                        }
                        TokenEvent::RefreshFailed { error, .. } => return Err(error.to_string()),
                        _ => {}
                    }
                }
                Err("the manager stopped".to_string())
            })
            .await
            .map_err(|_| "no refresh within twice the token lifetime".to_string())??;
            manager.shutdown().await;
            Ok((
                (),
                format!(
                    "refreshed in the background after {:.1} s (lifetime {} s, refresh {} s ahead)",
                    began.elapsed().as_secs_f64(),
                    DEVICE_TOKEN_TTL.as_secs(),
                    REFRESH_SKEW.as_secs()
                ),
            ))
        })
        .await?;

    let application = start_application(&idp, &app.url).await?;
    steps
        .run(
            "The application vhh-server checks the tokens it is sent (onesoidc-resource)",
            application_checks(&application, &client, &alice, json),
        )
        .await?;
    let dpop_client = OnesIdClient::builder()
        .identity_paths(paths.clone())
        .dpop(true)
        .build()?;
    steps
        .run(
            "A DPoP-bound device token (RFC 9449): good only with a fresh proof of the device's key",
            dpop_checks(&application, &dpop_client, &app.url, json),
        )
        .await?;
    drop(application);

    idp.shutdown().await;
    let total = steps.started.elapsed();
    if json {
        out!(
            "{}",
            serde_json::json!({"ok": true, "steps": steps.done.len(), "ms": total.as_millis() as u64})
        );
    } else {
        out!(
            "\nAll {} steps passed in {:.1} s.",
            steps.done.len(),
            total.as_secs_f64()
        );
        out!(
            "Next: `onesoidc dev-idp` runs this provider for your own experiments, with a console at"
        );
        out!(
            "http://127.0.0.1:8080/ where you approve registrations and logins by clicking, as the"
        );
        out!("administrator or the person on the phone. `onesoidc --help` lists every command.");
    }
    Ok(())
}

/// The application at `audience`, serving `GET /me` behind
/// onesoidc-resource's layer on loopback (no clock skew allowed, so an
/// expired token shows at once; DPoP proofs checked against its origin).
struct Application {
    me: String,
    http: ReqwestClient,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_application(idp: &DevIdp, audience: &str) -> Result<Application, Failure> {
    use axum::routing::get;
    use onesoidc_resource::{Authenticated, ResourceServer};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let server = ResourceServer::builder()
        .issuer(idp.issuer())
        .audience(audience)
        .leeway(Duration::ZERO)
        .public_url(&origin)
        .build()
        .await
        .map_err(|e| Failure::from(e.to_string()))?;
    let router = axum::Router::new()
        .route(
            "/me",
            get(|who: Authenticated| async move { format!("{} ({})", who.sub, who.scope) }),
        )
        .layer(server.layer());
    let serving = tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(Application {
        me: format!("{origin}/me"),
        http: ReqwestClient::new()?,
        serving,
    })
}

impl Drop for Application {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

impl Application {
    /// Sends `GET /me` with `headers`; fails unless the status is
    /// `expected`. The line says what was sent and what came back.
    async fn expect(
        &self,
        what: &str,
        headers: &[(&str, &str)],
        expected: u16,
        json: bool,
    ) -> Result<String, Failure> {
        use onesoidc_http::HttpClient;
        let mut request = http::Request::get(self.me.as_str());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Vec::new()).map_err(|e| e.to_string())?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let shown = match response.headers().get("www-authenticate") {
            Some(challenge) => format!("WWW-Authenticate: {}", challenge.to_str().unwrap_or("?")),
            None => String::from_utf8_lossy(response.body()).into_owned(),
        };
        let line = format!("{what}: {status} {shown}");
        if status != expected {
            return Err(Failure::from(format!("expected {expected}, got {line}")));
        }
        if !json {
            out!("      {line}");
        }
        Ok(line)
    }
}

/// Sends the application alice's token and four it must refuse.
async fn application_checks(
    app: &Application,
    client: &OnesIdClient,
    alice: &TokenSet,
    json: bool,
) -> Result<((), String), Failure> {
    // The login's access token lives 6 s: wait for it to expire if it has not yet.
    if let Some(at) = alice.expires_at {
        let left = at.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
    let fresh = client.refresh(alice).await?;
    let fresh = fresh.access_token.expose_secret().to_string();
    let own = client.device_token().await?.access_token;
    let mut changed = fresh.clone().into_bytes();
    let last = changed.len() - 2;
    changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
    let changed = String::from_utf8(changed).map_err(|e| e.to_string())?;
    let cases = [
        (
            "alice's access token for the application (refreshed)",
            fresh.as_str(),
            200,
        ),
        (
            "the device's own token (audience: the device)",
            own.expose_secret(),
            401,
        ),
        ("alice's token with one changed byte", changed.as_str(), 401),
        (
            "alice's ID token passed as an access token",
            id_token(alice)?,
            401,
        ),
        (
            "alice's access token from the login, expired",
            alice.access_token.expose_secret(),
            401,
        ),
    ];
    let mut refused = 0;
    for (what, token, expected) in cases {
        let bearer = format!("Bearer {token}");
        app.expect(what, &[("authorization", &bearer)], expected, json)
            .await?;
        refused += usize::from(expected != 200);
    }
    Ok((
        (),
        format!(
            "GET {}: alice's token accepted, {refused} refused as RFC 6750 says",
            app.me
        ),
    ))
}

/// Gets a device token for the application bound to the device's DPoP key,
/// and sends it with its proof (accepted), as `Bearer` (refused), with the
/// same proof again (refused: replayed) and with a proof from another key
/// (refused): a copied token is of no use without the device's key.
async fn dpop_checks(
    app: &Application,
    client: &OnesIdClient,
    audience: &str,
    json: bool,
) -> Result<((), String), Failure> {
    let request = DeviceTokenRequest::default().resource(audience);
    let tokens = client.device_token_with(&request).await?;
    let Some(jkt) = tokens.dpop_jkt.clone() else {
        return Err(Failure::from(format!(
            "the provider answered token_type {:?}, not a DPoP-bound token",
            tokens.token_type
        )));
    };
    let url = url::Url::parse(&app.me).map_err(|e| e.to_string())?;
    let headers = client.authorize(&tokens, "GET", &url).await?;
    let authorization = headers.authorization().expose_secret();
    let proof = headers.dpop().ok_or("no DPoP proof for a bound token")?;
    let token = tokens.access_token.expose_secret();
    let bearer = format!("Bearer {token}");
    let stranger = DpopKey::generate()?.proof("GET", &url, Some(token), None, SystemTime::now())?;
    let cases = [
        (
            "the bound token with its proof",
            vec![("authorization", authorization), ("dpop", proof)],
            200,
        ),
        (
            "the same token sent as Bearer",
            vec![("authorization", bearer.as_str())],
            401,
        ),
        (
            "the same token with the same proof again (replayed)",
            vec![("authorization", authorization), ("dpop", proof)],
            401,
        ),
        (
            "the same token with a proof from another key",
            vec![
                ("authorization", authorization),
                ("dpop", stranger.as_str()),
            ],
            401,
        ),
    ];
    for (what, headers, expected) in cases {
        app.expect(what, &headers, expected, json).await?;
    }
    Ok((
        (),
        format!(
            "token_type DPoP, bound to key {}…: accepted with its proof, refused 3 ways",
            &jkt[..12.min(jkt.len())]
        ),
    ))
}

async fn register(idp: &DevIdp, paths: &IdentityPaths) -> Result<((), String), Failure> {
    let registration = DeviceRegistration::new("onesoidc demo", "here", "SERVER")
        .provider(&idp.host(), "demo.local")
        .paths(paths.clone())
        .key_type(KeyType::EccP256)
        .poll_interval(Duration::from_secs(1));
    let mut code = String::new();
    let identity = register_device(ReqwestClient::new()?, &registration, |p| {
        if let RegistrationProgress::Submitted {
            verification_code, ..
        } = p
        {
            code = verification_code;
        }
    })
    .await?;
    let detail = format!(
        "verification code {code} approved; {} identity written to {}",
        identity.config.key_type,
        paths.config.display()
    );
    Ok(((), detail))
}

fn expires_in(tokens: &TokenSet) -> String {
    tokens.expires_in(SystemTime::now()).map_or_else(
        || "(no expiry given)".into(),
        |d| format!("{} s", d.as_secs().max(1)),
    )
}

fn id_token(tokens: &TokenSet) -> Result<&str, Failure> {
    tokens
        .id_token
        .as_ref()
        .map(|t| t.expose_secret())
        .ok_or_else(|| Failure::from("the provider sent no ID token"))
}

async fn follow_ciba(
    mut events: impl onesoidc_flows::Stream<Item = CibaEvent> + Unpin,
    json: bool,
) -> Result<Login, Failure> {
    let bar = spinner(json);
    bar.set_message("asking alice's phone");
    let result = loop {
        match events.next().await {
            Some(CibaEvent::WaitingForAuthorization { remaining, .. }) => {
                bar.set_message(format!(
                    "waiting for alice to approve ({} s left)",
                    remaining.as_secs()
                ));
            }
            Some(CibaEvent::Authenticated(login)) => break Ok(login),
            Some(CibaEvent::Failed(error)) => break Err(error.into()),
            Some(_) => {}
            None => break Err(Failure::from("the login ended without a result")),
        }
    };
    bar.finish_and_clear();
    result
}

async fn follow_qr(client: &OnesIdClient, json: bool) -> Result<Login, Failure> {
    let mut events = client.qr_events(CibaRequest::new().binding_message("QR login"));
    let bar = spinner(json);
    let result = loop {
        match events.next().await {
            Some(QrEvent::SessionCreated(session)) => {
                if !json {
                    let drawn = render::terminal(&session.cb_url)?;
                    bar.suspend(|| {
                        for line in drawn.lines() {
                            out!("      {line}");
                        }
                        out!("      {}", session.cb_url);
                    });
                }
                bar.set_message("waiting for the code to be scanned");
            }
            Some(QrEvent::Scanned) => bar.set_message("scanned; waiting for approval on the phone"),
            Some(QrEvent::Authenticated(login)) => break Ok(login),
            Some(QrEvent::Failed(error)) => break Err(error.into()),
            Some(_) => {}
            None => break Err(Failure::from("the login ended without a result")),
        }
    };
    bar.finish_and_clear();
    result
}
