//! `watch`: a token manager for the device token, its events on stdout.

use std::time::{Duration, SystemTime};

use onesoidc_core::Expiry;
use onesoidc_flows::StreamExt;
use onesoidc_tokens::{TokenEvent, TokenManager, TokenOwner, device_refresh};
use serde_json::json;

use super::client_with;
use crate::cli::GlobalArgs;
use crate::output::{Failure, out};
use crate::service_manager::ServiceManager;

pub async fn run(
    g: &GlobalArgs,
    skew: u64,
    store: &crate::cli::StoreArgs,
    refreshes: Option<u64>,
    dpop: bool,
) -> Result<(), Failure> {
    let mut interrupt = crate::output::Interrupt::listen();
    let systemd = ServiceManager::from_env();
    // Without a watchdog the tick never comes.
    let mut watchdog = systemd.watchdog_interval().map(tokio::time::interval);
    let client = client_with(g, dpop)?;
    let owner = TokenOwner::of_client(&client).await?;
    let mut builder = TokenManager::builder(
        crate::cache::device_token_name(owner.dpop_jkt.as_deref()),
        device_refresh(client),
    )
    .refresh_skew(Duration::from_secs(skew));
    if let Some(store) = crate::cache::open_store(store, true)? {
        builder = builder.store(store, owner);
    }
    let manager = builder.build();
    let mut events = manager.events();
    let first = manager.access_token().await.map_err(|e| e.to_string())?;
    report(g, "ready", Some(first.expires_at()), None);
    // A store failure from before `events()` subscribed (the manager loads
    // from the store as it starts) is told once, like a later one.
    let mut store_down = false;
    if let Some(error) = manager.store_unavailable() {
        store_down = true;
        report(g, "store_unavailable", None, Some(error.to_string()));
    }
    // The manager has stored the token before handing it out.
    systemd.ready(first.expires_at());
    let mut seen = 0;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(TokenEvent::Refreshed { expires_at }) if expires_at != first.expires_at() => {
                    seen += 1;
                    report(g, "refreshed", Some(expires_at), None);
                    systemd.token(expires_at);
                    if refreshes.is_some_and(|n| seen >= n) {
                        break;
                    }
                }
                Some(TokenEvent::RefreshFailed { error, reauth_required }) => {
                    let what = if reauth_required { "refresh_failed_reauth_required" } else { "refresh_failed" };
                    report(g, what, None, Some(error.to_string()));
                    systemd.refresh_failed(&error.to_string());
                }
                Some(TokenEvent::Loaded { expires_at }) if expires_at != first.expires_at() => {
                    seen += 1;
                    report(g, "loaded", Some(expires_at), None);
                    systemd.token(expires_at);
                    if refreshes.is_some_and(|n| seen >= n) {
                        break;
                    }
                }
                Some(TokenEvent::StoreUnavailable { error }) => {
                    if !std::mem::replace(&mut store_down, true) {
                        report(g, "store_unavailable", None, Some(error.to_string()));
                    }
                }
                Some(TokenEvent::StoreAvailable) => {
                    store_down = false;
                    report(g, "store_available", None, None);
                }
                Some(TokenEvent::Expired) => report(g, "expired", None, None),
                Some(TokenEvent::Cleared) => report(g, "cleared", None, None),
                Some(TokenEvent::DeviceClockOff { offset }) => {
                    report(g, "device_clock_off", None, Some(offset.to_string()));
                }
                Some(_) => {}
                None => break,
            },
            () = tick(&mut watchdog) => systemd.watchdog(),
            _ = interrupt.recv() => break,
        }
    }
    systemd.stopping();
    manager.shutdown().await;
    Ok(())
}

/// The next watchdog tick; never, without a watchdog.
async fn tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn report(g: &GlobalArgs, event: &str, expires_at: Option<Expiry>, error: Option<String>) {
    let expires_in = expires_at
        .and_then(|at| at.remaining(SystemTime::now()))
        .map(|left| left.as_secs());
    if g.json {
        out!(
            "{}",
            json!({"event": event, "expires_in": expires_in, "error": error})
        );
    } else {
        let when = humantime::format_rfc3339_seconds(SystemTime::now());
        match (expires_in, error) {
            (_, Some(error)) => out!("{when}  {event}: {error}"),
            (Some(secs), None) => out!("{when}  {event}: the device token expires in {secs} s"),
            (None, None) => out!("{when}  {event}"),
        }
    }
}
