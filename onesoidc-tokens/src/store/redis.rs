//! [`RedisTokenStore`]: one token and one refresh shared across machines.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onesoidc_core::TokenSet;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ClientTlsConfig, Script, TlsCertificates};
use tokio::sync::Mutex;

use super::record::{decode, encode, expiry_rank};
use super::{
    HeldLease, Lease, SaveMode, Saved, StoreError, StoreFuture, StoreKey, Stored, TokenStore,
};

/// Default [`RedisTokenStoreBuilder::key_prefix`].
pub const DEFAULT_KEY_PREFIX: &str = "onesoidc:";
/// Default [`RedisTokenStoreBuilder::timeout`]: for connecting and for each answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default [`RedisTokenStoreBuilder::refresh_token_ttl`]: 30 days.
pub const DEFAULT_REFRESH_TOKEN_TTL: Duration = Duration::from_secs(30 * 86_400);
/// How often a waiter looks at the lease if no release message arrives (a
/// holder that died loses the lease only when its time limit passes, which
/// sends no message).
const LEASE_POLL: Duration = Duration::from_millis(250);

/// Takes the lease if nobody holds it, and returns its fencing number
/// (larger than every one granted before for the key); nil if held.
const LEASE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false
";

/// Extends the lease by its time limit if it is still ours: 1, else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Saves tokens: a login (`replace`) in the next generation; a refresh
/// (`refreshed`) only if no newer lease was granted, the record is still
/// of the generation it loaded (or gone), and it holds no tokens that
/// expire later. Returns `{outcome, generation, stored record or ''}`.
const SAVE: &str = r"
local generation = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if ARGV[3] == 'replace' then
  generation = generation + 1
else
  if ARGV[6] ~= '' and tonumber(redis.call('GET', KEYS[2]) or '0') > tonumber(ARGV[6]) then
    return {'fenced', 0, ''}
  end
  local record = redis.call('HGET', KEYS[1], 'record') or ''
  if redis.call('EXISTS', KEYS[1]) == 1 and generation ~= tonumber(ARGV[5]) then
    return {'superseded', generation, record}
  end
  local stored = redis.call('HGET', KEYS[1], 'expires_at')
  if stored and tonumber(stored) > tonumber(ARGV[2]) then
    return {'kept', generation, record}
  end
  generation = tonumber(ARGV[5])
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'expires_at', ARGV[2], 'generation', generation)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {'written', generation, ''}
";

/// Replaces the tokens by a tombstone of the next generation.
const REMOVE: &str = r"
local generation = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0') + 1
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'generation', generation)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return generation
";

/// Deletes the lease only if it is still ours, and wakes the waiters.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[2], 'released')
  return 1
end
return 0
";

/// Tokens in Redis, shared by managers on many machines (feature `redis`).
///
/// - Keys: `<prefix>{<owner fingerprint>:<name>}:tokens` (a hash with the
///   record, its expiry and its generation, with a time to live: the
///   access token's lifetime, or [`refresh_token_ttl`](RedisTokenStoreBuilder::refresh_token_ttl)
///   when there is a refresh token; after a `remove`, a tombstone holding
///   only the generation, kept as long), `…:lease`, `…:fence` (the last
///   fencing number granted) and the channel `…:released`. The braces keep
///   a key's names in one cluster slot; the owner fingerprint keeps
///   identities sharing one Redis apart.
/// - The lease is `SET … NX PX <hold>` with the value `<pid>:<random>`
///   (the holder's process id, then 128 random bits) and `INCR …:fence`,
///   in one script; the holder renews it every third of `hold` (a script
///   that extends it only if it is still ours) and confirms it before
///   spending a refresh token; it is released by a script that deletes it
///   only if it is still ours and publishes on the channel. Waiters
///   subscribe and also look every 250 ms (a holder that dies or stops
///   loses the lease when its time limit passes).
/// - Saves and removes are one script each: the generation and fencing
///   checks of [`SaveMode::Refreshed`] and the write happen together.
/// - URLs: `redis://[user[:password]@]host[:port][/db]`, `rediss://` (TLS,
///   rustls with the system's roots, or only the CA certificates given to
///   [`ca_certificates`](RedisTokenStoreBuilder::ca_certificates); a client
///   certificate with
///   [`client_certificate`](RedisTokenStoreBuilder::client_certificate)),
///   `redis+unix:///path/to/socket[?user=…&pass=…&db=…]` (or `unix://`).
///   The password, in whichever of these places, never appears in `Debug`,
///   `Display`, logs or errors: they show `***`.
/// - Every call fails after [`timeout`](RedisTokenStoreBuilder::timeout)
///   (default 2 s) and drops the connection; the next call reconnects.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use onesoidc_tokens::{RedisTokenStore, TokenManager, TokenOwner, device_refresh};
/// let client = onesoidc_flows::OnesIdClient::from_default_identity()?;
/// let store = RedisTokenStore::open("rediss://onesoidc:secret@redis.internal:6380/0")?;
/// let manager = TokenManager::builder("device", device_refresh(client.clone()))
///     .store(Arc::new(store), TokenOwner::of(&client))
///     .build();
/// let token = manager.access_token().await?; // one refresh for every replica
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTokenStore {
    client: Client,
    shown: String,
    prefix: String,
    timeout: Duration,
    refresh_token_ttl: Duration,
    /// One multiplexed connection for every call (clones share it).
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
}

