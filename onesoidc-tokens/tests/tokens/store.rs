//! The file store, alone and under a manager.

use std::fs;
use std::path::Path;

use onesoidc_tokens::{
    FileTokenStore, SaveMode, Saved, StoreError, StoreKey, TokenOwner, TokenStore,
};

use super::*;

#[path = "../support/hooked_store.rs"]
mod hooked_store;
#[path = "../support/races.rs"]
mod races;

const ISSUER: &str = "https://idp.example.com/oidc";

fn owner() -> TokenOwner {
    TokenOwner::new(ISSUER, "device-1")
}

fn key(name: &str) -> StoreKey {
    StoreKey::new(name, owner())
}

fn full_tokens() -> TokenSet {
    TokenSet {
        access_token: "at-1".to_string().into(),
        token_type: "Bearer".into(),
        expires_at: Some(UNIX_EPOCH + secs(BASE + 3600)),
        refresh_token: Some("rt-1".to_string().into()),
        id_token: Some("id-1".to_string().into()),
        scope: Some("openid offline_access".into()),
        dpop_jkt: None,
    }
}

/// A refresh's save, from `generation`, without a lease.
fn refreshed(generation: u64) -> SaveMode {
    SaveMode::Refreshed {
        generation,
        fence: None,
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

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn saves_and_loads_every_field_atomically_and_privately() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("state/tokens");
    let store = FileTokenStore::new(&dir);
    let key = key("ciba_user");
    assert!(store.load(&key).await.unwrap().tokens.is_none());
    store
        .save(&key, &full_tokens(), SaveMode::Replace)
        .await
        .unwrap();
    store
        .save(&key, &full_tokens(), SaveMode::Replace)
        .await
        .unwrap();
    assert_eq!(
        entries(&dir),
        ["ciba_user.json", "ciba_user.lock"],
        "no temporary file left"
    );
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("ciba_user.json")), 0o600);
        assert_eq!(mode(&dir.join("ciba_user.lock")), 0o600);
    }

    let loaded = store.load(&key).await.unwrap().tokens.unwrap();
    assert_eq!(loaded.access_token.expose_secret(), "at-1");
    assert_eq!(loaded.token_type, "Bearer");
    assert_eq!(loaded.expires_at, full_tokens().expires_at);
    assert_eq!(loaded.refresh_token.unwrap().expose_secret(), "rt-1");
    assert_eq!(loaded.id_token.unwrap().expose_secret(), "id-1");
    assert_eq!(loaded.scope.as_deref(), Some("openid offline_access"));

    let text = fs::read_to_string(dir.join("ciba_user.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["format"], "onesoidc-tokens");
    assert_eq!(json["version"], 2);
    assert_eq!(json["name"], "ciba_user");
    assert_eq!(json["owner"]["issuer"], ISSUER);
    assert_eq!(json["owner"]["client_id"], "device-1");

    // A removal leaves a tombstone of a new generation (two saves with
    // `Replace`: generation 2).
    assert_eq!(store.remove(&key).await.unwrap(), 3);
    assert_eq!(store.remove(&key).await.unwrap(), 4);
    let stored = store.load(&key).await.unwrap();
    assert!(stored.tokens.is_none() && stored.is_tombstone());
    assert_eq!(stored.generation, 4);
    assert_eq!(entries(&dir), ["ciba_user.json", "ciba_user.lock"]);
    let text = fs::read_to_string(dir.join("ciba_user.json")).unwrap();
    assert!(!text.contains("at-1") && !text.contains("rt-1"), "{text}");
}

#[tokio::test]
async fn unusable_files_are_ignored_not_fatal() {
    let temp = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(temp.path());
    let key = key("device");
    let path = store.path_for(&key);
    store
        .save(&key, &full_tokens(), SaveMode::Replace)
        .await
        .unwrap();
    let good: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        store.load(&key).await.unwrap().tokens.is_some(),
        "the good one loads"
    );

    let mut cases: Vec<(&str, String)> = vec![
        ("not JSON", "{\"format\": \"onesoidc-tok".into()),
        ("empty", String::new()),
        ("binary", "\u{0}\u{1}\u{2}".into()),
        ("another program's JSON", r#"{"hello": "world"}"#.into()),
    ];
    let mut with = |what: &'static str, pointer: &str, value: serde_json::Value| {
        let mut doc = good.clone();
        *doc.pointer_mut(pointer).unwrap() = value;
        cases.push((what, doc.to_string()));
    };
    with("another format", "/format", "something-else".into());
    with("version 1 (no owner)", "/version", 1.into());
    with("a future version", "/version", 3.into());
    with("another manager's tokens", "/name", "ciba_user".into());
    with(
        "another client's tokens",
        "/owner/client_id",
        "device-2".into(),
    );
    with(
        "another provider's tokens",
        "/owner/issuer",
        "https://other.example.com/oidc".into(),
    );
    with("an empty access token", "/tokens/access_token", "".into());
    with(
        "an expiry out of range",
        "/tokens/expires_at",
        u64::MAX.into(),
    );

    for (what, content) in cases {
        fs::write(&path, content).unwrap();
        assert!(store.load(&key).await.unwrap().tokens.is_none(), "{what}");
    }
}

