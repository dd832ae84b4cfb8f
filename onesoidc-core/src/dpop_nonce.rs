//! DPoP server nonces (RFC 9449 §8, §9), sans-IO: reading a server's
//! `DPoP-Nonce`, recognizing its `use_dpop_nonce` challenge (a 400 from a
//! token endpoint, a 401 with `WWW-Authenticate: DPoP` from an
//! application), and remembering the latest nonce of each server.

use std::collections::HashMap;
use std::sync::Mutex;

use url::Url;

use crate::response::HttpResponse;

/// The request header that carries a DPoP proof.
pub const DPOP_HEADER: &str = "dpop";

/// The response header that carries a server's DPoP nonce.
pub const DPOP_NONCE_HEADER: &str = "dpop-nonce";

/// The OAuth error (token endpoint) and `WWW-Authenticate` error
/// (application) that ask for a proof with the server's nonce.
pub const USE_DPOP_NONCE: &str = "use_dpop_nonce";

/// The longest nonce kept; a longer one is ignored (a proof carries it).
pub const MAX_DPOP_NONCE_BYTES: usize = 1024;

/// How many servers' nonces a [`DpopNonces`] keeps; past that, one is
/// forgotten (its next request gets one more challenge).
const MAX_SERVERS: usize = 256;

/// The `DPoP-Nonce` of `response`, if it has a usable one: 1 to
/// [`MAX_DPOP_NONCE_BYTES`] characters of RFC 9449's `NQCHAR` (visible
/// ASCII but `"` and `\`).
///
/// ```
/// let response = http::Response::builder().status(200).header("DPoP-Nonce", "eyJ7S_zG.eyJH0-Z.HX4w-7v").body(Vec::new()).unwrap();
/// assert_eq!(onesoidc_core::dpop_nonce(&response), Some("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
/// ```
pub fn dpop_nonce(response: &HttpResponse) -> Option<&str> {
    dpop_nonce_in(response.headers())
}

/// [`dpop_nonce`] for any HTTP client's response headers (e.g. reqwest's).
pub fn dpop_nonce_in(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(DPOP_NONCE_HEADER)?.to_str().ok()?;
    is_usable_dpop_nonce(value).then_some(value)
}

/// Whether `value` can be a DPoP nonce: 1 to [`MAX_DPOP_NONCE_BYTES`]
/// characters of RFC 9449's `NQCHAR` (visible ASCII but `"` and `\`).
///
/// ```
/// use onesoidc_core::is_usable_dpop_nonce;
/// assert!(is_usable_dpop_nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
/// assert!(!is_usable_dpop_nonce("") && !is_usable_dpop_nonce("a b") && !is_usable_dpop_nonce("a\"b"));
/// ```
pub fn is_usable_dpop_nonce(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_DPOP_NONCE_BYTES
        && value
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// The nonce to retry with when `response` is a `use_dpop_nonce`
/// challenge: HTTP 400 with OAuth error `use_dpop_nonce` (a token
/// endpoint, RFC 9449 §8), or HTTP 401 with `WWW-Authenticate: DPoP
/// error="use_dpop_nonce"` (an application, §9), and a usable `DPoP-Nonce`.
/// `None` for any other answer (a challenge without a nonce cannot be met).
///
/// ```
/// let challenge = http::Response::builder().status(400)
///     .header("DPoP-Nonce", "n-2")
///     .body(br#"{"error":"use_dpop_nonce","error_description":"Authorization server requires nonce in DPoP proof"}"#.to_vec()).unwrap();
/// assert_eq!(onesoidc_core::dpop_nonce_challenge(&challenge), Some("n-2"));
///
/// let app = http::Response::builder().status(401)
///     .header("WWW-Authenticate", r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof""#)
///     .header("DPoP-Nonce", "n-3")
///     .body(Vec::new()).unwrap();
/// assert_eq!(onesoidc_core::dpop_nonce_challenge(&app), Some("n-3"));
/// ```
pub fn dpop_nonce_challenge(response: &HttpResponse) -> Option<&str> {
    dpop_nonce_challenge_in(response.status(), response.headers(), response.body())
}

/// [`dpop_nonce_challenge`] for any HTTP client's response: its status,
/// headers, and body (only read for a 400; pass `&[]` for an
/// application's answer).
pub fn dpop_nonce_challenge_in<'h>(
    status: http::StatusCode,
    headers: &'h http::HeaderMap,
    body: &[u8],
) -> Option<&'h str> {
    let challenged = match status.as_u16() {
        400 => oauth_error(body).as_deref() == Some(USE_DPOP_NONCE),
        401 => headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| dpop_challenge_error(v).as_deref() == Some(USE_DPOP_NONCE)),
        _ => false,
    };
    if challenged {
        dpop_nonce_in(headers)
    } else {
        None
    }
}

