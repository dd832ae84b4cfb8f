//! [`ReqwestClient`]: the default backend (feature `reqwest`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::policy::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_TIMEOUT, ResponseUri, body_too_large, check_scheme,
};
use crate::{BoxFuture, HttpClient, HttpRequest, HttpResponse, TransportError, TransportErrorKind};

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The default [`HttpClient`]: reqwest with rustls, pooled, hardened.
///
/// It enforces the [`Policy`](crate::Policy) rules itself too (defence in
/// depth): `https://` except loopback, no redirects, 1 MiB bodies (stopping
/// as soon as a body passes the limit), a connect and a whole-request
/// timeout. It never sends loopback requests through an `HTTP(S)_PROXY`.
///
/// The reqwest client inside is built on the first request (and shared by
/// clones): loading the system's root certificates takes milliseconds, and
/// a program that answers from cached tokens never needs them. An error
/// building it is that first request's error.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use onesoidc_http::{HttpClient, ReqwestClient, TransportErrorKind};
/// let client = ReqwestClient::new().unwrap();
/// // Plain http to a host that is not loopback: refused, nothing is sent.
/// let request = http::Request::post("http://idp.example.com/oidc/token").body(Vec::new()).unwrap();
/// assert_eq!(client.execute(request).await.unwrap_err().kind, TransportErrorKind::InsecureUrl);
/// # }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    inner: Arc<OnceLock<reqwest::Client>>,
    /// How to build `inner` on first use (unused after `from_client`).
    settings: Arc<ReqwestClientBuilder>,
    max_body_bytes: usize,
    allow_insecure_http: bool,
}

/// Builds a [`ReqwestClient`]; every setting has the documented default.
///
/// ```
/// use std::time::Duration;
/// let builder = onesoidc_http::ReqwestClient::builder().timeout(Duration::from_secs(5));
/// assert!(format!("{builder:?}").contains("timeout: 5s"));
/// let client = builder.build().unwrap();
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "reqwest")))]
#[derive(Debug, Clone)]
pub struct ReqwestClientBuilder {
    connect_timeout: Duration,
    timeout: Duration,
    max_body_bytes: usize,
    allow_insecure_http: bool,
    user_agent: String,
}

