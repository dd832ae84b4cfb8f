//! Interop check: onesoidc-core's request builders and parsers against the
//! provider. The provider's own checks are the raw-HTTP tests beside this
//! file; this one only shows both sides agree on the wire.

use std::sync::Arc;
use std::time::SystemTime;

use onesoidc_core::request::HttpRequest;
use onesoidc_core::response::HttpResponse;
use onesoidc_core::{
    CibaPollResponse, CibaRequest, ClientAuth, Issuer, KeyType, PemSigner, ProviderMetadata,
    parse_backchannel_response, parse_ciba_poll_response, parse_introspection_response,
    parse_revocation_response, parse_token_response,
};
use onesoidc_devidp::{DevIdp, DevIdpConfig};

async fn send(http: &reqwest::Client, request: HttpRequest) -> HttpResponse {
    let request = reqwest::Request::try_from(request).unwrap();
    let response = http.execute(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap().to_vec();
    axum::http::Response::builder()
        .status(status)
        .body(body)
        .unwrap()
}

#[tokio::test]
async fn core_client_speaks_to_the_provider() {
    let idp = DevIdp::start(DevIdpConfig {
        ciba_interval: std::time::Duration::from_millis(50),
        ..DevIdpConfig::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let issuer = Issuer::from_host(&idp.host()).unwrap();
    let discovery = send(&http, ProviderMetadata::discovery_request(&issuer).unwrap()).await;
    let meta = ProviderMetadata::from_discovery_response(&issuer, &discovery).unwrap();
    assert!(meta.discovered);
    assert_eq!(meta.token_endpoint, idp.token_endpoint());

    for key_type in KeyType::ALL {
        let signer = PemSigner::generate(key_type).unwrap();
        let device = idp.register_device(&signer.public_jwk());
        let auth = ClientAuth::new(device.client_id.clone(), Arc::new(signer));

        let request = auth
            .client_credentials_request(
                &meta.token_endpoint,
                &Default::default(),
                SystemTime::now(),
            )
            .unwrap();
        let response = send(&http, request).await;
        let device_tokens =
            parse_token_response(&meta.token_endpoint, &response, SystemTime::now()).unwrap();

        let ciba = CibaRequest::for_username("alice")
            .binding_message("interop")
            .resource("https://vhh.example.com");
        let request = auth
            .backchannel_request(
                &meta.backchannel_authentication_endpoint,
                &issuer,
                &ciba,
                SystemTime::now(),
            )
            .unwrap();
        let response = send(&http, request).await;
        let started =
            parse_backchannel_response(&meta.backchannel_authentication_endpoint, &response)
                .unwrap();
        idp.approve_ciba(&started.auth_req_id).unwrap();
        tokio::time::sleep(idp.config().ciba_interval).await;
        let request = auth
            .ciba_poll_request(
                &meta.token_endpoint,
                &started.auth_req_id,
                SystemTime::now(),
            )
            .unwrap();
        let response = send(&http, request).await;
        let CibaPollResponse::Tokens(user_tokens) =
            parse_ciba_poll_response(&meta.token_endpoint, &response, SystemTime::now()).unwrap()
        else {
            panic!("expected tokens for {key_type}");
        };
        assert!(user_tokens.id_token.is_some());

        let refresh = user_tokens.refresh_token.clone().unwrap();
        let request = auth
            .refresh_token_request(&meta.token_endpoint, &refresh, SystemTime::now())
            .unwrap();
        let response = send(&http, request).await;
        let refreshed =
            parse_token_response(&meta.token_endpoint, &response, SystemTime::now()).unwrap();
        assert!(refreshed.refresh_token.is_some());

        let request = auth
            .introspection_request(
                &meta.introspection_endpoint,
                &refreshed.access_token,
                None,
                SystemTime::now(),
            )
            .unwrap();
        let response = send(&http, request).await;
        let answer = parse_introspection_response(&meta.introspection_endpoint, &response).unwrap();
        assert!(answer.active);
        assert_eq!(answer.sub.as_deref(), Some("alice"));

        let request = auth
            .revocation_request(
                &meta.revocation_endpoint,
                &device_tokens.access_token,
                Some(onesoidc_core::TokenTypeHint::AccessToken),
                SystemTime::now(),
            )
            .unwrap();
        let response = send(&http, request).await;
        parse_revocation_response(&meta.revocation_endpoint, &response).unwrap();
    }
    idp.shutdown().await;
}