/// The `error` of a JSON OAuth error body, if it is one.
fn oauth_error(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: String,
    }
    serde_json::from_slice::<OAuthError>(body)
        .ok()
        .map(|e| e.error)
}

/// The `error` parameter of the `DPoP` challenge in a `WWW-Authenticate`
/// value (RFC 9110 §11.6.1: challenges separated by commas, each a scheme
/// and `name=value` parameters, a value a token or a quoted string).
///
/// ```
/// use onesoidc_core::dpop_challenge_error;
/// let value = r#"Bearer realm="app", DPoP algs="ES256 PS256", error="use_dpop_nonce""#;
/// assert_eq!(dpop_challenge_error(value).as_deref(), Some("use_dpop_nonce"));
/// assert_eq!(dpop_challenge_error(r#"Bearer error="use_dpop_nonce""#), None);
/// assert_eq!(dpop_challenge_error("dpop error=invalid_token").as_deref(), Some("invalid_token"));
/// ```
pub fn dpop_challenge_error(www_authenticate: &str) -> Option<String> {
    let mut scheme: Option<String> = None;
    let mut rest = www_authenticate;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return None;
        }
        let token_end = rest.find(['=', ',', ' ', '\t', '"']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = rest[token_end..].trim_start_matches([' ', '\t']);
        if let Some(value_start) = after.strip_prefix('=')
            && !token.is_empty()
            && !value_start.starts_with('=')
        {
            // A parameter (a token68 such as `abc==` ends with `=`s and is skipped).
            let value_start = value_start.trim_start_matches([' ', '\t']);
            let (value, remaining) = match value_start.strip_prefix('"') {
                Some(quoted) => unquote(quoted)?,
                None => {
                    let end = value_start
                        .find([',', ' ', '\t'])
                        .unwrap_or(value_start.len());
                    (value_start[..end].to_string(), &value_start[end..])
                }
            };
            if token.eq_ignore_ascii_case("error")
                && scheme
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("dpop"))
            {
                return Some(value);
            }
            rest = remaining;
        } else if token.is_empty() {
            // Stray `=` or `"`: skip one character.
            rest = &rest[rest.chars().next().map_or(1, char::len_utf8)..];
        } else {
            scheme = Some(token.to_string());
            rest = &rest[token_end..];
        }
    }
}