impl Default for ReqwestClientBuilder {
    fn default() -> Self {
        ReqwestClientBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allow_insecure_http: false,
            user_agent: concat!("onesoidc/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

impl ReqwestClientBuilder {
    /// Connect timeout (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whole-request timeout, body included (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Largest response body accepted (default 1 MiB).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// Allow `http://` to hosts other than loopback (default: refused).
    /// Only for closed test networks: tokens and assertions travel in clear.
    pub fn allow_insecure_http(mut self, allow: bool) -> Self {
        self.allow_insecure_http = allow;
        self
    }

    /// The `User-Agent` header (default `onesoidc/<version>`).
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Builds the client (the reqwest client inside on its first request).
    pub fn build(self) -> Result<ReqwestClient, TransportError> {
        Ok(ReqwestClient {
            inner: Arc::new(OnceLock::new()),
            max_body_bytes: self.max_body_bytes,
            allow_insecure_http: self.allow_insecure_http,
            settings: Arc::new(self),
        })
    }

    fn build_reqwest(&self) -> Result<reqwest::Client, TransportError> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(&self.user_agent)
            .proxy(loopback_bypass())
            .build()
            .map_err(|e| {
                TransportError::new(
                    TransportErrorKind::Other,
                    format!("cannot build the HTTP client: {e}"),
                )
            })
    }
}

/// The environment's `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (and
/// `NO_PROXY`) as reqwest reads them, but never for loopback, whatever
/// `NO_PROXY` says: a request to a local provider must not go through a proxy.
fn loopback_bypass() -> reqwest::Proxy {
    reqwest::Proxy::custom(|url| proxy_for(url, |name| std::env::var(name).ok()))
        .no_proxy(reqwest::NoProxy::from_env())
}

/// The proxy the environment (`env`) names for `url`: none for loopback.
fn proxy_for(url: &reqwest::Url, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    if url.host_str().is_some_and(crate::is_loopback) {
        return None;
    }
    let names: &[&str] = match url.scheme() {
        "https" => &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"],
        _ => &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"],
    };
    names
        .iter()
        .find_map(|name| env(name).filter(|v| !v.is_empty()))
}

impl ReqwestClient {
    /// A client with the default settings.
    pub fn new() -> Result<Self, TransportError> {
        Self::builder().build()
    }

    /// A builder with the default settings.
    pub fn builder() -> ReqwestClientBuilder {
        ReqwestClientBuilder::default()
    }

    /// A client whose own limits are `policy`'s (insecure http opt-in,
    /// exchange timeout, body limit): the default backend of the crates
    /// above this one.
    ///
    /// ```
    /// let policy = onesoidc_http::Policy::default();
    /// let client = onesoidc_http::ReqwestClient::for_policy(&policy).unwrap();
    /// ```
    pub fn for_policy(policy: &crate::Policy) -> Result<Self, TransportError> {
        Self::builder()
            .allow_insecure_http(policy.insecure_http_allowed())
            .timeout(policy.exchange_timeout())
            .max_body_bytes(policy.body_limit())
            .build()
    }

    /// Wraps a reqwest client you configured (your proxy, your CA for an
    /// on-premises OnesID). Its own settings apply; this adds the checks
    /// that do not depend on them: `https://` except loopback, the 1 MiB
    /// body limit, and a refusal of any response that came through a
    /// redirect (reqwest follows up to 10 by default).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use onesoidc_http::{HttpClient, TransportErrorKind};
    /// let configured = reqwest::Client::builder().build().unwrap();
    /// let client = onesoidc_http::ReqwestClient::from_client(configured);
    /// // Whatever the client was configured to do, plain http off loopback is refused.
    /// let request = http::Request::get("http://idp.example.com/oidc/jwks").body(Vec::new()).unwrap();
    /// assert_eq!(client.execute(request).await.unwrap_err().kind, TransportErrorKind::InsecureUrl);
    /// # }
    /// ```
    pub fn from_client(client: reqwest::Client) -> Self {
        ReqwestClient {
            inner: Arc::new(OnceLock::from(client)),
            settings: Arc::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allow_insecure_http: false,
        }
    }

    /// The reqwest client, built now if this is the first request.
    fn reqwest(&self) -> Result<&reqwest::Client, TransportError> {
        if let Some(client) = self.inner.get() {
            return Ok(client);
        }
        let built = self.settings.build_reqwest()?;
        // Two first requests at once may both build one; the first stored wins.
        Ok(self.inner.get_or_init(|| built))
    }

    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        check_scheme(request.uri(), self.allow_insecure_http)?;
        let request = reqwest::Request::try_from(request)
            .map_err(|e| TransportError::new(TransportErrorKind::InvalidRequest, e.to_string()))?;
        let requested = request.url().clone();
        let mut response = self.reqwest()?.execute(request).await.map_err(classify)?;
        if response.url() != &requested {
            return Err(TransportError::new(
                TransportErrorKind::Redirect,
                format!(
                    "the HTTP client followed a redirect to {}://{}{}; redirects are never followed: configure it not to follow them",
                    response.url().scheme(),
                    response.url().host_str().unwrap_or_default(),
                    response.url().path()
                ),
            ));
        }
        if let Some(length) = response.content_length()
            && length > self.max_body_bytes as u64
        {
            return Err(body_too_large(self.max_body_bytes));
        }
        let mut builder = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = builder.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        if let Ok(uri) = response.url().as_str().parse::<http::Uri>() {
            builder = builder.extension(ResponseUri(uri));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(body_too_large(self.max_body_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        builder
            .body(body)
            .map_err(|e| TransportError::new(TransportErrorKind::Other, e.to_string()))
    }
}

impl HttpClient for ReqwestClient {
    fn execute(&self, request: HttpRequest) -> BoxFuture<'_, Result<HttpResponse, TransportError>> {
        Box::pin(self.send(request))
    }
}

fn classify(e: reqwest::Error) -> TransportError {
    let kind = if e.is_timeout() {
        TransportErrorKind::Timeout
    } else if e.is_connect() {
        TransportErrorKind::Connect
    } else if e.is_builder() {
        TransportErrorKind::InvalidRequest
    } else {
        TransportErrorKind::Other
    };
    // reqwest's Display is terse; its sources say what actually failed.
    // The URL is dropped: its query could carry a secret.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    TransportError::new(kind, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_never_goes_through_a_proxy() {
        let env = |name: &str| {
            matches!(name, "HTTP_PROXY" | "HTTPS_PROXY" | "ALL_PROXY")
                .then(|| "http://proxy.corp:3128".to_string())
        };
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        for local in [
            "http://127.0.0.1:8080/oidc/token",
            "http://localhost:8080/oidc/token",
            "http://[::1]:8080/oidc/token",
            "https://127.0.0.5/oidc",
        ] {
            assert_eq!(proxy_for(&url(local), env), None, "{local}");
        }
        assert_eq!(
            proxy_for(&url("https://idp.example.com/oidc/token"), env).as_deref(),
            Some("http://proxy.corp:3128")
        );
    }

    /// SECURITY.md and the docs promise these defaults.
    #[test]
    fn the_default_timeouts_are_the_documented_ones() {
        assert_eq!(DEFAULT_CONNECT_TIMEOUT, Duration::from_secs(10));
        assert_eq!(crate::DEFAULT_TIMEOUT, Duration::from_secs(30));
        let builder = ReqwestClient::builder();
        assert_eq!(builder.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(builder.timeout, crate::DEFAULT_TIMEOUT);
        assert_eq!(
            crate::Policy::default().exchange_timeout(),
            crate::DEFAULT_TIMEOUT
        );
    }

    /// Nothing is loaded until a request needs it; clones share what is
    /// then built.
    #[tokio::test]
    async fn the_reqwest_client_is_built_on_the_first_request() {
        let client = ReqwestClient::new().unwrap();
        let clone = client.clone();
        assert!(client.inner.get().is_none());
        let refused = http::Request::get("http://idp.example.com/")
            .body(Vec::new())
            .unwrap();
        let error = crate::HttpClient::execute(&client, refused)
            .await
            .unwrap_err();
        assert_eq!(error.kind, crate::TransportErrorKind::InsecureUrl);
        assert!(
            client.inner.get().is_none(),
            "a refused request builds nothing"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        drop(listener);
        let request = http::Request::get(url).body(Vec::new()).unwrap();
        let _ = crate::HttpClient::execute(&client, request).await;
        assert!(clone.inner.get().is_some(), "built once, shared by clones");
    }

    /// A server that accepts and never answers: the request ends with a
    /// timeout after the configured whole-request time.
    #[tokio::test]
    async fn the_request_timeout_is_applied() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/oidc/token", listener.local_addr().unwrap());
        let client = ReqwestClient::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let request = http::Request::post(url).body(Vec::new()).unwrap();
        let error = crate::HttpClient::execute(&client, request)
            .await
            .unwrap_err();
        assert_eq!(error.kind, crate::TransportErrorKind::Timeout, "{error:?}");
        drop(listener);
    }
}
