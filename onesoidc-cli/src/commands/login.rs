//! `ciba` and `qr`: a person logs in on their phone while the terminal waits.

use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;
use onesoidc_flows::{CibaEvent, CibaRequest, Login, OnesIdClient, QrEvent, StreamExt, render};
use tokio::time::Instant;

use super::client_with;
use super::device::print_tokens;
use crate::cli::{GlobalArgs, LoginArgs};
use crate::output::{Failure, minutes_seconds, say, spinner};

/// The login's options (no one named yet), with `--target-app` resolved
/// to its URL.
async fn login_options(client: &OnesIdClient, args: &LoginArgs) -> Result<CibaRequest, Failure> {
    let mut request = CibaRequest::new();
    if let Some(scope) = &args.scope {
        request = request.scope(scope.as_str());
    }
    if let Some(message) = &args.binding_message {
        request = request.binding_message(message);
    }
    match (&args.target_app, &args.resource) {
        (Some(app), _) => request = request.resource(client.application(app).await?.url),
        (None, Some(resource)) => request = request.resource(resource),
        (None, None) => {}
    }
    Ok(request)
}

/// What the spinner says while waiting, refreshed every second.
struct Waiting {
    text: String,
    deadline: Option<Instant>,
}

impl Waiting {
    fn show(&self, bar: &ProgressBar) {
        let left = self
            .deadline
            .map(|d| {
                format!(
                    " ({} left)",
                    minutes_seconds(d.saturating_duration_since(Instant::now()))
                )
            })
            .unwrap_or_default();
        bar.set_message(format!("{}{left}", self.text));
    }
}

pub async fn ciba(g: &GlobalArgs, username: &str, args: &LoginArgs) -> Result<(), Failure> {
    let mut interrupt = crate::output::Interrupt::listen();
    let client = client_with(g, args.dpop)?;
    let options = login_options(&client, args).await?;
    let events = client
        .ciba_events(options.login_hint(onesoidc_flows::LoginHint::Username(username.to_string())));
    let waiting = Waiting {
        text: format!("Asking {username} to approve on their phone"),
        deadline: None,
    };
    follow(g, events, waiting, &mut interrupt, |event, waiting, bar| {
        on_ciba_event(event, username, waiting, bar).transpose()
    })
    .await
}

/// Shows a spinner (refreshed every second) while `events` run, hands each
/// to `on_event` until it returns a login, then prints who logged in and
/// the tokens. Ctrl-C cancels; a stream that ends without a login fails.
async fn follow<E>(
    g: &GlobalArgs,
    mut events: impl onesoidc_flows::Stream<Item = E> + Unpin,
    mut waiting: Waiting,
    interrupt: &mut crate::output::Interrupt,
    mut on_event: impl FnMut(E, &mut Waiting, &ProgressBar) -> Result<Option<Login>, Failure>,
) -> Result<(), Failure> {
    let bar = spinner(g.json);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        tokio::select! {
            event = events.next() => match event {
                Some(event) => match on_event(event, &mut waiting, &bar) {
                    Ok(None) => {}
                    Ok(Some(login)) => break Ok(login),
                    Err(failure) => break Err(failure),
                },
                None => break Err(Failure::from("the login ended without a result")),
            },
            _ = tick.tick() => waiting.show(&bar),
            _ = interrupt.recv() => break Err(Failure::cancelled()),
        }
    };
    bar.finish_and_clear();
    finish(g, &result?);
    Ok(())
}

/// Updates the spinner; returns the outcome once the login is over.
fn on_ciba_event(
    event: CibaEvent,
    who: &str,
    waiting: &mut Waiting,
    bar: &ProgressBar,
) -> Option<Result<Login, Failure>> {
    match event {
        CibaEvent::Started {
            expires_in,
            binding_message,
            ..
        } => {
            waiting.deadline = Instant::now().checked_add(expires_in);
            waiting.text = match binding_message {
                Some(m) => {
                    format!("Waiting for {who} to approve \u{201c}{m}\u{201d} on their phone")
                }
                None => format!("Waiting for {who} to approve on their phone"),
            };
            waiting.show(bar);
            None
        }
        CibaEvent::WaitingForAuthorization { .. } => None,
        CibaEvent::Authenticated(login) => Some(Ok(login)),
        CibaEvent::Failed(error) => Some(Err(error.into())),
        _ => None,
    }
}

/// Prints who logged in (the ID token was validated by the flow) and the tokens.
fn finish(g: &GlobalArgs, login: &Login) {
    if let Some(claims) = &login.claims {
        say(g.json, &format!("Authenticated {}.", claims.sub));
    }
    print_tokens(g, &login.tokens, login.claims.as_ref().map(|c| &c.all));
}

pub async fn qr(
    g: &GlobalArgs,
    args: &LoginArgs,
    png: Option<&Path>,
    svg: Option<&Path>,
    ascii: bool,
) -> Result<(), Failure> {
    let mut interrupt = crate::output::Interrupt::listen();
    let client = client_with(g, args.dpop)?;
    let options = login_options(&client, args).await?;
    let events = client.qr_events(options);
    let waiting = Waiting {
        text: "Creating a QR login session".into(),
        deadline: None,
    };
    follow(g, events, waiting, &mut interrupt, |event, waiting, bar| {
        match event {
            QrEvent::SessionCreated(session) => {
                let drawn = if ascii {
                    render::ascii(&session.cb_url)?
                } else {
                    render::terminal(&session.cb_url)?
                };
                bar.suspend(|| {
                    say(g.json, &drawn);
                    say(g.json, &format!("Scan with the ONES app: {}", session.cb_url));
                });
                if let Some(path) = png {
                    std::fs::write(path, render::png(&session.cb_url)?)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                }
                if let Some(path) = svg {
                    std::fs::write(path, render::svg(&session.cb_url)?)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                }
                if g.json {
                    crate::output::print_json(&serde_json::json!({"event": "session_created", "session_id": session.session_id, "cb_url": session.cb_url}));
                }
                waiting.text = "Waiting for the code to be scanned".into();
                waiting.deadline = Instant::now().checked_add(session.expires_in);
                waiting.show(bar);
            }
            QrEvent::Scanned => {
                waiting.text = "Scanned; waiting for approval on the phone".into();
                waiting.show(bar);
            }
            QrEvent::AuthorizationRequested { expires_in, .. } => {
                waiting.deadline = Instant::now().checked_add(expires_in);
                waiting.text = "Scanned; waiting for the person to approve on the phone".into();
                waiting.show(bar);
            }
            QrEvent::Authenticated(login) => return Ok(Some(login)),
            QrEvent::Failed(error) => return Err(error.into()),
            _ => {}
        }
        Ok(None)
    })
    .await
}
