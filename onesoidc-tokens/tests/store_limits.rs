//! A huge or endless token file is ignored or refused, never read whole.

use onesoidc_core::{ExposeSecret, TokenSet};
use onesoidc_tokens::{
    FileTokenStore, MAX_TOKEN_FILE_BYTES, SaveMode, StoreError, StoreKey, TokenOwner, TokenStore,
};

fn key() -> StoreKey {
    StoreKey::new(
        "device",
        TokenOwner::new("https://idp.example.com/oidc", "device-1"),
    )
}

fn tokens() -> TokenSet {
    TokenSet {
        access_token: "at-1".to_string().into(),
        token_type: "Bearer".into(),
        expires_at: None,
        refresh_token: None,
        id_token: None,
        scope: None,
        dpop_jkt: None,
    }
}

/// A valid token file padded with whitespace to `size` bytes: still valid
/// JSON holding the tokens, so only the size limit rejects it.
fn padded(record: &[u8], size: u64) -> Vec<u8> {
    let mut bytes = record.to_vec();
    let end = bytes.iter().rposition(|b| *b == b'}').unwrap();
    let padding = usize::try_from(size).unwrap() - bytes.len();
    bytes.splice(end..end, std::iter::repeat_n(b' ', padding));
    bytes
}

#[tokio::test]
async fn a_token_file_over_the_limit_is_ignored_though_it_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(dir.path());
    store
        .save(&key(), &tokens(), SaveMode::Replace)
        .await
        .unwrap();
    let path = store.path_for(&key());
    let record = std::fs::read(&path).unwrap();

    // At the limit: loaded.
    std::fs::write(&path, padded(&record, MAX_TOKEN_FILE_BYTES)).unwrap();
    let loaded = store
        .load(&key())
        .await
        .unwrap()
        .tokens
        .expect("loaded at the limit");
    assert_eq!(loaded.access_token.expose_secret(), "at-1");

    // One byte more: the same valid JSON, ignored.
    let over = padded(&record, MAX_TOKEN_FILE_BYTES + 1);
    let json: serde_json::Value = serde_json::from_slice(&over).unwrap();
    assert_eq!(json["tokens"]["access_token"], "at-1", "still valid JSON");
    std::fs::write(&path, over).unwrap();
    assert!(store.load(&key()).await.unwrap().tokens.is_none());
}

#[cfg(unix)]
#[tokio::test]
async fn an_endless_token_file_is_refused_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(dir.path());
    let path = store.path_for(&key());
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    let error = store.load(&key()).await.unwrap_err();
    assert!(matches!(error, StoreError::NotPrivate(_)), "{error}");
    assert!(error.to_string().contains("symbolic link"), "{error}");
}