impl fmt::Debug for RedisTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStore")
            .field("url", &self.shown)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RedisTokenStore`].
#[derive(Clone)]
#[must_use]
pub struct RedisTokenStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    refresh_token_ttl: Duration,
    /// For `rediss://`: the CA certificates to trust instead of the system's
    /// roots, and a client certificate. `Debug` redacts both.
    tls: TlsCertificates,
}

impl fmt::Debug for RedisTokenStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenStoreBuilder")
            .field("url", &redacted_url(&self.url))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RedisTokenStoreBuilder {
    /// Every key starts with `prefix`. Default `onesoidc:`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a connection or an answer may take. Default 2 s; at least 1 ms.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long tokens with a refresh token are kept (the provider does not
    /// say how long a refresh token lives). Default 30 days.
    pub fn refresh_token_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_token_ttl = ttl;
        self
    }

    /// For `rediss://`: trust the CA certificates in `pem` (one or more,
    /// PEM) instead of the system's roots, e.g. a private CA that signed
    /// the server's certificate. The CLI's `--store-ca FILE`.
    ///
    /// ```
    /// # fn run(ca_pem: Vec<u8>) -> Result<(), onesoidc_tokens::StoreError> {
    /// use onesoidc_tokens::RedisTokenStore;
    /// let store = RedisTokenStore::builder("rediss://redis.internal:6380")
    ///     .ca_certificates(ca_pem)
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn ca_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.root_cert = Some(pem.into());
        self
    }

    /// For `rediss://` to a server that asks for one
    /// (`tls-auth-clients yes`): this client certificate chain and its
    /// private key, both PEM. The CLI's `--store-cert FILE --store-key FILE`.
    pub fn client_certificate(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client_tls = Some(ClientTlsConfig {
            client_cert: certificate_pem.into(),
            client_key: key_pem.into(),
        });
        self
    }

    /// The store. Fails on a URL the `redis` crate cannot use, and on
    /// certificates that do not parse or are given for a URL that is not
    /// `rediss://`; connects only on first use.
    pub fn build(self) -> Result<RedisTokenStore, StoreError> {
        let shown = redacted_url(&self.url);
        let config_error =
            |e: redis::RedisError| StoreError::Config(format!("cannot use Redis URL {shown}: {e}"));
        // (With certificates, the `redis` crate refuses a URL without TLS.)
        let client = if self.tls.root_cert.is_some() || self.tls.client_tls.is_some() {
            Client::build_with_tls(self.url.as_str(), self.tls).map_err(config_error)?
        } else {
            Client::open(self.url.as_str()).map_err(config_error)?
        };
        // Belt and braces: whatever form the password took, it is not shown.
        let shown = match client.get_connection_info().redis_settings().password() {
            Some(password) if shown.contains(password) => "(a Redis URL with a password)".into(),
            _ => shown,
        };
        Ok(RedisTokenStore {
            client,
            shown,
            prefix: self.prefix,
            timeout: self.timeout,
            refresh_token_ttl: self.refresh_token_ttl,
            connection: Arc::default(),
        })
    }
}

