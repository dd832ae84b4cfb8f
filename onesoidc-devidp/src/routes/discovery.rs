//! Discovery (PROTOCOL §2) and the JWKS.

use axum::response::{IntoResponse, Response};
use onesoidc_core::DEFAULT_DPOP_ALGORITHMS;
use serde_json::json;

use super::Shared;
use crate::ciba::CIBA_GRANT_TYPE;
use crate::provider_key::PROVIDER_ALG;

const CLIENT_ALGS: [&str; 4] = ["RS256", "ES256", "ES384", "ES512"];

/// `GET /oidc/.well-known/openid-configuration`.
pub(super) async fn configuration(axum::extract::State(p): Shared) -> Response {
    tracing::debug!(route = "discovery", "request served");
    axum::Json(json!({
        "issuer": p.issuer,
        "token_endpoint": p.token_endpoint,
        "backchannel_authentication_endpoint": p.backchannel_endpoint,
        "introspection_endpoint": p.introspection_endpoint,
        "revocation_endpoint": p.revocation_endpoint,
        "jwks_uri": p.jwks_uri,
        "grant_types_supported": ["client_credentials", CIBA_GRANT_TYPE, "refresh_token"],
        "backchannel_token_delivery_modes_supported": ["poll"],
        "backchannel_authentication_request_signing_alg_values_supported": CLIENT_ALGS,
        "backchannel_user_code_parameter_supported": false,
        "request_object_signing_alg_values_supported": CLIENT_ALGS,
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": CLIENT_ALGS,
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": CLIENT_ALGS,
        "revocation_endpoint_auth_methods_supported": ["private_key_jwt"],
        "revocation_endpoint_auth_signing_alg_values_supported": CLIENT_ALGS,
        "dpop_signing_alg_values_supported": DEFAULT_DPOP_ALGORITHMS,
        "id_token_signing_alg_values_supported": [PROVIDER_ALG],
        "subject_types_supported": ["public"],
        "scopes_supported": ["openid", "offline_access", "profile"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time"],
    }))
    .into_response()
}

/// `GET /oidc/jwks`.
pub(super) async fn jwks(axum::extract::State(p): Shared) -> Response {
    tracing::debug!(route = "jwks", "request served");
    let keys: Vec<_> = p.published_keys().iter().map(|k| k.jwk().clone()).collect();
    axum::Json(json!({ "keys": keys })).into_response()
}
