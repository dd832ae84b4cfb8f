//! What keeps the console's buttons from being pressed by anyone but the
//! developer's own browser tab:
//!
//! - a **per-process token**, random (256 bits), embedded in the console and
//!   phone pages and required in the `X-DevIdp-Console-Token` header of
//!   every console `POST`. A cross-site page can neither read it (same-origin
//!   policy) nor send a custom header without a CORS preflight, which the
//!   provider never answers;
//! - a **Host check** on every console route: the pages answer only to the
//!   names the provider is reachable by, so a DNS-rebinding page that made
//!   its own name point at 127.0.0.1 cannot read the token;
//! - an **Origin check** on `POST`s, when the browser sends one.

use axum::http::{HeaderMap, StatusCode, header};
use url::Url;

use crate::error::{ApiError, code};
use crate::state::random_token;

/// The header console `POST`s carry the token in.
pub(crate) const TOKEN_HEADER: &str = "x-devidp-console-token";

/// The token and the host names the console answers to.
#[derive(Debug)]
pub(crate) struct Guard {
    token: String,
    /// `(lower-case host, port)`.
    hosts: Vec<(String, u16)>,
    /// The port a `Host` header without one means (80, or 443 for https).
    default_port: u16,
}

/// `host[:port]` of a `Host` header or an origin's authority, IPv6 in brackets.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.trim();
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        (format!("[{inside}]"), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
            None => (authority.to_string(), None),
        }
    };
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

impl Guard {
    /// A guard with a fresh token for a provider named `host` (a URL), also
    /// reachable as each of `aliases` (`host:port` authorities).
    pub fn new(host: &str, aliases: &[String]) -> Self {
        let url = Url::parse(host).ok();
        let default_port = match url.as_ref().map(Url::scheme) {
            Some("https") => 443,
            _ => 80,
        };
        let mut hosts = Vec::new();
        if let Some(url) = &url
            && let (Some(name), Some(port)) = (url.host(), url.port_or_known_default())
        {
            hosts.push((name.to_string().to_ascii_lowercase(), port));
        }
        for alias in aliases {
            if let Some((name, port)) = split_authority(alias) {
                hosts.push((name, port.unwrap_or(default_port)));
            }
        }
        Guard {
            token: random_token(""),
            hosts,
            default_port,
        }
    }

    /// The token the pages embed.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether `authority` (a `Host` header) names this provider.
    fn is_own_authority(&self, authority: &str) -> bool {
        split_authority(authority).is_some_and(|(name, port)| {
            let port = port.unwrap_or(self.default_port);
            self.hosts.iter().any(|(h, p)| *h == name && *p == port)
        })
    }

    /// Every console and control route: the request must name this provider in `Host`.
    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if self.is_own_authority(host) {
            Ok(())
        } else {
            Err(forbidden(format!(
                "the console and the control API answer only to the provider's own address, not Host {host:?}"
            )))
        }
    }

    /// Console `POST`s: the Host check, the Origin (when sent) must be this
    /// provider, and the token header must match.
    pub fn check_post(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        self.check_host(headers)?;
        if let Some(origin) = headers.get(header::ORIGIN) {
            let authority = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .map(|(_, authority)| authority);
            if !authority.is_some_and(|a| self.is_own_authority(a)) {
                return Err(forbidden(
                    "the request comes from another site (Origin header)",
                ));
            }
        }
        let sent = headers
            .get(TOKEN_HEADER)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if aws_lc_rs::constant_time::verify_slices_are_equal(sent, self.token.as_bytes()).is_err() {
            return Err(forbidden(
                "the X-DevIdp-Console-Token header is missing or wrong; use the buttons of the console page",
            ));
        }
        Ok(())
    }
}

fn forbidden(description: impl Into<std::borrow::Cow<'static, str>>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code::FORBIDDEN, description)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn hosts_match_by_name_and_port() {
        let guard = Guard::new(
            "http://192.168.1.20:8080",
            &[
                "127.0.0.1:8080".into(),
                "localhost:8080".into(),
                "[::1]:8080".into(),
            ],
        );
        for ok in [
            "192.168.1.20:8080",
            "LOCALHOST:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
        ] {
            assert!(guard.check_host(&headers(&[("host", ok)])).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "",
            "[::1",
        ] {
            assert!(
                guard.check_host(&headers(&[("host", bad)])).is_err(),
                "{bad}"
            );
        }
        let guard = Guard::new("https://devidp.example", &[]);
        assert!(
            guard
                .check_host(&headers(&[("host", "devidp.example")]))
                .is_ok()
        );
        assert!(
            guard
                .check_host(&headers(&[("host", "devidp.example:443")]))
                .is_ok()
        );
    }

    #[test]
    fn posts_need_the_token_and_a_same_site_origin() {
        let guard = Guard::new("http://127.0.0.1:8080", &[]);
        let token = guard.token().to_string();
        let host = ("host", "127.0.0.1:8080");
        assert!(guard.check_post(&headers(&[host])).is_err(), "no token");
        assert!(
            guard
                .check_post(&headers(&[host, (TOKEN_HEADER, "wrong")]))
                .is_err()
        );
        assert!(
            guard
                .check_post(&headers(&[host, (TOKEN_HEADER, &token)]))
                .is_ok()
        );
        let same = ("origin", "http://127.0.0.1:8080");
        assert!(
            guard
                .check_post(&headers(&[host, same, (TOKEN_HEADER, &token)]))
                .is_ok()
        );
        for origin in ["http://evil.example", "null"] {
            let e = guard
                .check_post(&headers(&[
                    host,
                    ("origin", origin),
                    (TOKEN_HEADER, &token),
                ]))
                .unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{origin}");
        }
    }
}