/// `url` with its password replaced by `***`, for messages: the one in
/// `user:password@` and the one in a query (`?pass=`, `?password=`, as
/// `redis+unix://` and `unix://` URLs carry it).
fn redacted_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(an unparsable URL)".into();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let secret = key.to_ascii_lowercase().contains("pass");
                let value = if secret {
                    "***".into()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

impl RedisTokenStore {
    /// A store at `url` with every default; see [`RedisTokenStore::builder`].
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).build()
    }

    /// A builder for a store at `url`.
    pub fn builder(url: impl Into<String>) -> RedisTokenStoreBuilder {
        RedisTokenStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_KEY_PREFIX.into(),
            timeout: DEFAULT_TIMEOUT,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            tls: TlsCertificates {
                client_tls: None,
                root_cert: None,
            },
        }
    }

    /// Whether the URL carries a password (in any form the `redis` crate
    /// accepts), e.g. to warn that a command line showed it to every user.
    pub fn has_password(&self) -> bool {
        self.client
            .get_connection_info()
            .redis_settings()
            .password()
            .is_some()
    }

    fn keys(&self, key: &StoreKey) -> Keys {
        let base = format!(
            "{}{{{}:{}}}",
            self.prefix,
            key.owner().fingerprint(),
            key.escaped_name()
        );
        Keys {
            tokens: format!("{base}:tokens"),
            lease: format!("{base}:lease"),
            fence: format!("{base}:fence"),
            released: format!("{base}:released"),
        }
    }

    fn unavailable(&self, what: &str, error: impl fmt::Display) -> StoreError {
        StoreError::Unavailable {
            store: self.shown.clone(),
            message: format!("{what}: {error}"),
        }
    }

    /// The shared connection, connecting if there is none.
    async fn connection(&self) -> Result<MultiplexedConnection, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = &*slot {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.unavailable("cannot connect", e))?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `call` on the connection; on failure drops it (the next call
    /// reconnects) and names `what` in the error.
    async fn with_connection<T>(
        &self,
        what: &str,
        call: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        match tokio::time::timeout(self.timeout, call(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                *self.connection.lock().await = None;
                Err(self.unavailable(what, error))
            }
            Err(_) => {
                *self.connection.lock().await = None;
                Err(self.unavailable(what, format!("no answer within {:?}", self.timeout)))
            }
        }
    }

    /// How long Redis keeps `tokens`.
    fn ttl(&self, tokens: &TokenSet) -> Duration {
        let access = tokens
            .expires_at
            .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default());
        let ttl = match (&tokens.refresh_token, access) {
            (Some(_), Some(access)) => access.max(self.refresh_token_ttl),
            (Some(_), None) | (None, None) => self.refresh_token_ttl,
            (None, Some(access)) => access,
        };
        ttl.max(Duration::from_secs(1))
    }

    fn decode_or_ignore(&self, key: &StoreKey, bytes: &[u8]) -> Option<TokenSet> {
        match decode(key, bytes) {
            Ok(stored) => stored.tokens,
            Err(ignored) => {
                ignored.log(&self.shown, key.name());
                None
            }
        }
    }

    async fn take_lease(&self, key: &StoreKey, hold: Duration) -> Result<Lease, StoreError> {
        use tokio_stream::StreamExt as _;
        let keys = self.keys(key);
        // The holder's process id first, so an operator (or a test) can
        // tell who holds it: `GET <prefix>{…}:lease`.
        let id = format!("{}:{:032x}", std::process::id(), rand::random::<u128>());
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut subscription = None;
        loop {
            let fence: Option<u64> = self
                .with_connection("cannot take the refresh lease", async |c| {
                    Script::new(LEASE)
                        .key(&keys.lease)
                        .key(&keys.fence)
                        .arg(&id)
                        .arg(hold_ms)
                        .invoke_async(c)
                        .await
                })
                .await?;
            if let Some(fence) = fence {
                let store = self.clone_handle();
                let renewer = tokio::spawn(renew_until_lost(
                    store.clone(),
                    keys.lease.clone(),
                    id.clone(),
                    hold,
                ));
                return Ok(Lease::new(RedisLease {
                    store,
                    keys,
                    id,
                    fence,
                    hold,
                    renewer,
                }));
            }
            // Held by another process: wait for its release message, then
            // try again. Subscribe first, then try once more, so a release
            // in between is not missed.
            let Some(pubsub) = &mut subscription else {
                let mut pubsub = tokio::time::timeout(self.timeout, self.client.get_async_pubsub())
                    .await
                    .map_err(|_| self.unavailable("cannot subscribe", "no answer in time"))?
                    .map_err(|e| self.unavailable("cannot subscribe", e))?;
                pubsub
                    .subscribe(&keys.released)
                    .await
                    .map_err(|e| self.unavailable("cannot subscribe", e))?;
                subscription = Some(pubsub);
                continue;
            };
            let mut messages = pubsub.on_message();
            let _ = tokio::time::timeout(LEASE_POLL, messages.next()).await;
        }
    }

    fn clone_handle(&self) -> Arc<RedisTokenStore> {
        Arc::new(self.clone())
    }

    /// Extends lease `id` by `hold` if it is still ours.
    async fn renew(&self, lease: &str, id: &str, hold: Duration) -> Result<bool, StoreError> {
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX).max(1);
        self.with_connection("cannot renew the refresh lease", async |c| {
            Script::new(RENEW)
                .key(lease)
                .arg(id)
                .arg(hold_ms)
                .invoke_async::<i64>(c)
                .await
        })
        .await
        .map(|renewed| renewed == 1)
    }
}

