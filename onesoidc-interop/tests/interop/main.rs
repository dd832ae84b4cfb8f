//! onesoidc against the stock `oidc-provider` (OnesID's standard routes).
//!
//! Every test here is ignored by a plain `cargo test`: it needs the provider
//! that `cargo xtask interop` installs and starts (see `onesoidc-interop`'s
//! crate docs). Run them with `cargo xtask interop`.

// First: its macros are used by the modules after it.
#[macro_use]
mod common;

mod ciba;
mod cli;
mod device_token;
mod discovery;
mod dpop;
mod dpop_flows;
mod resource;
mod tokens;
#[cfg(feature = "tpm")]
mod tpm;