/// Pointing a new device.yml at an old store: the old identity's tokens are
/// not used, and the new identity's replace them.
#[tokio::test]
async fn tokens_of_another_owner_are_ignored_then_replaced() {
    let temp = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(temp.path());
    let old = StoreKey::new("device", TokenOwner::new(ISSUER, "old-device"));
    let new = StoreKey::new("device", TokenOwner::new(ISSUER, "new-device"));
    store
        .save(&old, &full_tokens(), SaveMode::Replace)
        .await
        .unwrap();
    assert!(store.load(&new).await.unwrap().tokens.is_none());
    let mut fresh = full_tokens();
    fresh.access_token = "new".to_string().into();
    fresh.expires_at = Some(UNIX_EPOCH + secs(BASE + 60));
    assert!(matches!(
        store.save(&new, &fresh, refreshed(0)).await.unwrap(),
        Saved::Written { generation: 0 }
    ));
    let loaded = store.load(&new).await.unwrap().tokens.unwrap();
    assert_eq!(loaded.access_token.expose_secret(), "new");
    assert!(store.load(&old).await.unwrap().tokens.is_none());
}

#[tokio::test]
async fn a_save_never_replaces_newer_tokens() {
    let temp = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(temp.path());
    let key = key("device");
    let at = |access: &str, secs_left: u64| TokenSet {
        access_token: access.to_string().into(),
        expires_at: Some(UNIX_EPOCH + secs(BASE + secs_left)),
        ..full_tokens()
    };
    store
        .save(&key, &at("later", 600), SaveMode::Replace)
        .await
        .unwrap();
    match store
        .save(&key, &at("sooner", 300), refreshed(1))
        .await
        .unwrap()
    {
        Saved::KeptNewer(kept) => assert_eq!(kept.access_token.expose_secret(), "later"),
        other => panic!("{other:?}"),
    }
    let loaded = store.load(&key).await.unwrap().tokens.unwrap();
    assert_eq!(loaded.access_token.expose_secret(), "later");
    // A new login replaces whatever is there.
    store
        .save(&key, &at("login", 60), SaveMode::Replace)
        .await
        .unwrap();
    let loaded = store.load(&key).await.unwrap().tokens.unwrap();
    assert_eq!(loaded.access_token.expose_secret(), "login");
}

#[cfg(unix)]
#[tokio::test]
async fn files_and_directories_that_are_not_ours_alone_are_refused() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("tokens");
    let store = FileTokenStore::new(&dir);
    let key = key("device");
    store
        .save(&key, &full_tokens(), SaveMode::Replace)
        .await
        .unwrap();
    let path = store.path_for(&key);

    let refused = |error: StoreError, path: &Path, fix: &str| {
        let text = error.to_string();
        assert!(matches!(error, StoreError::NotPrivate(_)), "{text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(fix), "{text}");
    };

    // A token file others may write.
    set_mode(&path, 0o620);
    refused(store.load(&key).await.unwrap_err(), &path, "chmod go-w");
    set_mode(&path, 0o600);

    // A directory others may write (they could swap the file).
    set_mode(&dir, 0o777);
    refused(store.load(&key).await.unwrap_err(), &dir, "chmod go-w");
    refused(
        store
            .save(&key, &full_tokens(), SaveMode::Replace)
            .await
            .unwrap_err(),
        &dir,
        "chmod go-w",
    );
    set_mode(&dir, 0o700);

    // A symlink to a file elsewhere, even a valid token file.
    let elsewhere = temp.path().join("elsewhere.json");
    fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    refused(store.load(&key).await.unwrap_err(), &path, "symbolic link");
    fs::remove_file(&path).unwrap();

    // The directory itself a symlink.
    let linked = FileTokenStore::new(temp.path().join("linked"));
    std::os::unix::fs::symlink(&dir, linked.dir()).unwrap();
    let linked_dir = linked.dir().to_path_buf();
    refused(
        linked.load(&key).await.unwrap_err(),
        &linked_dir,
        "symbolic link",
    );
    refused(
        linked.lease(&key, secs(1)).await.map(drop).unwrap_err(),
        &linked_dir,
        "symbolic link",
    );

    // A file owned by another user (only root can make one).
    if rustix_is_root() {
        fs::rename(&elsewhere, &path).unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        refused(
            store.load(&key).await.unwrap_err(),
            &path,
            "belongs to user id 65534",
        );
    } else {
        eprintln!("notice: not root; the other-owner case is tested in CI (as root)");
    }
}

