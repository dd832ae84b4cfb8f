//! The provider's in-memory state, shared by every route and the control
//! methods. One `std::sync::Mutex` guards it; it is never held across an
//! `.await` or a signature.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, watch};

use crate::activity::TokenLog;
use crate::ciba::{CibaRecord, CibaRequestInfo};
use crate::config::{AutoApprove, DevIdpConfig};
use crate::console::Guard;
use crate::devices::Device;
use crate::provider_key::ProviderKey;
use crate::qr::{HintRecord, QrRecord};
use crate::registration::RegistrationRecord;
use crate::stats::Stats;
use crate::tokens::{AccessRecord, RefreshRecord};

/// Seconds since the Unix epoch, for JWT claims.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch, for the console's clocks.
pub(crate) fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whole seconds, rounded up, for `expires_in` and `interval` on the wire.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A random, URL-safe string of 256 bits with `prefix`.
pub(crate) fn random_token(prefix: &str) -> String {
    format!(
        "{prefix}{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Which kind of JWT a `jti` was seen in (replay is checked per kind and client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum JtiUse {
    ClientAssertion,
    RequestObject,
    /// A DPoP proof's `jti`, per proof key thumbprint.
    DpopProof,
}

/// Items a `next_*` method hands out in arrival order, each once.
pub(crate) struct Events<T> {
    tx: mpsc::UnboundedSender<T>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<T>>,
}

impl<T> Events<T> {
    fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Events {
            tx,
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    pub fn push(&self, item: T) {
        // The receiver lives as long as `self`: sending cannot fail.
        let _ = self.tx.send(item);
    }

    pub async fn next(&self) -> T {
        let mut rx = self.rx.lock().await;
        match rx.recv().await {
            Some(item) => item,
            // Unreachable while `self.tx` exists; never resolve rather than panic.
            None => std::future::pending().await,
        }
    }
}

/// Everything that changes while the provider runs.
#[derive(Default)]
pub(crate) struct Store {
    pub devices: HashMap<String, Arc<Device>>,
    /// `(client_id, kind, jti)` → when it may be forgotten (Unix seconds).
    pub seen_jtis: HashMap<(String, JtiUse, String), i64>,
    pub access_tokens: HashMap<String, AccessRecord>,
    pub refresh_tokens: HashMap<String, RefreshRecord>,
    /// Refresh tokens issued so far (the last one's serial).
    pub refresh_tokens_issued: u64,
    pub revoked_grants: HashSet<String>,
    pub ciba: HashMap<String, CibaRecord>,
    pub qr: HashMap<String, QrRecord>,
    pub login_hint_tokens: HashMap<String, HintRecord>,
    pub registrations: HashMap<String, RegistrationRecord>,
    pub stats: Stats,
    pub auto_approve: Option<AutoApprove>,
    /// The token endpoint's recent requests, for the console.
    pub token_log: TokenLog,
}

impl Store {
    /// Records `jti` until `forget_at`; false when it was already seen (a
    /// replay). Forgets, at `now`, every `jti` whose time has come, so the
    /// set holds only those still inside their JWT's lifetime.
    pub fn remember_jti(
        &mut self,
        client_id: &str,
        kind: JtiUse,
        jti: &str,
        forget_at: i64,
        now: i64,
    ) -> bool {
        self.seen_jtis.retain(|_, until| *until > now);
        self.seen_jtis
            .insert((client_id.to_string(), kind, jti.to_string()), forget_at)
            .is_none()
    }

    /// Counts an error response.
    pub fn count_rejection(&mut self, error: &str) {
        *self.stats.rejected.entry(error.to_string()).or_default() += 1;
    }
}

/// The provider's signing keys.
struct ProviderKeys {
    current: Arc<ProviderKey>,
    previous: Option<Arc<ProviderKey>>,
}

/// The shared state of one provider.
pub(crate) struct Provider {
    pub config: DevIdpConfig,
    pub host: String,
    pub issuer: String,
    pub token_endpoint: String,
    pub backchannel_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub jwks_uri: String,
    /// The signing key, and the one before it (still published after a
    /// rotation, as a real provider keeps it until its tokens expire).
    keys: std::sync::RwLock<ProviderKeys>,
    store: Mutex<Store>,
    pub ciba_events: Events<CibaRequestInfo>,
    pub qr_events: Events<String>,
    pub registration_events: Events<String>,
    /// The console's token and the host names it answers to.
    pub console: Guard,
    /// Bumped whenever something the console shows changes.
    changes: watch::Sender<u64>,
    /// Set when the server stops: the console's live streams end.
    closing: watch::Sender<bool>,
    /// tokio's clock against the wall clock, for the console's countdowns.
    pub wall_clock: crate::console::WallClock,
    /// The server nonces DPoP proofs must carry when `dpop_nonce` is on.
    pub dpop_nonces: crate::dpop::DpopNonces,
}

impl Provider {
    /// The key that signs tokens now.
    pub fn key(&self) -> Arc<ProviderKey> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .clone()
    }

    /// The keys `/oidc/jwks` publishes: the current one, then the one it
    /// replaced (if any).
    pub fn published_keys(&self) -> Vec<Arc<ProviderKey>> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        std::iter::once(keys.current.clone())
            .chain(keys.previous.clone())
            .collect()
    }

    /// Signs with `key` from now on; the current key stays published as
    /// the previous one. Returns the new and the previous `kid`.
    pub fn rotate_key(&self, key: ProviderKey) -> (String, String) {
        let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::replace(&mut keys.current, Arc::new(key));
        let ids = (keys.current.kid().to_string(), previous.kid().to_string());
        keys.previous = Some(previous);
        tracing::info!(kid = %ids.0, previous_kid = %ids.1, "provider signing key rotated");
        ids
    }

    /// Checks that the `jti` of `claims` was not used before by `client_id`
    /// for `kind`, and remembers it until `exp` plus the clock skew (after
    /// which the token is refused as expired anyway).
    pub fn check_jti(
        &self,
        client_id: &str,
        kind: JtiUse,
        claims: &crate::jose::Claims,
        exp: i64,
    ) -> Result<(), String> {
        let jti = claims.required_string("jti")?;
        let forget_at = exp.saturating_add(crate::jose::CLOCK_SKEW_SECS);
        if self
            .lock()
            .remember_jti(client_id, kind, jti, forget_at, unix_now())
        {
            Ok(())
        } else {
            Err(format!("`jti` {jti:?} was already used (replay)"))
        }
    }

    /// A provider reachable at `host` (no trailing slash).
    #[cfg(test)]
    pub fn new(host: &str, config: DevIdpConfig, key: ProviderKey) -> Result<Arc<Self>, String> {
        Self::with_aliases(host, &[], config, key)
    }

    /// A provider reachable at `host` (no trailing slash) and, for its
    /// console, also by the `host:port` authorities in `aliases`.
    pub fn with_aliases(
        host: &str,
        aliases: &[String],
        config: DevIdpConfig,
        key: ProviderKey,
    ) -> Result<Arc<Self>, String> {
        config.validate().map_err(|e| e.to_string())?;
        let host = host.trim_end_matches('/').to_string();
        let issuer = format!("{host}/oidc");
        let mut store = Store {
            auto_approve: config.auto_approve,
            ..Store::default()
        };
        for seed in &config.devices {
            let device = Device::new(&seed.device_id, &seed.client_id, &seed.public_jwk)
                .map_err(|e| e.to_string())?;
            store
                .devices
                .insert(seed.client_id.clone(), Arc::new(device));
        }
        Ok(Arc::new(Provider {
            token_endpoint: format!("{issuer}/token"),
            backchannel_endpoint: format!("{issuer}/backchannel"),
            introspection_endpoint: format!("{issuer}/token/introspection"),
            revocation_endpoint: format!("{issuer}/token/revocation"),
            jwks_uri: format!("{issuer}/jwks"),
            keys: std::sync::RwLock::new(ProviderKeys {
                current: Arc::new(key),
                previous: None,
            }),
            console: Guard::new(&host, aliases),
            issuer,
            host,
            config,
            store: Mutex::new(store),
            ciba_events: Events::new(),
            qr_events: Events::new(),
            registration_events: Events::new(),
            changes: watch::Sender::new(0),
            closing: watch::Sender::new(false),
            wall_clock: crate::console::WallClock::now(),
            dpop_nonces: crate::dpop::DpopNonces::new()?,
        }))
    }

    /// Tells the console's live streams that something changed.
    pub fn changed(&self) {
        self.changes
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Receives a value whenever [`Provider::changed`] is called.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Ends the console's live streams (the server is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Becomes `true` when the server stops.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Locks the store (a panic elsewhere does not make it unusable).
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_user(&self, username: &str) -> bool {
        self.config.users.iter().any(|u| u == username)
    }

    /// The policy in force now.
    pub fn auto_approve(&self) -> Option<AutoApprove> {
        self.lock().auto_approve
    }

    /// Runs `action` on this state after `after` (tokio's clock), unless the
    /// provider is gone by then.
    pub fn after(
        self: &Arc<Self>,
        after: Duration,
        action: impl FnOnce(&Arc<Provider>) + Send + 'static,
    ) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            if let Some(state) = weak.upgrade() {
                action(&state);
            }
        });
    }
}

#[cfg(test)]
mod jti_tests {
    use super::*;

    #[test]
    fn a_jti_is_refused_until_its_time_then_forgotten() {
        let mut store = Store::default();
        let (now, key) = (1_000, "thumbprint");
        assert!(store.remember_jti(key, JtiUse::DpopProof, "a", now + 120, now));
        assert!(
            !store.remember_jti(key, JtiUse::DpopProof, "a", now + 120, now + 119),
            "a replay inside the window"
        );
        // Per key and per kind: the same jti elsewhere is not a replay.
        assert!(store.remember_jti("other", JtiUse::DpopProof, "a", now + 120, now));
        assert!(store.remember_jti(key, JtiUse::ClientAssertion, "a", now + 120, now));
        assert_eq!(store.seen_jtis.len(), 3);
        // At its time it is forgotten (the proof is refused by its `iat`
        // by then), so the set does not grow without end.
        assert!(store.remember_jti(key, JtiUse::DpopProof, "b", now + 240, now + 120));
        assert_eq!(store.seen_jtis.len(), 1, "only b is left");
        assert!(store.remember_jti(key, JtiUse::DpopProof, "a", now + 240, now + 120));
    }
}
