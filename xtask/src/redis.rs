//! What the shared-store tests need: `redis-server` (Debian package
//! `redis-server`), passed to `cargo test` as `ONESOIDC_REDIS_SERVER`.
//!
//! Found in the environment or on `PATH`; installed with apt-get under CI
//! (as root); missing outside CI, the Redis tests skip with a notice. Each
//! test starts its own server on a unix socket in a temporary directory
//! (no TCP port at all), stops and restarts it as the test needs, and
//! kills it at the end.

const SERVER_VAR: &str = "ONESOIDC_REDIS_SERVER";

/// The variables for the test run (empty: the Redis tests skip).
pub fn test_env() -> Result<Vec<(&'static str, String)>, String> {
    let found = crate::system::find_or_install("the Redis store tests", &["redis-server"], || {
        std::env::var(SERVER_VAR)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| crate::system::on_path("redis-server"))
    })?;
    Ok(match found {
        Some(server) => {
            eprintln!("xtask: the Redis store tests use {server}");
            vec![(SERVER_VAR, server)]
        }
        None => Vec::new(),
    })
}
