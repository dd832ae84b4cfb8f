//! A store that hands every call to another and lets a test act around
//! them: fail them (a blip, an outage), pause Redis before a load, stop the
//! process after one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use onesoidc_core::TokenSet;
use onesoidc_tokens::{Lease, SaveMode, Saved, StoreFuture, StoreKey, Stored, TokenStore};

/// What a test does around the calls of a [`Hooked`] store.
pub trait Hooks: Send + Sync + fmt::Debug {
    /// Runs before every call (`"load"`, `"save"`, `"remove"`, `"lease"`);
    /// an error fails the call.
    fn before(&self, call: &'static str) -> StoreFuture<'_, ()> {
        let _ = call;
        Box::pin(async { Ok(()) })
    }

    /// Runs after a load returned.
    fn after_load(&self) {}
}

#[derive(Debug)]
pub struct Hooked<H> {
    pub inner: Arc<dyn TokenStore>,
    pub hooks: H,
}

impl<H: Hooks> TokenStore for Hooked<H> {
    fn load<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, Stored> {
        Box::pin(async move {
            self.hooks.before("load").await?;
            let stored = self.inner.load(key).await;
            self.hooks.after_load();
            stored
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        tokens: &'a TokenSet,
        mode: SaveMode,
    ) -> StoreFuture<'a, Saved> {
        Box::pin(async move {
            self.hooks.before("save").await?;
            self.inner.save(key, tokens, mode).await
        })
    }

    fn remove<'a>(&'a self, key: &'a StoreKey) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            self.hooks.before("remove").await?;
            self.inner.remove(key).await
        })
    }

    fn lease<'a>(&'a self, key: &'a StoreKey, hold: Duration) -> StoreFuture<'a, Option<Lease>> {
        Box::pin(async move {
            self.hooks.before("lease").await?;
            self.inner.lease(key, hold).await
        })
    }
}
