//! Named managers.

use onesoidc_tokens::{CIBA_USER, DEVICE, TokenManagerRegistry};

use super::*;

#[tokio::test(start_paused = true)]
async fn create_get_remove_and_names() {
    let clock = Clock::new();
    let calls = Calls::default();
    let refresh = scripted(clock, &calls, Duration::ZERO, hour_tokens);
    let registry = TokenManagerRegistry::new();
    assert!(registry.is_empty());
    let device = registry.create(DEVICE, refresh.clone()).unwrap();
    let user = registry
        .insert(TokenManager::builder(CIBA_USER, refresh.clone()).build())
        .unwrap();
    assert_eq!(registry.names(), ["ciba_user", "device"]);
    assert_eq!(registry.len(), 2);
    assert_eq!(
        registry
            .managers()
            .iter()
            .map(|m| m.name().to_string())
            .collect::<Vec<_>>(),
        ["ciba_user", "device"]
    );

    let error = registry.create(DEVICE, refresh.clone()).unwrap_err();
    assert!(matches!(error, TokenError::AlreadyExists { .. }));
    assert_eq!(
        error.to_string(),
        "a token manager named `device` already exists in this registry; use get() or remove() it first"
    );
    assert!(registry.insert(user.clone()).is_err());

    // `get` hands out the same manager: it shares tokens.
    device.store(token("shared", None)).await;
    assert_eq!(
        secret(&registry.get(DEVICE).unwrap().access_token().await),
        "shared"
    );
    assert!(registry.get("nobody").is_none());

    assert_eq!(registry.remove(DEVICE).unwrap().name(), "device");
    assert!(registry.remove(DEVICE).is_none());
    assert_eq!(registry.names(), ["ciba_user"]);
    assert_eq!(calls.count(), 0);
}

#[tokio::test]
async fn the_global_registry_is_one_instance() {
    let a = TokenManagerRegistry::global() as *const _;
    let b = TokenManagerRegistry::global() as *const _;
    assert_eq!(a, b);
    let refresh = onesoidc_tokens::refresh_fn(|_| async { Ok(token("g", None)) });
    let manager = TokenManagerRegistry::global()
        .create("global-test", refresh)
        .unwrap();
    assert_eq!(
        TokenManagerRegistry::global()
            .get("global-test")
            .unwrap()
            .name(),
        manager.name()
    );
    TokenManagerRegistry::global().remove("global-test");
}