/// A quoted string's value (after its opening quote) and what follows it.
fn unquote(quoted: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?.1),
            '"' => return Some((value, &quoted[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// The latest `DPoP-Nonce` of each server (by origin: the authorization
/// server and each application apart), to send in the next proof to it
/// (RFC 9449 §8.2: a server may give a new nonce with any answer).
///
/// ```
/// let nonces = onesoidc_core::DpopNonces::default();
/// let token = url::Url::parse("https://idp.example/oidc/token").unwrap();
/// let app = url::Url::parse("https://app.example/me").unwrap();
/// let answer = http::Response::builder().header("DPoP-Nonce", "n-1").body(Vec::new()).unwrap();
/// nonces.remember(&token, &answer);
/// assert_eq!(nonces.get(&url::Url::parse("https://idp.example/oidc/token/introspection").unwrap()).as_deref(), Some("n-1"));
/// assert_eq!(nonces.get(&app), None);
/// ```
#[derive(Debug, Default)]
pub struct DpopNonces {
    latest: Mutex<HashMap<String, String>>,
}

impl DpopNonces {
    /// The latest nonce `url`'s server gave, if any.
    pub fn get(&self, url: &Url) -> Option<String> {
        self.lock().get(&origin(url)).cloned()
    }

    /// Keeps `response`'s `DPoP-Nonce` (if it has a usable one) as the
    /// latest of `url`'s server, and returns it.
    pub fn remember<'r>(&self, url: &Url, response: &'r HttpResponse) -> Option<&'r str> {
        self.remember_in(url, response.headers())
    }

    /// [`remember`](Self::remember) for any HTTP client's response headers.
    pub fn remember_in<'h>(&self, url: &Url, headers: &'h http::HeaderMap) -> Option<&'h str> {
        let nonce = dpop_nonce_in(headers)?;
        self.set(url, nonce);
        Some(nonce)
    }

    /// Keeps `nonce` as the latest of `url`'s server.
    pub fn set(&self, url: &Url, nonce: &str) {
        let mut latest = self.lock();
        let key = origin(url);
        if latest.len() >= MAX_SERVERS
            && !latest.contains_key(&key)
            && let Some(evicted) = latest.keys().next().cloned()
        {
            latest.remove(&evicted);
        }
        latest.insert(key, nonce.to_string());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(body.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn a_token_endpoint_challenge_needs_the_error_and_a_nonce() {
        let body = r#"{"error":"use_dpop_nonce"}"#;
        assert_eq!(
            dpop_nonce_challenge(&response(400, &[("DPoP-Nonce", "n")], body)),
            Some("n")
        );
        assert_eq!(dpop_nonce_challenge(&response(400, &[], body)), None);
        assert_eq!(
            dpop_nonce_challenge(&response(
                400,
                &[("DPoP-Nonce", "n")],
                r#"{"error":"invalid_dpop_proof"}"#
            )),
            None
        );
        assert_eq!(
            dpop_nonce_challenge(&response(500, &[("DPoP-Nonce", "n")], body)),
            None
        );
    }

    #[test]
    fn an_application_challenge_is_read_from_www_authenticate() {
        let challenge = |value: &str| {
            dpop_nonce_challenge(&response(
                401,
                &[("WWW-Authenticate", value), ("DPoP-Nonce", "n")],
                "",
            ))
            .is_some()
        };
        assert!(challenge(r#"DPoP error="use_dpop_nonce""#));
        assert!(challenge(
            r#"Bearer realm="x", DPoP error="use_dpop_nonce""#
        ));
        assert!(challenge(
            r#"DPoP algs="ES256", error_description="needs \"nonce\"", error="use_dpop_nonce""#
        ));
        assert!(!challenge(r#"DPoP error="invalid_token""#));
        assert!(!challenge(r#"Bearer error="use_dpop_nonce""#));
        assert!(!challenge(r#"DPoP error="use_dpop_nonce"#));
        assert!(!challenge("Basic abc=="));
        assert!(!challenge(""));
    }

    #[test]
    fn a_nonce_outside_nqchar_is_ignored() {
        for bad in ["a\"b", "a\\b", "a b"] {
            assert_eq!(
                dpop_nonce(&response(200, &[("DPoP-Nonce", bad)], "")),
                None,
                "{bad}"
            );
        }
        let long = "n".repeat(MAX_DPOP_NONCE_BYTES + 1);
        assert_eq!(
            dpop_nonce(&response(200, &[("DPoP-Nonce", &long)], "")),
            None
        );
    }

    #[test]
    fn nonces_are_kept_per_origin_and_replaced_by_the_latest() {
        let nonces = DpopNonces::default();
        let idp = Url::parse("https://idp.example/oidc/token").unwrap();
        let app = Url::parse("https://idp.example:8443/app").unwrap();
        nonces.set(&idp, "1");
        nonces.set(&app, "a");
        nonces.remember(&idp, &response(200, &[("DPoP-Nonce", "2")], ""));
        nonces.remember(&idp, &response(200, &[], ""));
        assert_eq!(nonces.get(&idp).as_deref(), Some("2"));
        assert_eq!(nonces.get(&app).as_deref(), Some("a"));
        for i in 0..(MAX_SERVERS * 2) {
            nonces.set(&Url::parse(&format!("https://s{i}.example/")).unwrap(), "x");
        }
        assert!(nonces.lock().len() <= MAX_SERVERS);
    }
}
