//! A TPM 2.0 device key for onesoidc: [`TpmSigner`] implements
//! onesoidc-core's [`Signer`](onesoidc_core::Signer) over a key that never
//! leaves the TPM, through tss-esapi (no Python, no subprocess, no OpenSSL
//! engine).
//!
//! - [`TpmKeyFile`]: the PEM `TSS2 PRIVATE KEY` files px-device-identity,
//!   tpm2-tss-engine and tpm2-openssl write (and [`TpmSigner::create_key`]
//!   makes).
//! - [`Tcti`]: which TPM: `TPM2TOOLS_TCTI`, `TSS2_TCTI` or an option,
//!   default `device:/dev/tpmrm0` (the kernel's resource manager).
//! - [`TpmError`]: errors naming the TCTI, the key file and the TPM's
//!   response code in words.
//!
//! A crate of its own so that users without a TPM never compile or link
//! the TSS libraries: `onesoidc-flows` and the CLI use it behind their
//! `tpm` feature.
//!
//! ```no_run
//! use onesoidc_core::Signer;
//! use onesoidc_tpm::{Tcti, TpmSigner};
//! let path = std::path::Path::new("/etc/px-device-identity/private.pem");
//! let signer = TpmSigner::open(&std::fs::read(path)?, path, &Tcti::from_env()?)?;
//! assert!(signer.blocks());
//! println!("{} key, signs {}", signer.key_type(), signer.algorithm().as_str());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod device;
mod error;
mod key_file;
mod public_key;
mod signer;
mod tcti;

pub use error::TpmError;
pub use key_file::{PARENT_OWNER, PEM_LABEL, TpmKeyFile};
pub use onesoidc_core::is_tpm_key_pem;
pub use signer::TpmSigner;
pub use tcti::{TCTI_ENV, Tcti};
