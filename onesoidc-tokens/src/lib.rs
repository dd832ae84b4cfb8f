//! Token managers for onesoidc: always-fresh device and user tokens.
//!
//! - [`TokenManager`] holds one [`TokenSet`](onesoidc_core::TokenSet) and
//!   hands out a valid access token: cheaply while it is valid, after one
//!   shared refresh when it is not. A background task refreshes ahead of
//!   expiry (skew plus jitter), retries failures with capped exponential
//!   backoff while the old token is valid, and reports everything as a
//!   stream of [`TokenEvent`]s and a watchable [`TokenState`].
//! - How tokens are refreshed is a value, a [`RefreshFn`]:
//!   [`device_refresh`] (client credentials again) or [`user_refresh`]
//!   (refresh_token grant, keeping rotation), or your own with
//!   [`refresh_fn`].
//! - [`TokenManagerRegistry`] keeps managers by name (`"device"`,
//!   `"ciba_user"`), as a value or the process-wide [`global`](TokenManagerRegistry::global).
//! - [`TokenStore`]s keep tokens across restarts and share one token and
//!   one refresh between processes: [`FileTokenStore`] on one machine,
//!   `RedisTokenStore` (feature `redis`) across machines (opt-in).
//!
//! Time is tokio's: with `#[tokio::test(start_paused = true)]` and a fixed
//! [`wall_clock`](TokenManagerBuilder::wall_clock) every refresh time is exact.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), onesoidc_tokens::TokenError> {
//! use std::time::{Duration, SystemTime};
//! use onesoidc_core::{ExposeSecret, TokenSet};
//! use onesoidc_tokens::{TokenEvent, TokenManager, refresh_fn};
//! use tokio_stream::StreamExt;
//!
//! // In an application: `device_refresh(OnesIdClient::from_default_identity()?)`.
//! let refresh = refresh_fn(|_current| async {
//!     Ok(TokenSet {
//!         access_token: "device-token".to_string().into(),
//!         token_type: "Bearer".into(),
//!         expires_at: Some(SystemTime::now() + Duration::from_secs(300)),
//!         refresh_token: None,
//!         id_token: None,
//!         scope: None,
//!         dpop_jkt: None,
//!     })
//! });
//! let manager = TokenManager::builder("device", refresh)
//!     .refresh_skew(Duration::from_secs(30))
//!     .build();
//! let mut events = manager.events();
//!
//! let token = manager.access_token().await?; // fetches: there were no tokens
//! assert_eq!(token.expose_secret(), "device-token");
//! assert!(matches!(events.next().await, Some(TokenEvent::Refreshed { .. })));
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
#[cfg(feature = "flows")]
mod lend;
mod manager;
mod refresh;
mod registry;
mod store;

pub use error::TokenError;
#[cfg(feature = "flows")]
pub use lend::device_manager;
pub use manager::{
    AccessToken, DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX, DEFAULT_EVENT_CAPACITY,
    DEFAULT_REFRESH_JITTER, DEFAULT_REFRESH_SKEW, DEFAULT_REFRESH_TIMEOUT, DEFAULT_STORE_LEASE,
    JitterSource, TokenEvent, TokenManager, TokenManagerBuilder, TokenState, WallClock,
};
pub use refresh::{RefreshFn, RefreshFuture, refresh_fn};
#[cfg(feature = "flows")]
pub use refresh::{device_refresh, device_refresh_with, user_refresh};
pub use registry::{CIBA_USER, DEVICE, TokenManagerRegistry};
pub use store::{
    FILE_FORMAT, FILE_FORMAT_VERSION, FileTokenStore, HeldLease, Lease, MAX_TOKEN_FILE_BYTES,
    SaveMode, Saved, StoreError, StoreFuture, StoreKey, Stored, TokenOwner, TokenStore,
};
#[cfg(feature = "redis")]
pub use store::{RedisTokenStore, RedisTokenStoreBuilder};
/// `Stream` and its combinators, for [`TokenManager::events`].
pub use tokio_stream::{Stream, StreamExt};

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The repository README's Rust blocks (flows and tokens together),
/// compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RepositoryReadmeDoctests;
