//! `RedisTokenStore` against a real redis-server serving TLS with a CA
//! made here: the store trusts the CA it is given (and only that one),
//! presents a client certificate when the server asks for one, says why
//! when it cannot connect, and works as the restricted ACL user of
//! SECURITY.md, whose line is read from SECURITY.md itself.
//!
//! Skipped (with a notice) without `ONESOIDC_REDIS_SERVER`, which `cargo
//! xtask test` sets.

// Shared with the other Redis tests, which use more of it.
#[allow(dead_code)]
#[path = "support/redis_server.rs"]
mod redis_server;
#[path = "support/redis_tls.rs"]
mod redis_tls;

use std::time::{Duration, SystemTime};

use onesoidc_core::{ExposeSecret, TokenSet};
use onesoidc_tokens::{RedisTokenStore, SaveMode, StoreKey, TokenOwner, TokenStore};
use redis_server::RedisServer;
use redis_tls::TlsRedis;

fn tokens(access: &str) -> TokenSet {
    TokenSet {
        access_token: access.to_string().into(),
        token_type: "Bearer".into(),
        expires_at: Some(SystemTime::now() + Duration::from_secs(600)),
        refresh_token: None,
        id_token: None,
        scope: None,
        dpop_jkt: None,
    }
}

fn key() -> StoreKey {
    StoreKey::new(
        "device",
        TokenOwner::new("https://idp.example.com/oidc", "d1"),
    )
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A store at `url` trusting `pki`'s CA, with its client certificate.
fn trusting(url: &str, server: &TlsRedis) -> RedisTokenStore {
    RedisTokenStore::builder(url)
        .ca_certificates(read(&server.pki.ca))
        .client_certificate(read(&server.pki.client_cert), read(&server.pki.client_key))
        .build()
        .unwrap()
}

/// Saves, loads and removes a token through `store`.
async fn round_trip(store: &RedisTokenStore) {
    let key = key();
    store
        .save(&key, &tokens("over-tls"), SaveMode::Replace)
        .await
        .unwrap();
    let loaded = store
        .load(&key)
        .await
        .unwrap()
        .tokens
        .expect("the saved tokens");
    assert_eq!(loaded.access_token.expose_secret(), "over-tls");
    store.remove(&key).await.unwrap();
    assert!(store.load(&key).await.unwrap().tokens.is_none());
}

#[tokio::test]
async fn the_store_trusts_the_ca_it_is_given_and_presents_its_certificate() {
    let Some(binary) = RedisServer::binary() else {
        return;
    };
    let server = TlsRedis::start(binary, "yes");
    let url = server.url(None);
    round_trip(&trusting(&url, &server)).await;

    // The system's roots do not know the private CA; another CA is not it.
    let system_roots = RedisTokenStore::open(&url).unwrap();
    let stranger = RedisTokenStore::builder(&url)
        .ca_certificates(read(&server.pki.stranger_ca))
        .build()
        .unwrap();
    for store in [system_roots, stranger] {
        let error = store.load(&key()).await.unwrap_err().to_string();
        assert!(
            error.contains("cannot connect") && error.contains("certificate"),
            "says why: {error}"
        );
    }

    // The server asks for a client certificate: without one, no session.
    let anonymous = RedisTokenStore::builder(&url)
        .ca_certificates(read(&server.pki.ca))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(anonymous.load(&key()).await.is_err());
}

/// SECURITY.md's `ACL SETUSER …` line, as written there, with `password`.
fn security_md_acl(password: &str) -> Vec<String> {
    let text = include_str!("../../SECURITY.md");
    let start = text
        .find("`ACL SETUSER")
        .expect("SECURITY.md shows an ACL SETUSER example");
    let line = &text[start + 1..];
    let line = &line[..line.find('`').expect("the example ends with a backtick")];
    line.split_whitespace()
        .skip(1)
        .map(|word| match word {
            ">PASSWORD" => format!(">{password}"),
            word => word.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn security_mds_restricted_acl_user_is_enough_and_no_more() {
    let Some(binary) = RedisServer::binary() else {
        return;
    };
    let server = TlsRedis::start(binary, "yes");
    let password = format!("pw{:032x}", rand::random::<u128>());
    let acl = security_md_acl(&password);
    assert!(
        acl.iter().any(|w| w == "SETUSER") && acl.iter().any(|w| w.starts_with('>')),
        "{acl:?}"
    );
    let admin = redis::Client::open(server.server.url()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let mut setuser = redis::cmd("ACL");
    for word in &acl {
        setuser.arg(word);
    }
    let _: () = setuser.query_async(&mut admin).await.unwrap();

    let url = server.url(Some(&format!("onesoidc:{password}")));
    let store = trusting(&url, &server);
    round_trip(&store).await;

    // A lease taken, a second one waiting (subscribed to the release
    // channel), the first released: the second gets it.
    let first = store
        .lease(&key(), Duration::from_secs(10))
        .await
        .unwrap()
        .expect("Redis leases");
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move { store.lease(&key(), Duration::from_secs(10)).await })
    };
    // Wait until the waiter listens on the release channel.
    let channel = format!(
        "onesoidc:{{{}:device}}:released",
        key().owner().fingerprint()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, listeners): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut admin)
            .await
            .unwrap();
        if listeners == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nobody subscribed to {channel}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!waiter.is_finished(), "the second lease waits");
    first.release().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter gets the lease once it is released")
        .unwrap()
        .unwrap()
        .expect("a lease");
    second.release().await.unwrap();

    // No more than that: other keys and dangerous commands are refused.
    let mut restricted = redis::Client::build_with_tls(
        url.as_str(),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read(&server.pki.client_cert),
                client_key: read(&server.pki.client_key),
            }),
            root_cert: Some(read(&server.pki.ca)),
        },
    )
    .unwrap()
    .get_multiplexed_async_connection()
    .await
    .unwrap();
    for refused in [
        redis::cmd("GET").arg("another-app:secret").clone(),
        redis::cmd("FLUSHALL").clone(),
        redis::cmd("CONFIG").arg("GET").arg("*").clone(),
    ] {
        let error = refused
            .query_async::<redis::Value>(&mut restricted)
            .await
            .unwrap_err();
        assert!(
            error.to_string().to_ascii_lowercase().contains("noperm"),
            "{error}"
        );
    }
}