#[cfg(unix)]
fn rustix_is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid() == 0
}

#[tokio::test]
async fn any_name_maps_to_files_inside_the_directory() {
    let store = FileTokenStore::new("/var/lib/app/tokens");
    assert_eq!(
        store.path_for(&key("../etc/passwd")),
        Path::new("/var/lib/app/tokens/%2E%2E%2Fetc%2Fpasswd.json")
    );
    assert_eq!(
        store.path_for(&key("ciba_user")),
        Path::new("/var/lib/app/tokens/ciba_user.json")
    );
    assert_eq!(
        store.path_for(&key("")),
        Path::new("/var/lib/app/tokens/%.json")
    );
}

fn stored_builder(
    refresh: RefreshFn,
    clock: &Clock,
    store: &Arc<FileTokenStore>,
) -> TokenManagerBuilder {
    builder(refresh, clock).store(store.clone(), owner())
}

#[tokio::test(start_paused = true)]
async fn a_restarted_manager_picks_up_where_it_left_off() {
    let temp = tempfile::tempdir().unwrap();
    let store = Arc::new(FileTokenStore::new(temp.path()));
    let key = key("device");
    let path = store.path_for(&key);
    let clock = Clock::new();
    let calls = Calls::default();
    let refresh = scripted(clock, &calls, Duration::ZERO, hour_tokens);

    let manager = stored_builder(refresh.clone(), &clock, &store).build();
    assert_eq!(secret(&manager.access_token().await), "t1");
    let saved = store.load(&key).await.unwrap().tokens.unwrap();
    assert_eq!(
        saved.access_token.expose_secret(),
        "t1",
        "saved before it was handed out"
    );
    manager
        .store(token("login", Some(clock.wall() + HOUR)))
        .await;
    let saved = store.load(&key).await.unwrap().tokens.unwrap();
    assert_eq!(saved.access_token.expose_secret(), "login", "store() saves");
    drop(manager);

    // "Restart": a new manager loads the saved tokens and needs no refresh.
    let manager = stored_builder(refresh.clone(), &clock, &store).build();
    assert_eq!(secret(&manager.access_token().await), "login");
    assert_eq!(calls.count(), 1);

    manager.clear().await;
    assert!(
        store.load(&key).await.unwrap().is_tombstone(),
        "clear() leaves a tombstone"
    );
    drop(manager);

    // A corrupt file is ignored: the manager fetches anew.
    fs::write(&path, "garbage").unwrap();
    let manager = stored_builder(refresh, &clock, &store).build();
    assert_eq!(secret(&manager.access_token().await), "t2");
}

#[tokio::test(start_paused = true)]
async fn initial_tokens_are_saved_and_a_broken_store_never_fails_a_caller() {
    let temp = tempfile::tempdir().unwrap();
    let clock = Clock::new();
    let calls = Calls::default();
    let refresh = scripted(clock, &calls, Duration::ZERO, hour_tokens);

    let store = Arc::new(FileTokenStore::new(temp.path().join("ok")));
    let manager = stored_builder(refresh.clone(), &clock, &store)
        .initial_tokens(token("given", Some(clock.wall() + HOUR)))
        .build();
    assert_eq!(secret(&manager.access_token().await), "given");
    manager.shutdown().await;
    let saved = store.load(&key("device")).await.unwrap().tokens.unwrap();
    assert_eq!(saved.access_token.expose_secret(), "given");

    // A store whose directory is a file: every call fails.
    let blocked = temp.path().join("blocked");
    fs::write(&blocked, "").unwrap();
    let broken = Arc::new(FileTokenStore::new(&blocked));
    let manager = stored_builder(refresh, &clock, &broken).build();
    let mut events = manager.events();
    assert_eq!(secret(&manager.access_token().await), "t1");
    let mut seen = Vec::new();
    loop {
        let (_, event) = next_event(&clock, &mut events).await;
        seen.push(event.clone());
        if matches!(event, TokenEvent::Refreshed { .. }) {
            break;
        }
    }
    assert!(
        matches!(seen.first(), Some(TokenEvent::StoreUnavailable { error }) if error.to_string().contains("not a directory")),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, TokenEvent::StoreUnavailable { .. }))
            .count(),
        1,
        "reported once: {seen:?}"
    );
}

