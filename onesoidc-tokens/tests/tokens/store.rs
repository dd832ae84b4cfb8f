//! The file store, alone and under a manager.

use std::fs;
use std::path::Path;

use onesoidc_tokens::{FileTokenStore, TokenStore};

use super::*;

fn full_tokens() -> TokenSet {
    TokenSet {
        access_token: "at-1".to_string().into(),
        token_type: "Bearer".into(),
        expires_at: Some(UNIX_EPOCH + secs(BASE + 3600)),
        refresh_token: Some("rt-1".to_string().into()),
        id_token: Some("id-1".to_string().into()),
        scope: Some("openid offline_access".into()),
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn saves_and_loads_every_field_atomically_and_privately() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("state/tokens");
    let store = FileTokenStore::new(&dir);
    assert!(store.load("ciba_user").unwrap().is_none());
    store.save("ciba_user", &full_tokens()).unwrap();
    store.save("ciba_user", &full_tokens()).unwrap();
    assert_eq!(entries(&dir), ["ciba_user.json"], "no temporary file left");
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("ciba_user.json")), 0o600);
    }

    let loaded = store.load("ciba_user").unwrap().unwrap();
    assert_eq!(loaded.access_token.expose_secret(), "at-1");
    assert_eq!(loaded.token_type, "Bearer");
    assert_eq!(loaded.expires_at, full_tokens().expires_at);
    assert_eq!(loaded.refresh_token.unwrap().expose_secret(), "rt-1");
    assert_eq!(loaded.id_token.unwrap().expose_secret(), "id-1");
    assert_eq!(loaded.scope.as_deref(), Some("openid offline_access"));

    let text = fs::read_to_string(dir.join("ciba_user.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], "onesoidc-tokens");
    assert_eq!(json["version"], 1);
    assert_eq!(json["name"], "ciba_user");

    store.remove("ciba_user").unwrap();
    store.remove("ciba_user").unwrap();
    assert!(store.load("ciba_user").unwrap().is_none());
    assert!(entries(&dir).is_empty());
}

#[test]
fn unusable_files_are_ignored_not_fatal() {
    let temp = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(temp.path());
    let path = store.path_for("device").unwrap();
    store.save("device", &full_tokens()).unwrap();
    let good: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();

    let mut cases: Vec<(&str, String)> = vec![
        ("not JSON", "{\"format\": \"onesoidc-tok".into()),
        ("empty", String::new()),
        ("binary", "\u{0}\u{1}\u{2}".into()),
        ("another program's JSON", r#"{"hello": "world"}"#.into()),
    ];
    let mut with = |what: &'static str, key: &str, value: serde_json::Value| {
        let mut doc = good.clone();
        doc[key] = value;
        cases.push((what, doc.to_string()));
    };
    with("another format", "format", "something-else".into());
    with("a future version", "version", 2.into());
    with("another manager's tokens", "name", "ciba_user".into());
    let mut doc = good.clone();
    doc["tokens"]["access_token"] = "".into();
    cases.push(("an empty access token", doc.to_string()));

    for (what, content) in cases {
        fs::write(&path, content).unwrap();
        assert!(store.load("device").unwrap().is_none(), "{what}");
    }
}

#[test]
fn any_name_maps_to_one_file_inside_the_directory() {
    let store = FileTokenStore::new("/var/lib/app/tokens");
    assert_eq!(
        store.path_for("../etc/passwd").unwrap(),
        Path::new("/var/lib/app/tokens/%2E%2E%2Fetc%2Fpasswd.json")
    );
    assert_eq!(
        store.path_for("ciba_user").unwrap(),
        Path::new("/var/lib/app/tokens/ciba_user.json")
    );
    assert!(store.path_for("").is_err());
}

#[tokio::test(start_paused = true)]
async fn a_restarted_manager_picks_up_where_it_left_off() {
    let temp = tempfile::tempdir().unwrap();
    let store = Arc::new(FileTokenStore::new(temp.path()));
    let path = store.path_for("device").unwrap();
    let clock = Clock::new();
    let calls = Calls::default();
    let refresh = scripted(clock, &calls, Duration::ZERO, hour_tokens);

    let manager = builder(refresh.clone(), &clock)
        .store(store.clone())
        .build();
    assert!(!path.exists());
    assert_eq!(secret(&manager.access_token().await), "t1");
    // The refresh is saved off the async threads; wait for it.
    for _ in 0..1000 {
        if path.exists() {
            break;
        }
        tokio::time::sleep(millis(1)).await;
    }
    assert_eq!(
        store
            .load("device")
            .unwrap()
            .unwrap()
            .access_token
            .expose_secret(),
        "t1"
    );
    manager.store(token("login", Some(clock.wall() + HOUR)));
    assert_eq!(
        store
            .load("device")
            .unwrap()
            .unwrap()
            .access_token
            .expose_secret(),
        "login",
        "store() saves before returning"
    );
    drop(manager);

    // "Restart": a new manager loads the saved tokens and needs no refresh.
    let manager = builder(refresh.clone(), &clock)
        .store(store.clone())
        .build();
    assert_eq!(secret(&manager.access_token().await), "login");
    assert_eq!(calls.count(), 1);

    manager.clear();
    assert!(!path.exists());
    drop(manager);

    // A corrupt file is ignored: the manager fetches anew.
    fs::write(&path, "garbage").unwrap();
    let manager = builder(refresh, &clock).store(store.clone()).build();
    assert_eq!(secret(&manager.access_token().await), "t2");
}
