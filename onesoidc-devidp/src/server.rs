//! [`DevIdp`]: starting the provider, the control methods tests and the
//! demo use, and stopping it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use onesoidc_core::PublicJwk;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ciba::CibaRequestInfo;
use crate::config::{AutoApprove, DevIdpConfig, DeviceSeed, UserDecision};
use crate::devices::RegisteredDevice;
use crate::error::ControlError;
use crate::provider_key::ProviderKey;
use crate::state::Provider;
use crate::stats::Stats;

/// How long [`DevIdp::shutdown`] waits for open connections before aborting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running local OpenID Provider.
///
/// Cheap to clone: clones are handles to the same server. The server stops
/// on [`DevIdp::shutdown`] or when the last handle is dropped.
#[derive(Clone)]
pub struct DevIdp {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<Provider>,
    router: axum::Router,
    local_addr: SocketAddr,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone and the server stops: end the live streams.
        self.provider.close();
    }
}

impl std::fmt::Debug for DevIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevIdp")
            .field("host", &self.host())
            .finish_non_exhaustive()
    }
}

/// Other `host:port` names a browser on this machine may use for a server
/// bound to `addr`: the loopback names, when it listens on loopback or on
/// every address.
fn loopback_aliases(addr: SocketAddr) -> Vec<String> {
    let ip = addr.ip();
    if !(ip.is_loopback() || ip.is_unspecified()) {
        return Vec::new();
    }
    let port = addr.port();
    vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ]
}

