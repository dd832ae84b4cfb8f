//! An application checking the stock provider's access tokens with
//! onesoidc-resource: its RFC 9068 JWTs against its JWKS, its opaque tokens
//! through introspection with another registered identity (PROTOCOL §12).

use onesoidc_flows::core::{AccessTokenError, DeviceTokenRequest};
use onesoidc_interop::{ECC_P256, ECC_P384, RSA_2048, http, issuer};
use onesoidc_resource::{Refusal, ResourceServer};

use crate::common::{JWT_RESOURCE, login_alice, text};

const OPAQUE_RESOURCE: &str = "https://api.interop.test/opaque";

/// An application at `audience` accepting the provider's JWTs.
async fn application(audience: &str) -> ResourceServer {
    ResourceServer::builder()
        .issuer(issuer())
        .audience(audience)
        .http(http())
        .build()
        .await
        .expect("discovery")
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn its_jwt_access_tokens_are_accepted_for_their_audience_only() {
    let client = ECC_P384.client();
    let request = DeviceTokenRequest::default()
        .scope("read")
        .resource(JWT_RESOURCE);
    let tokens = client
        .device_token_with(&request)
        .await
        .expect("device token");
    let server = application(JWT_RESOURCE).await;
    let claims = server
        .check_token(text(&tokens.access_token))
        .await
        .expect("the provider's at+jwt is accepted");
    assert_eq!(&*claims.client_id, ECC_P384.client_id().as_str());
    assert!(claims.has_scope("read"), "{claims:?}");

    // The same token at another application is refused for its audience.
    let elsewhere = application(OPAQUE_RESOURCE).await;
    let refused = elsewhere.check_token(text(&tokens.access_token)).await;
    assert!(
        matches!(
            refused,
            Err(Refusal::InvalidToken(
                AccessTokenError::WrongAudience { .. }
            ))
        ),
        "{refused:?}"
    );

    // An ID token is not an access token.
    let (_, login) = login_alice(ECC_P256).await;
    let id_token = text(login.id_token.as_ref().expect("id token"));
    let refused = server.check_token(id_token).await;
    assert!(
        matches!(
            refused,
            Err(Refusal::InvalidToken(AccessTokenError::WrongType { .. }))
        ),
        "{refused:?}"
    );
}

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn its_opaque_access_tokens_are_accepted_through_introspection() {
    let kiosk = RSA_2048.client();
    let request = DeviceTokenRequest::default()
        .scope("read write")
        .resource(OPAQUE_RESOURCE);
    let tokens = kiosk
        .device_token_with(&request)
        .await
        .expect("device token");
    assert!(!onesoidc_flows::core::is_jwt(text(&tokens.access_token)));
    let server = ResourceServer::builder()
        .audience(OPAQUE_RESOURCE)
        .introspection(ECC_P256.client())
        .build()
        .await
        .expect("discovery");
    let claims = server
        .check_token(text(&tokens.access_token))
        .await
        .expect("introspected as active, for this audience");
    assert_eq!(&*claims.client_id, RSA_2048.client_id().as_str());
    assert!(claims.has_scope("write"), "{claims:?}");

    let refused = server.check_token("not-a-token-the-provider-issued").await;
    assert!(
        matches!(
            refused,
            Err(Refusal::InvalidToken(AccessTokenError::Inactive))
        ),
        "{refused:?}"
    );
}
