//! Discovery of oidc-provider's standard routes (PROTOCOL §2).

use onesoidc_interop::{DEVICE_KEYS, RSA_2048, issuer};

#[tokio::test]
#[ignore = "needs the oidc-provider started by `cargo xtask interop`"]
async fn discovery_finds_the_standard_routes_under_oidc() {
    let client = RSA_2048.client();
    let meta = client.provider_metadata().await.expect("discovery");
    let issuer = issuer();
    assert!(
        meta.discovered,
        "the discovery document should have been found"
    );
    assert_eq!(meta.issuer.as_str(), issuer);
    // The paths PROTOCOL §2 falls back to are the ones the stock provider serves.
    assert_eq!(meta.token_endpoint, format!("{issuer}/token"));
    assert_eq!(
        meta.backchannel_authentication_endpoint,
        format!("{issuer}/backchannel")
    );
    assert_eq!(
        meta.introspection_endpoint,
        format!("{issuer}/token/introspection")
    );
    assert_eq!(
        meta.revocation_endpoint,
        format!("{issuer}/token/revocation")
    );
    assert_eq!(meta.jwks_uri, format!("{issuer}/jwks"));
    for key in DEVICE_KEYS {
        let alg = key.key_type.jws_algorithm().as_str();
        assert!(
            meta.id_token_signing_alg_values_supported
                .iter()
                .any(|a| a == alg),
            "{alg} missing from {:?}",
            meta.id_token_signing_alg_values_supported
        );
    }
}