/// `http://{addr}`, naming loopback when bound to the unspecified address.
fn default_host(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

impl DevIdp {
    /// Starts a provider on an ephemeral loopback port (`127.0.0.1:0`).
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] when the configuration is
    /// not usable (see [`DevIdpConfig::validate`]).
    pub async fn start(config: DevIdpConfig) -> io::Result<DevIdp> {
        Self::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config).await
    }

    /// Starts a provider on `addr`. Its host is `http://{bound address}`
    /// (loopback when `addr` is unspecified, e.g. `0.0.0.0`).
    pub async fn start_on(addr: SocketAddr, config: DevIdpConfig) -> io::Result<DevIdp> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve(listener, None, config).await
    }

    /// Starts a provider on an already bound `listener`. `public_host`
    /// (e.g. `http://devidp.local:8080`) replaces the host the provider
    /// names itself by: the issuer, the endpoints in discovery, the `aud`
    /// client assertions must carry.
    pub async fn serve(
        listener: TcpListener,
        public_host: Option<String>,
        config: DevIdpConfig,
    ) -> io::Result<DevIdp> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let local_addr = listener.local_addr()?;
        let host = public_host.unwrap_or_else(|| default_host(local_addr));
        let key = tokio::task::spawn_blocking(ProviderKey::generate)
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)?;
        let aliases = loopback_aliases(local_addr);
        let provider = Provider::with_aliases(&host, &aliases, config, key)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let app = crate::routes::router(Arc::clone(&provider));
        let router = app.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // A send or a dropped sender (last handle gone) both stop.
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = stopped {
                tracing::error!(%e, "the dev IdP server stopped with an error");
            }
        });
        tracing::info!(%host, "dev IdP listening (not a production IdP)");
        Ok(DevIdp {
            inner: Arc::new(Inner {
                provider,
                router,
                local_addr,
                shutdown: Mutex::new(Some(tx)),
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// An [`HttpClient`](onesoidc_http::HttpClient) that hands requests
    /// straight to this provider's routes, without sockets. With it, a test
    /// can pause tokio's clock and still talk to the provider: every timer on
    /// both sides is then virtual and the test runs in milliseconds.
    ///
    /// The request's path selects the route; its scheme and host are ignored.
    pub fn in_process_client(&self) -> crate::InProcessClient {
        crate::InProcessClient::new(self.inner.router.clone())
    }

    /// Creates a device identity in `dir` the way `onesoidc register` would
    /// leave it (`device.yml` and `private.pem`, mode 0600), with a fresh
    /// key of `key_type` registered with this provider.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// let idp = onesoidc_devidp::DevIdp::start(Default::default()).await?;
    /// let dir = tempfile::tempdir()?;
    /// let paths = idp.provision_device(dir.path(), onesoidc_core::KeyType::EccP256)?;
    /// let yaml = std::fs::read_to_string(&paths.config)?;
    /// let config = onesoidc_core::DeviceConfig::from_yaml_str(&yaml, &paths.config).unwrap();
    /// assert_eq!(config.registration().unwrap().issuer.as_str(), idp.issuer());
    /// # Ok(()) }
    /// ```
    pub fn provision_device(
        &self,
        dir: &std::path::Path,
        key_type: onesoidc_core::KeyType,
    ) -> io::Result<onesoidc_fs::IdentityPaths> {
        let signer = onesoidc_core::PemSigner::generate(key_type).map_err(io::Error::other)?;
        let ids = self
            .try_register_device(&signer.public_jwk())
            .map_err(io::Error::other)?;
        let paths = onesoidc_fs::IdentityPaths::new(dir.join("device.yml"), dir);
        let config = onesoidc_core::DeviceConfig {
            id: ids.device_id,
            client_id: Some(ids.client_id.into()),
            host: Some(self.host()),
            domain: Some("devidp.local".into()),
            key_type,
            key_security: onesoidc_core::KeySecurity::Default,
            is_managed: true,
            title: Some("dev-idp device".into()),
            location: None,
            role: Some("server".into()),
            config_version: Some("0.0.3".into()),
            initiated_on: None,
            extra: Default::default(),
            path: paths.config.clone(),
        };
        let yaml = config.to_yaml_string().map_err(io::Error::other)?;
        let key = signer.private_key_pem().map_err(io::Error::other)?;
        onesoidc_fs::write_atomically(&[
            onesoidc_fs::NewFile::new(&paths.private_key(), key.as_bytes(), 0o600),
            onesoidc_fs::NewFile::new(&paths.config, yaml.as_bytes(), 0o644),
        ])?;
        Ok(paths)
    }

    fn provider(&self) -> &Provider {
        &self.inner.provider
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (`host` in device.yml).
    pub fn host(&self) -> String {
        self.provider().host.clone()
    }

    /// The console's address: [`DevIdp::host`] + `/`. A browser there sees
    /// what is pending and what happened, and approves or denies with a
    /// click (not part of OnesID).
    pub fn console_url(&self) -> String {
        format!("{}/", self.provider().host)
    }

    /// The `cb_url` of QR session `session_id`: what its QR code encodes.
    /// The phone app `POST`s it; a browser that opens it (`GET`, e.g. a
    /// phone's camera app) gets a page to pick a user and confirm.
    pub fn cb_url(&self, session_id: &str) -> String {
        self.provider().cb_url(session_id)
    }

    /// The issuer: [`DevIdp::host`] + `/oidc`.
    pub fn issuer(&self) -> String {
        self.provider().issuer.clone()
    }

    /// The socket address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// `{issuer}/token`.
    pub fn token_endpoint(&self) -> String {
        self.provider().token_endpoint.clone()
    }

    /// `{issuer}/backchannel`.
    pub fn backchannel_endpoint(&self) -> String {
        self.provider().backchannel_endpoint.clone()
    }

    /// `{issuer}/token/introspection`.
    pub fn introspection_endpoint(&self) -> String {
        self.provider().introspection_endpoint.clone()
    }

    /// `{issuer}/token/revocation`.
    pub fn revocation_endpoint(&self) -> String {
        self.provider().revocation_endpoint.clone()
    }

    /// Signs tokens with a new key from now on (the old one stays
    /// published beside it at `/oidc/jwks`, and the one before is dropped),
    /// as a provider rotating its keys does; also `POST /control/keys/rotate`.
    /// Returns the new key's `kid`.
    pub async fn rotate_signing_key(&self) -> Result<String, String> {
        let key = tokio::task::spawn_blocking(crate::provider_key::ProviderKey::generate)
            .await
            .map_err(|e| format!("generating the key failed: {e}"))??;
        Ok(self.provider().rotate_key(key).0)
    }

    /// Starts a new DPoP nonce window now (also `POST
    /// /control/dpop/nonce/rotate`) and returns its nonce: proofs with the
    /// nonce before it are still accepted, those with older ones are
    /// answered `use_dpop_nonce`. Only matters with
    /// [`DevIdpConfig::dpop_nonce`].
    ///
    /// ```
    /// use onesoidc_devidp::{DevIdp, DevIdpConfig};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let idp = DevIdp::start(DevIdpConfig { dpop_nonce: true, ..DevIdpConfig::default() }).await?;
    /// let first = idp.rotate_dpop_nonce();
    /// assert_ne!(idp.rotate_dpop_nonce(), first, "a new window, a new nonce");
    /// idp.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn rotate_dpop_nonce(&self) -> String {
        self.provider().dpop_nonces.rotate()
    }

    /// `{issuer}/jwks`.
    pub fn jwks_uri(&self) -> String {
        self.provider().jwks_uri.clone()
    }

    /// The configuration the provider started with (the auto-approve policy
    /// may have changed since: see [`DevIdp::auto_approve`]).
    pub fn config(&self) -> &DevIdpConfig {
        &self.provider().config
    }

    /// Registers a device key under fresh `device_id` and `client_id` UUIDs;
    /// its client assertions must then verify with `public_jwk`.
    ///
    /// # Panics
    ///
    /// If `public_jwk` is not a usable RSA (≥ 2048 bits) or P-256/P-384/P-521
    /// public key, or its `alg` does not fit the key. Use
    /// [`DevIdp::try_register_device`] to get an error instead.
    pub fn register_device(&self, public_jwk: &PublicJwk) -> RegisteredDevice {
        match self.try_register_device(public_jwk) {
            Ok(ids) => ids,
            Err(e) => panic!("DevIdp::register_device: {e}"),
        }
    }

    /// Like [`DevIdp::register_device`], with an error for an unusable key.
    pub fn try_register_device(
        &self,
        public_jwk: &PublicJwk,
    ) -> Result<RegisteredDevice, ControlError> {
        self.provider().register_key(public_jwk)
    }

    /// Registers a device under the ids of `seed`.
    pub fn add_device(&self, seed: &DeviceSeed) -> Result<(), ControlError> {
        let ids = RegisteredDevice {
            device_id: seed.device_id.clone(),
            client_id: seed.client_id.clone(),
        };
        self.provider().add_device(&ids, &seed.public_jwk)
    }

    /// Approves a pending CIBA request as the user it names.
    pub fn approve_ciba(&self, auth_req_id: &str) -> Result<(), ControlError> {
        self.provider()
            .decide_ciba(auth_req_id, UserDecision::Approve)
    }

    /// Denies a pending CIBA request; the next poll gets `access_denied`.
    pub fn deny_ciba(&self, auth_req_id: &str) -> Result<(), ControlError> {
        self.provider().decide_ciba(auth_req_id, UserDecision::Deny)
    }

    /// Waits until a CIBA request arrives that no earlier call returned,
    /// and returns it (requests are handed out once each, in order).
    ///
    /// # Panics
    ///
    /// When none arrives within [`WAIT_LIMIT`] (of tokio's time, which a
    /// paused test clock skips through): a test helper fails the test
    /// instead of hanging it.
    pub async fn next_ciba_request(&self) -> CibaRequestInfo {
        within("a CIBA request", self.provider().ciba_events.next()).await
    }

    /// The CIBA requests waiting for the user's answer.
    pub fn pending_ciba_requests(&self) -> Vec<CibaRequestInfo> {
        self.provider().pending_ciba()
    }

    /// `username` scans QR session `session_id`, as the phone app's
    /// `POST {cb_url}` would: the session becomes `scanned`.
    pub fn simulate_qr_scan(&self, session_id: &str, username: &str) -> Result<(), ControlError> {
        self.provider().scan_qr(session_id, username)
    }

    /// The person cancels QR session `session_id` on their phone: the
    /// session becomes `cancelled`, and the device's wait ends with
    /// `Error::Cancelled`.
    pub fn simulate_qr_cancel(&self, session_id: &str) -> Result<(), ControlError> {
        self.provider().cancel_qr_on_phone(session_id)
    }

    /// Waits for the next QR session created (each returned once) and
    /// returns its `session_id`.
    ///
    /// # Panics
    ///
    /// When none is created within [`WAIT_LIMIT`].
    pub async fn next_qr_session(&self) -> String {
        within("a QR session", self.provider().qr_events.next()).await
    }

    /// Approves a pending registration: the device gets fresh `deviceId`
    /// and `clientId` and its key is registered for client authentication.
    pub fn approve_registration(&self, verification_code: &str) -> Result<(), ControlError> {
        self.provider()
            .decide_registration(verification_code, UserDecision::Approve)
            .map(drop)
    }

    /// Rejects a pending registration.
    pub fn reject_registration(&self, verification_code: &str) -> Result<(), ControlError> {
        self.provider()
            .decide_registration(verification_code, UserDecision::Deny)
            .map(drop)
    }

    /// Waits for the next registration request (each returned once) and
    /// returns its verification code.
    ///
    /// # Panics
    ///
    /// When none arrives within [`WAIT_LIMIT`].
    pub async fn next_registration(&self) -> String {
        within(
            "a registration request",
            self.provider().registration_events.next(),
        )
        .await
    }

    /// Every opaque secret this provider has handed out and still knows:
    /// access tokens, refresh tokens (rotated ones too) and
    /// `login_hint_token`s. Tests search logs for these exact values.
    pub fn issued_secrets(&self) -> Vec<String> {
        let store = self.provider().lock();
        store
            .access_tokens
            .keys()
            .chain(store.refresh_tokens.keys())
            .chain(store.login_hint_tokens.keys())
            .cloned()
            .collect()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.provider().lock().stats.clone()
    }

    /// Sets (or with `None` clears) the auto-approve policy for requests
    /// that arrive from now on.
    pub fn set_auto_approve(&self, policy: Option<AutoApprove>) {
        self.provider().lock().auto_approve = policy;
    }

    /// The auto-approve policy in force.
    pub fn auto_approve(&self) -> Option<AutoApprove> {
        self.provider().auto_approve()
    }

    /// Stops accepting connections, lets open ones finish (up to 5 s) and
    /// waits for the server task. Other handles stay valid for the control
    /// methods, but the HTTP server is gone.
    pub async fn shutdown(self) {
        // Open console pages keep a live stream each: end them first, so
        // the graceful shutdown does not wait for the browser.
        self.inner.provider.close();
        let sender = self
            .inner
            .shutdown
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut task) = task
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            tracing::warn!("dev IdP connections did not close in time; aborting");
            task.abort();
        }
        tracing::info!("dev IdP stopped");
    }
}

/// How long [`DevIdp::next_ciba_request`], [`DevIdp::next_qr_session`]
/// and [`DevIdp::next_registration`] wait before they panic.
pub const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// `wait`'s output, or a panic naming `what` after [`WAIT_LIMIT`].
async fn within<T>(what: &str, wait: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT_LIMIT, wait).await {
        Ok(item) => item,
        Err(_) => panic!("dev IdP: no {what} arrived within {WAIT_LIMIT:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_servers_answer_to_every_loopback_name() {
        assert_eq!(
            loopback_aliases("0.0.0.0:8080".parse().unwrap()),
            ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"]
        );
        assert!(loopback_aliases("10.1.2.3:9".parse().unwrap()).is_empty());
    }

    #[test]
    fn unspecified_addresses_name_loopback() {
        assert_eq!(
            default_host("0.0.0.0:8080".parse().unwrap()),
            "http://127.0.0.1:8080"
        );
        assert_eq!(default_host("[::]:80".parse().unwrap()), "http://[::1]:80");
        assert_eq!(
            default_host("10.1.2.3:9".parse().unwrap()),
            "http://10.1.2.3:9"
        );
    }
}
