//! Token-endpoint parsers on arbitrary responses: status from the first two
//! bytes, body the rest. Never panic; successes respect their invariants.

use std::time::Duration;

use onesoidc_core::{
    CibaPollResponse, ExposeSecret, MAX_EXPIRES_IN, ProviderMetadata, parse_backchannel_response,
    parse_ciba_poll_response, parse_introspection_response, parse_revocation_response,
    parse_token_response,
};
use crate::{issuer, now, response};

const TOKEN: &str = "https://idp.example.com/oidc/token";

/// One input: never panics; successes respect their invariants.
pub fn run(data: &[u8]) {
    let response = response(data);
    let now = now();
    if let Ok(tokens) = parse_token_response(&TOKEN.into(), &response, now) {
        assert!(!tokens.access_token.expose_secret().is_empty());
        if let Some(at) = tokens.expires_at {
            assert!(at >= now && at <= now + MAX_EXPIRES_IN);
        }
        let _ = tokens.expires_in(now);
        let _ = tokens.is_expired(now);
    }
    match parse_ciba_poll_response(&TOKEN.into(), &response, now) {
        Ok(CibaPollResponse::Tokens(_)) => assert!(response.status().is_success()),
        Ok(_) => assert!(!response.status().is_success()),
        Err(e) => {
            let _ = e.to_string();
            let _ = e.oauth_error();
            let _ = e.http_status();
        }
    }
    if let Ok(started) = parse_backchannel_response(&TOKEN.into(), &response) {
        assert!(!started.auth_req_id.is_empty());
        assert!(started.interval > Duration::ZERO);
    }
    let _ = parse_introspection_response(&TOKEN.into(), &response);
    if let Err(e) = parse_revocation_response(&TOKEN.into(), &response) {
        let _ = e.to_string();
    }
    if let Ok(meta) = ProviderMetadata::from_discovery_response(issuer(), &response) {
        assert_eq!(&meta.issuer, issuer());
    }
}