/// Renews the lease every third of `hold` until it is lost (a failed call
/// is tried again at the next tick); aborted when the lease ends.
async fn renew_until_lost(store: Arc<RedisTokenStore>, lease: String, id: String, hold: Duration) {
    loop {
        tokio::time::sleep(hold / 3).await;
        match store.renew(&lease, &id, hold).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(store = %store.shown, "the refresh lease was lost before it was released (its time limit passed)");
                return;
            }
            Err(error) => {
                tracing::debug!("renewing the refresh lease failed, trying again: {error}")
            }
        }
    }
}

struct Keys {
    tokens: String,
    lease: String,
    fence: String,
    released: String,
}

struct RedisLease {
    store: Arc<RedisTokenStore>,
    keys: Keys,
    id: String,
    fence: u64,
    hold: Duration,
    renewer: tokio::task::JoinHandle<()>,
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

impl HeldLease for RedisLease {
    fn fence(&self) -> Option<u64> {
        Some(self.fence)
    }

    fn confirm(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if self
                .store
                .renew(&self.keys.lease, &self.id, self.hold)
                .await?
            {
                Ok(())
            } else {
                Err(self.store.unavailable(
                    "the refresh lease was lost",
                    "its time limit passed before it was renewed (a stopped process or a slow store); another process may hold it now",
                ))
            }
        })
    }

    fn release(self: Box<Self>) -> StoreFuture<'static, ()> {
        Box::pin(async move {
            self.renewer.abort();
            let (store, keys, id) = (self.store.clone(), &self.keys, &self.id);
            store
                .with_connection("cannot release the refresh lease", async |c| {
                    Script::new(RELEASE)
                        .key(&keys.lease)
                        .key(&keys.released)
                        .arg(id)
                        .invoke_async::<i64>(c)
                        .await
                })
                .await
                .map(drop)
        })
    }
}

