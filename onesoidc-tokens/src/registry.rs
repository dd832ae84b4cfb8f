//! [`TokenManagerRegistry`]: named managers (the seed's singleton registry).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::TokenError;
use crate::manager::TokenManager;
use crate::refresh::RefreshFn;

/// The conventional name of the device's manager.
pub const DEVICE: &str = "device";
/// The conventional name of the manager of a user logged in by CIBA or QR.
pub const CIBA_USER: &str = "ciba_user";

/// Token managers by name, e.g. [`DEVICE`] and [`CIBA_USER`].
///
/// Make one with [`new`](Self::new) and pass it around, or use the
/// process-wide [`global`](Self::global) one as the seed's singleton did.
/// The registry holds a handle on each manager; dropping the registry (or
/// [`remove`](Self::remove)-ing a manager) ends the manager's background
/// task once no other handle is left, and [`shutdown`](Self::shutdown)
/// stops them all at once.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use onesoidc_tokens::{TokenManagerRegistry, refresh_fn};
/// # let refresh = refresh_fn(|_| async { unimplemented!() });
/// let registry = TokenManagerRegistry::new();
/// let device = registry.create("device", refresh.clone()).unwrap();
/// assert!(registry.create("device", refresh).is_err());
/// assert_eq!(registry.get("device").unwrap().name(), device.name());
/// assert_eq!(registry.names(), ["device"]);
/// registry.shutdown().await;
/// assert!(registry.is_empty());
/// # }
/// ```
#[derive(Default)]
pub struct TokenManagerRegistry {
    managers: RwLock<HashMap<String, TokenManager>>,
}

impl fmt::Debug for TokenManagerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenManagerRegistry")
            .field("names", &self.names())
            .finish()
    }
}

impl TokenManagerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide registry, for code that wants one shared instance.
    ///
    /// Its managers run on the tokio runtime they were created in; when
    /// that runtime shuts down they stop ([`TokenError::Stopped`]). Prefer
    /// [`new`](Self::new) where you can pass the registry along.
    pub fn global() -> &'static TokenManagerRegistry {
        static GLOBAL: OnceLock<TokenManagerRegistry> = OnceLock::new();
        GLOBAL.get_or_init(TokenManagerRegistry::new)
    }

    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, TokenManager>> {
        self.managers.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, TokenManager>> {
        self.managers
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Builds a manager with every default (see
    /// [`TokenManagerBuilder`](crate::TokenManagerBuilder)) and adds it.
    /// Fails with [`TokenError::AlreadyExists`] if the name is taken.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn create(
        &self,
        name: impl Into<String>,
        refresh: RefreshFn,
    ) -> Result<TokenManager, TokenError> {
        let name = name.into();
        match self.write().entry(name) {
            Entry::Occupied(entry) => Err(TokenError::AlreadyExists {
                name: entry.key().clone(),
            }),
            Entry::Vacant(entry) => {
                let manager = TokenManager::new(entry.key().clone(), refresh);
                entry.insert(manager.clone());
                Ok(manager)
            }
        }
    }

    /// Adds a manager built elsewhere (with a
    /// [`TokenManagerBuilder`](crate::TokenManagerBuilder)), under its name.
    /// Fails with [`TokenError::AlreadyExists`] if the name is taken.
    pub fn insert(&self, manager: TokenManager) -> Result<TokenManager, TokenError> {
        match self.write().entry(manager.name().to_string()) {
            Entry::Occupied(entry) => Err(TokenError::AlreadyExists {
                name: entry.key().clone(),
            }),
            Entry::Vacant(entry) => Ok(entry.insert(manager).clone()),
        }
    }

    /// The manager called `name`.
    pub fn get(&self, name: &str) -> Option<TokenManager> {
        self.read().get(name).cloned()
    }

    /// Takes the manager called `name` out. Its background task ends when
    /// the returned handle (and any other) is dropped.
    pub fn remove(&self, name: &str) -> Option<TokenManager> {
        self.write().remove(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().keys().cloned().collect();
        names.sort_unstable();
        names
    }

    /// Every manager, sorted by name.
    pub fn managers(&self) -> Vec<TokenManager> {
        let mut managers: Vec<TokenManager> = self.read().values().cloned().collect();
        managers.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        managers
    }

    /// How many managers there are.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Removes every manager and stops its background task, waiting for
    /// each to end. Handles kept elsewhere then report
    /// [`TokenError::Stopped`] once their token expires. The registry stays
    /// usable.
    pub async fn shutdown(&self) {
        let managers: Vec<TokenManager> = self.write().drain().map(|(_, m)| m).collect();
        for manager in &managers {
            manager.shutdown().await;
        }
    }
}