fn shared_dir() -> (tempfile::TempDir, Arc<dyn TokenStore>) {
    let temp = tempfile::tempdir().unwrap();
    let store = Arc::new(FileTokenStore::new(temp.path().join("tokens")));
    (temp, store)
}

#[tokio::test]
async fn a_login_or_a_logout_starts_a_generation_a_late_refresh_cannot_undo() {
    let (_temp, store) = shared_dir();
    races::generations(store).await;
}

#[tokio::test]
async fn a_save_fenced_by_a_newer_lease_is_refused() {
    let (_temp, store) = shared_dir();
    races::fencing(store).await;
}

#[tokio::test(start_paused = true)]
async fn a_logout_during_a_refresh_sticks() {
    for who in [races::Who::Same, races::Who::Other] {
        let (_temp, store) = shared_dir();
        races::logout_during_refresh(store, who).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_login_during_a_refresh_of_another_person_wins() {
    for who in [races::Who::Same, races::Who::Other] {
        let (_temp, store) = shared_dir();
        races::login_during_refresh(store, who).await;
    }
}

/// 4 s tokens with the default 60 s skew: the refresh schedule takes half
/// their life as its lead, and so does the rule for using tokens another
/// manager stored; one refresh per lifetime is shared by both managers.
#[tokio::test(start_paused = true)]
async fn tokens_shorter_than_the_skew_are_still_shared() {
    let (_temp, store) = shared_dir();
    let clock = Clock::new();
    let calls = Calls::default();
    let refresh = scripted(clock, &calls, Duration::ZERO, |n, clock| {
        Ok(token(&format!("t{n}"), Some(clock.wall() + secs(4))))
    });
    let build = || {
        TokenManager::builder("device", refresh.clone())
            .wall_clock(clock.wall_fn())
            .jitter_source(|| 0.0)
            .store(store.clone(), owner())
            .build()
    };
    let first = build();
    assert_eq!(secret(&first.access_token().await), "t1");
    let second = build();
    assert_eq!(secret(&second.access_token().await), "t1", "loaded");
    // Both are due at 2 s; one refreshes, the other uses its token.
    clock.sleep_until(millis(3000)).await;
    let (a, b) = (first.current().unwrap(), second.current().unwrap());
    assert_eq!(a.access_token.expose_secret(), "t2");
    assert_eq!(b.access_token.expose_secret(), "t2");
    assert_eq!(calls.count(), 2, "refreshes at {:?}", calls.times());
}

/// Calls fail (`Unavailable`, as a Redis blip) while `failing` is above
/// 0, counting down; `u32::MAX`: always.
#[derive(Debug)]
struct Flaky {
    failing: std::sync::atomic::AtomicU32,
}

impl hooked_store::Hooks for Flaky {
    fn before(&self, _call: &'static str) -> onesoidc_tokens::StoreFuture<'_, ()> {
        use std::sync::atomic::Ordering;
        let left = self.failing.load(Ordering::SeqCst);
        if left != 0 && left != u32::MAX {
            self.failing.store(left - 1, Ordering::SeqCst);
        }
        Box::pin(async move {
            if left == 0 {
                return Ok(());
            }
            Err(StoreError::Unavailable {
                store: "flaky".into(),
                message: "no answer (a blip)".into(),
            })
        })
    }
}

/// A manager on `store` whose refresh answers hour-long tokens `t1`, `t2`, ...
fn hour_manager(store: Arc<dyn TokenStore>) -> (Clock, Calls, TokenManager) {
    let clock = Clock::new();
    let calls = Calls::default();
    let refresh = scripted(clock, &calls, Duration::ZERO, hour_tokens);
    let manager = builder(refresh, &clock).store(store, owner()).build();
    (clock, calls, manager)
}

/// A file store in `dir` whose first `failing` calls fail.
fn flaky(dir: &Path, failing: u32) -> Arc<hooked_store::Hooked<Flaky>> {
    Arc::new(hooked_store::Hooked {
        inner: Arc::new(FileTokenStore::new(dir)),
        hooks: Flaky {
            failing: failing.into(),
        },
    })
}

/// Three failed calls in a row (a blip of a few hundred milliseconds) are
/// retried: the refresh goes through the store, which never counts as
/// unavailable.
#[tokio::test(start_paused = true)]
async fn a_store_blip_is_retried_not_a_reason_to_go_alone() {
    let temp = tempfile::tempdir().unwrap();
    let store = flaky(temp.path(), 0);
    let (clock, _calls, manager) = hour_manager(store.clone());
    assert_eq!(secret(&manager.access_token().await), "t1");
    let mut events = manager.events();
    store
        .hooks
        .failing
        .store(3, std::sync::atomic::Ordering::SeqCst);
    let started = clock.elapsed();
    let tokens = manager.force_refresh().await.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "t2");
    assert!(
        clock.elapsed() - started >= millis(700),
        "retried after 100, 200 and 400 ms"
    );
    let (_, event) = next_event(&clock, &mut events).await;
    assert!(
        matches!(event, TokenEvent::Refreshed { .. }),
        "no StoreUnavailable: {event:?}"
    );
    let saved = store.inner.load(&key("device")).await.unwrap();
    assert_eq!(saved.tokens.unwrap().access_token.expose_secret(), "t2");
}

/// A store that stays down: device tokens (no refresh token) are
/// refreshed alone; a person's refresh token is not spent alone (another
/// process may be spending it), and the error says why.
#[tokio::test(start_paused = true)]
async fn a_refresh_token_is_never_spent_alone() {
    let temp = tempfile::tempdir().unwrap();
    let store = flaky(temp.path(), u32::MAX);
    let clock = Clock::new();
    let calls = Calls::default();
    let refresh = scripted(clock, &calls, Duration::ZERO, hour_tokens);
    let device = builder(refresh.clone(), &clock)
        .store(store.clone(), owner())
        .build();
    let mut no_refresh_token = token("device", Some(clock.wall() + secs(30)));
    no_refresh_token.refresh_token = None;
    device.store(no_refresh_token).await;
    assert_eq!(
        device
            .force_refresh()
            .await
            .unwrap()
            .access_token
            .expose_secret(),
        "t1"
    );
    assert_eq!(calls.count(), 1, "device tokens are refreshed alone");

    let user = builder(refresh, &clock)
        .store(store.clone(), owner())
        .build();
    user.store(token("A", Some(clock.wall() + secs(30)))).await;
    let error = user.force_refresh().await.unwrap_err();
    assert_eq!(calls.count(), 1, "the refresh token was not spent");
    let text = error.to_string();
    assert!(text.contains("not refreshing alone"), "{text}");
    assert!(text.contains("no answer (a blip)"), "{text}");
    assert_eq!(
        user.current().unwrap().access_token.expose_secret(),
        "A",
        "the old token stays in use"
    );
}

/// Another process holds the file lease and never lets it go (stopped
/// with SIGSTOP: a file lock has no time limit). A manager waits as long as
/// a live holder could take (refresh timeout 30 s, three store calls of
/// 10 s, a lease of 10 s), then does not spend its refresh token alone.
#[tokio::test(start_paused = true)]
async fn a_stuck_lease_holder_is_waited_for_and_its_refresh_token_left_alone() {
    let (_temp, store) = shared_dir();
    let (clock, calls, manager) = hour_manager(store.clone());
    manager.store(token("A", Some(clock.wall() + HOUR))).await;
    let stuck = store.lease(&key("device"), secs(10)).await.unwrap();
    let started = clock.elapsed();
    let error = manager.force_refresh().await.unwrap_err();
    assert_eq!(clock.elapsed() - started, secs(70), "waited for the holder");
    assert_eq!(calls.count(), 0, "the refresh token was not spent");
    assert!(
        error.to_string().contains("not refreshing alone"),
        "{error}"
    );
    drop(stuck);
}

fn bound_tokens(jkt: &str) -> TokenSet {
    TokenSet {
        token_type: "DPoP".into(),
        dpop_jkt: Some(jkt.into()),
        ..full_tokens()
    }
}

#[tokio::test]
async fn a_bound_token_is_kept_with_its_key_and_adopted_only_by_the_same_key() {
    let temp = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(temp.path());
    let mine = StoreKey::new("device", owner().with_dpop_jkt(Some("jkt-a")));
    store
        .save(&mine, &bound_tokens("jkt-a"), SaveMode::Replace)
        .await
        .unwrap();
    let text = fs::read_to_string(store.path_for(&mine)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["owner"]["dpop_jkt"], "jkt-a");
    assert_eq!(json["tokens"]["dpop_jkt"], "jkt-a");
    assert_eq!(json["version"], 2, "the format is the same version");

    // Another process with the same key (the same identity) adopts it.
    let loaded = store.load(&mine).await.unwrap().tokens.unwrap();
    assert_eq!(loaded.token_type, "DPoP");
    assert_eq!(loaded.dpop_jkt.as_deref(), Some("jkt-a"));

    // One with another key, or without DPoP, never does.
    let other = StoreKey::new("device", owner().with_dpop_jkt(Some("jkt-b")));
    assert!(store.load(&other).await.unwrap().tokens.is_none());
    assert!(store.load(&key("device")).await.unwrap().tokens.is_none());
}

#[tokio::test]
async fn records_written_before_dpop_read_as_bearer() {
    let temp = tempfile::tempdir().unwrap();
    let store = FileTokenStore::new(temp.path());
    let key = key("device");
    // A record as this crate wrote it before DPoP: no `dpop_jkt` anywhere.
    let old = serde_json::json!({
        "format": "onesoidc-tokens", "version": 2, "name": "device",
        "owner": {"issuer": ISSUER, "client_id": "device-1"},
        "generation": 3,
        "tokens": {"access_token": "old-at", "token_type": "Bearer", "expires_at": null,
                   "refresh_token": null, "id_token": null, "scope": null},
    });
    fs::write(store.path_for(&key), old.to_string()).unwrap();
    #[cfg(unix)]
    set_mode(&store.path_for(&key), 0o600);
    let stored = store.load(&key).await.unwrap();
    let tokens = stored.tokens.unwrap();
    assert_eq!(tokens.access_token.expose_secret(), "old-at");
    assert_eq!(
        (tokens.token_type.as_str(), tokens.dpop_jkt),
        ("Bearer", None)
    );
    assert_eq!(stored.generation, 3);
    let bound = StoreKey::new("device", owner().with_dpop_jkt(Some("jkt-a")));
    assert!(store.load(&bound).await.unwrap().tokens.is_none());
}

#[tokio::test]
async fn two_managers_with_the_same_dpop_key_share_one_bound_token_through_the_file_store() {
    let temp = tempfile::tempdir().unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(FileTokenStore::new(temp.path()));
    let key = onesoidc_core::DpopKey::generate().unwrap();
    let jkt = key.thumbprint().to_string();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let manager = |dpop_key: onesoidc_core::DpopKey| {
        let (calls, jkt) = (calls.clone(), dpop_key.thumbprint().to_string());
        let refresh = onesoidc_tokens::refresh_fn(move |_| {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let jkt = jkt.clone();
            async move {
                Ok(TokenSet {
                    access_token: format!("bound-{n}").into(),
                    token_type: "DPoP".into(),
                    expires_at: Some(std::time::SystemTime::now() + Duration::from_secs(3600)),
                    refresh_token: None,
                    id_token: None,
                    scope: None,
                    dpop_jkt: Some(jkt),
                })
            }
        });
        let owner = owner().with_dpop_jkt(Some(dpop_key.thumbprint()));
        TokenManager::builder("device", refresh)
            .store(store.clone(), owner)
            .dpop_key(dpop_key)
            .build()
    };
    let first = manager(key.clone());
    let token = first.access_token().await.unwrap();
    assert_eq!(token.expose_secret(), "bound-0");
    let second = manager(key.clone());
    let adopted = second.access_token().await.unwrap();
    assert_eq!(
        adopted.expose_secret(),
        "bound-0",
        "adopted, not fetched again"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    let url = url::Url::parse("https://app.example/api").unwrap();
    let headers = adopted.authorize("GET", &url).await.unwrap();
    assert_eq!(headers.authorization().expose_secret(), "DPoP bound-0");
    let expect =
        onesoidc_core::DpopProofExpectations::new("GET", &url).access_token("bound-0", &jkt);
    onesoidc_core::verify_dpop_proof(
        headers.dpop().unwrap(),
        &expect,
        std::time::SystemTime::now(),
    )
    .unwrap();

    // A process with another DPoP key does not adopt it: it gets its own.
    let stranger = manager(onesoidc_core::DpopKey::generate().unwrap());
    assert_eq!(
        stranger.access_token().await.unwrap().expose_secret(),
        "bound-1"
    );
}