impl TokenStore for RedisTokenStore {
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Stored> {
        Box::pin(async move {
            let keys = self.keys(key);
            let (record, generation): (Option<Vec<u8>>, Option<u64>) = self
                .with_connection("cannot read tokens", async |c| {
                    redis::cmd("HMGET")
                        .arg(&keys.tokens)
                        .arg("record")
                        .arg("generation")
                        .query_async(c)
                        .await
                })
                .await?;
            if record.is_none()
                && let Some(jkt) = &key.owner().dpop_jkt
            {
                tracing::debug!(
                    "no tokens under {} for this process's DPoP key {jkt}: bound tokens are kept per key, so tokens bound to another key (another dpop.pem, or the device key) are never adopted",
                    keys.tokens
                );
            }
            let tokens = record.and_then(|bytes| self.decode_or_ignore(key, &bytes));
            Ok(Stored::new(tokens, generation.unwrap_or(0)))
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a TokenSet,
        mode: SaveMode,
    ) -> StoreFuture<'a, Saved> {
        Box::pin(async move {
            let keys = self.keys(key);
            // The hash's `generation` field is the one that counts.
            let record = encode(key, Some(tokens), 0);
            let rank = expiry_rank(tokens);
            let ttl_ms = u64::try_from(self.ttl(tokens).as_millis()).unwrap_or(u64::MAX);
            let (mode, generation, fence) = match mode {
                SaveMode::Replace => ("replace", 0, None),
                SaveMode::Refreshed { generation, fence } => ("refreshed", generation, fence),
            };
            let (outcome, generation, stored): (String, u64, Vec<u8>) = self
                .with_connection("cannot save tokens", async |c| {
                    Script::new(SAVE)
                        .key(&keys.tokens)
                        .key(&keys.fence)
                        .arg(&record)
                        .arg(rank)
                        .arg(mode)
                        .arg(ttl_ms)
                        .arg(generation)
                        .arg(fence.map(|f| f.to_string()).unwrap_or_default())
                        .invoke_async(c)
                        .await
                })
                .await?;
            let stored = || {
                Some(&stored)
                    .filter(|bytes| !bytes.is_empty())
                    .and_then(|bytes| self.decode_or_ignore(key, bytes))
            };
            Ok(match outcome.as_str() {
                "fenced" => Saved::Fenced,
                "superseded" => Saved::Superseded(Box::new(Stored::new(stored(), generation))),
                "kept" => match stored() {
                    Some(newer) => Saved::KeptNewer(Box::new(newer)),
                    // Unusable tokens that expire later: not ours to replace.
                    None => Saved::Superseded(Box::new(Stored::new(None, generation))),
                },
                _ => Saved::Written { generation },
            })
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let keys = self.keys(key);
            let ttl_ms = u64::try_from(self.refresh_token_ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1000);
            self.with_connection("cannot remove tokens", async |c| {
                Script::new(REMOVE)
                    .key(&keys.tokens)
                    .arg(ttl_ms)
                    .invoke_async::<u64>(c)
                    .await
            })
            .await
        })
    }

    fn lease<'a>(&'a self, key: &'a StoreKey, hold: Duration) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move { self.take_lease(key, hold).await.map(Some) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of URL with a password the `redis` crate accepts (and
    /// `?password=`, which it does not), valid or not: the password is in
    /// none of `Debug` (store and builder), a configuration error, or a
    /// connection error, and `has_password` sees it.
    #[tokio::test]
    async fn passwords_never_show_in_any_url_form() {
        let with_password = [
            "redis://app:hunter2@127.0.0.1:1/0",
            "redis://:hunter2@127.0.0.1:1",
            "rediss://app:hunter2@127.0.0.1:1/0",
            "valkey://app:hun%74er2@127.0.0.1:1",
            "valkeys://:hunter2@127.0.0.1:1#insecure",
            "redis+unix:///nonexistent/redis.sock?pass=hunter2",
            "redis+unix:///nonexistent/redis.sock?user=app&pass=hunter2&db=1",
            "unix:///nonexistent/redis.sock?pass=hunter2",
            "valkey+unix:///nonexistent/redis.sock?pass=hun%74er2",
        ];
        let key = StoreKey::new(
            "device",
            super::super::TokenOwner::new("https://idp.example.com/oidc", "d1"),
        );
        for url in with_password {
            let builder = RedisTokenStore::builder(url).timeout(Duration::from_millis(200));
            let shown = format!("{builder:?}");
            assert!(
                !shown.contains("hunter2") && shown.contains("***"),
                "{shown}"
            );
            let store = builder.build().unwrap();
            assert!(store.has_password(), "{url}");
            let shown = format!("{store:?}");
            assert!(
                !shown.contains("hunter2") && shown.contains("***"),
                "{shown}"
            );
            let error = store.load(&key).await.unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
        }
        for unusable in [
            "redis+unix:///nonexistent/redis.sock?pass=hunter2&db=x",
            "redis://app:hunter2@127.0.0.1:1/x",
            "http://app:hunter2@example.com",
            "redis+unix:///x?password=hunter2&protocol=9",
        ] {
            let error = RedisTokenStore::open(unusable).unwrap_err().to_string();
            assert!(!error.contains("hunter2"), "{error}");
        }
        let without = RedisTokenStore::open("redis+unix:///run/redis.sock?user=app").unwrap();
        assert!(!without.has_password());
        assert!(format!("{without:?}").contains("user=app"));
    }

    #[test]
    fn certificates_need_tls_and_must_parse() {
        let error = RedisTokenStore::builder("redis://127.0.0.1")
            .ca_certificates(b"".to_vec())
            .build()
            .unwrap_err()
            .to_string();
        assert!(error.contains("rediss://"), "{error}");
        let error = RedisTokenStore::builder("rediss://127.0.0.1")
            .client_certificate(b"not a certificate".to_vec(), b"secret-key".to_vec())
            .build()
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret-key"), "{error}");
        let builder = RedisTokenStore::builder("rediss://127.0.0.1")
            .client_certificate(b"cert".to_vec(), b"secret-key".to_vec());
        assert!(!format!("{builder:?}").contains("secret-key"));
    }

    #[test]
    fn keys_share_a_cluster_slot_and_keep_owners_apart() {
        let store = RedisTokenStore::open("redis://127.0.0.1").unwrap();
        let owner = super::super::TokenOwner::new("https://idp.example.com/oidc", "d1");
        let keys = store.keys(&StoreKey::new("device", owner.clone()));
        let tag = format!("onesoidc:{{{}:device}}", owner.fingerprint());
        assert_eq!(keys.tokens, format!("{tag}:tokens"));
        assert_eq!(keys.lease, format!("{tag}:lease"));
        assert_eq!(keys.fence, format!("{tag}:fence"));
        assert_eq!(keys.released, format!("{tag}:released"));
    }
}
