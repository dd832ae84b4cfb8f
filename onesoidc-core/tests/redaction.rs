//! `Debug` of every type that holds a secret is redacted.

use std::sync::Arc;

use onesoidc_core::{ClientAuth, KeyType, LoginHint, PemSigner, QrStatus, SecretString, TokenSet};

#[test]
fn debug_output_never_shows_secrets() {
    let tokens = TokenSet {
        access_token: SecretString::from("access-secret"),
        token_type: "Bearer".into(),
        expires_at: None,
        refresh_token: Some(SecretString::from("refresh-secret")),
        id_token: Some(SecretString::from("id-secret")),
        scope: Some("openid".into()),
        dpop_jkt: None,
    };
    let signer = PemSigner::generate(KeyType::EccP256).unwrap();
    let pem = signer.private_key_pem().unwrap();
    let key_body: String = pem.lines().nth(1).unwrap().to_string();
    let signer: Arc<dyn onesoidc_core::Signer> = Arc::new(signer);
    let debug = [
        format!("{tokens:?}"),
        format!("{:?}", LoginHint::LoginHintToken("hint-secret".into())),
        format!("{:?}", LoginHint::IdTokenHint("id-hint-secret".into())),
        format!(
            "{:?}",
            QrStatus::Scanned {
                login_hint_token: "lht-secret".into()
            }
        ),
        format!("{signer:?}"),
        format!("{:?}", ClientAuth::new("c", signer.clone())),
    ]
    .join("\n");
    for secret in [
        "access-secret",
        "refresh-secret",
        "id-secret",
        "hint-secret",
        "lht-secret",
        key_body.as_str(),
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into:\n{debug}");
    }
    assert!(debug.contains("REDACTED") || debug.contains("redacted"));
}
