//! Refresh functions: how a manager gets new tokens (the seed's
//! `DeviceRefreshFunc` / `CibaRefreshFunc`), as plain values.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use onesoidc_core::{Error, TokenSet};

use crate::TokenEvent;
#[cfg(feature = "flows")]
use onesoidc_flows::{DeviceTokenRequest, OnesIdClient};

/// The future a [`RefreshFn`] returns.
pub type RefreshFuture = Pin<Box<dyn Future<Output = Result<TokenSet, Error>> + Send>>;

/// Gets new tokens. It receives the tokens the manager holds now (`None`
/// when it holds none), so a user refresh can read the refresh token.
///
/// A manager runs at most one at a time, under a timeout (see
/// [`TokenManagerBuilder::refresh_timeout`](crate::TokenManagerBuilder::refresh_timeout)).
/// An error for which [`Error::requires_login`] is true stops the manager
/// refreshing until new tokens are stored; any other error is retried with
/// backoff. Build one with [`refresh_fn`],
/// [`device_refresh`] or [`user_refresh`].
pub type RefreshFn = Arc<dyn Fn(Option<Arc<TokenSet>>) -> RefreshFuture + Send + Sync>;

tokio::task_local! {
    /// What the refresh running on this task has to report, besides its
    /// result (see [`reporting`]).
    static NOTICES: RefCell<Vec<TokenEvent>>;
}

/// Tells the manager running this refresh (if any) about `event`; it
/// emits it before the refresh's outcome.
#[cfg_attr(not(feature = "flows"), allow(dead_code))]
fn notice(event: TokenEvent) {
    // Outside a manager's refresh (a refresh function called directly)
    // there is nobody to tell; the flows log it anyway.
    let _ = NOTICES.try_with(|notices| notices.borrow_mut().push(event));
}

/// `refresh`, handing what it [notices](notice) to `emit` once it ends.
pub(crate) fn reporting(
    refresh: RefreshFn,
    emit: Arc<dyn Fn(TokenEvent) + Send + Sync>,
) -> RefreshFn {
    Arc::new(move |current| {
        let run = refresh(current);
        let emit = emit.clone();
        Box::pin(async move {
            let (result, notices) = NOTICES
                .scope(RefCell::new(Vec::new()), async {
                    let result = run.await;
                    (result, NOTICES.with(RefCell::take))
                })
                .await;
            notices.into_iter().for_each(|event| emit(event));
            result
        })
    })
}

/// Reports the device clock when `error` says it is off.
#[cfg(feature = "flows")]
fn notice_clock_of(error: &Error) {
    if let Some(offset) = error.device_clock_offset() {
        notice(TokenEvent::DeviceClockOff { offset });
    }
}

/// Wraps an async closure as a [`RefreshFn`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::{Duration, SystemTime};
/// use onesoidc_core::{ExposeSecret, TokenSet};
/// let refresh = onesoidc_tokens::refresh_fn(|_current| async {
///     Ok(TokenSet {
///         access_token: "at".to_string().into(),
///         token_type: "Bearer".into(),
///         expires_at: Some(SystemTime::now() + Duration::from_secs(300)),
///         refresh_token: None,
///         id_token: None,
///         scope: None,
///         dpop_jkt: None,
///     })
/// });
/// let tokens = refresh(None).await.unwrap();
/// assert_eq!(tokens.access_token.expose_secret(), "at");
/// # }
/// ```
pub fn refresh_fn<F, Fut>(f: F) -> RefreshFn
where
    F: Fn(Option<Arc<TokenSet>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<TokenSet, Error>> + Send + 'static,
{
    Arc::new(move |current| Box::pin(f(current)))
}

/// The device's refresh: client credentials again ([PROTOCOL §4](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#4-device-access-token)), ignoring
/// the current tokens. A device manager needs no initial tokens: it fetches
/// on first use.
#[cfg(feature = "flows")]
#[cfg_attr(docsrs, doc(cfg(feature = "flows")))]
pub fn device_refresh(client: OnesIdClient) -> RefreshFn {
    device_refresh_with(client, DeviceTokenRequest::default())
}

/// Like [`device_refresh`], asking for `options` (scope, resource) each time.
#[cfg(feature = "flows")]
#[cfg_attr(docsrs, doc(cfg(feature = "flows")))]
pub fn device_refresh_with(client: OnesIdClient, options: DeviceTokenRequest) -> RefreshFn {
    let options = Arc::new(options);
    Arc::new(move |_current| {
        let client = client.clone();
        let options = options.clone();
        Box::pin(async move {
            let result = client.device_token_with(&options).await;
            if let Err(error) = &result {
                notice_clock_of(error);
            }
            result
        })
    })
}

/// A user's refresh: the refresh_token grant ([PROTOCOL §6](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#6-refresh)) with the refresh
/// token of the current tokens. A rotated refresh token replaces the old one;
/// when the response has none, the old one is kept
/// ([`OnesIdClient::refresh`]).
///
/// With no current tokens, or tokens without a refresh token, it fails with
/// [`Error::LoginRequired`] and sends nothing: the manager then reports
/// that a new login is needed.
///
/// A new ID token that is not accepted (but names the same person) leaves
/// the new access and refresh tokens in the manager with the previous ID
/// token, and the manager reports [`TokenEvent::IdTokenRejected`]; a device
/// clock off by more than the skew is reported as
/// [`TokenEvent::DeviceClockOff`] ([`OnesIdClient::refresh_with_report`]).
#[cfg(feature = "flows")]
#[cfg_attr(docsrs, doc(cfg(feature = "flows")))]
pub fn user_refresh(client: OnesIdClient) -> RefreshFn {
    Arc::new(move |current: Option<Arc<TokenSet>>| {
        let client = client.clone();
        Box::pin(async move {
            match current {
                Some(tokens) => match client.refresh_with_report(&tokens).await {
                    Ok(refreshed) => {
                        if let Some(offset) = refreshed.device_clock {
                            notice(TokenEvent::DeviceClockOff { offset });
                        }
                        if let Some(error) = refreshed.id_token_rejected {
                            notice(TokenEvent::IdTokenRejected { error });
                        }
                        Ok(refreshed.tokens)
                    }
                    Err(error) => {
                        notice_clock_of(&error);
                        Err(error)
                    }
                },
                None => Err(Error::LoginRequired {
                    reason: "there are no user tokens to refresh".into(),
                }),
            }
        })
    })
}
