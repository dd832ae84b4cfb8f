//! Files that hold a device identity or tokens, read and written the same
//! way everywhere in onesoidc.
//!
//! - [`read_limited`]: a whole file, refusing one larger than a limit
//!   (without reading it when it has a size, after one byte too many when
//!   it has none: `/dev/zero` ends too).
//! - [`read_private`]: the same for a file that must be ours alone: not
//!   through a symlink, owned by the current user, not writable by group or
//!   others ([`NotPrivate`] names the path and the fix).
//! - [`create_private_dir`]: a directory only the current user can enter
//!   (0700), or an existing one checked the same way ([`check_private_dir`]).
//! - [`open_lock_file`]: a private file to hold an OS lock on (shared
//!   token stores take their refresh lease this way).
//! - [`write_atomically`]: a set of files replaced all or nothing: each
//!   written to a temporary file in its directory with its final mode and
//!   fsynced, then renamed into place in the order given, then each
//!   directory fsynced. A crash leaves the old file or the new one, never
//!   half of one.
//! - [`replace_set`]: a set of files in several directories (an identity:
//!   keys and `device.yml`) replaced all or nothing even across a crash:
//!   staged beside their targets, then one switch file, then renamed;
//!   [`finish_interrupted_set`] completes or abandons an interrupted one.
//! - [`Access`]: who may read and write a file, from its metadata.
//! - [`IdentityPaths`]: where px-device-identity keeps `device.yml` and the
//!   keys (its defaults, `ONESOIDC_DEVICE_CONFIG` and `ONESOIDC_KEY_DIR`).
//!
//! ```
//! use onesoidc_fs::{NewFile, read_limited, write_atomically};
//! let dir = tempfile::tempdir().unwrap();
//! let key = dir.path().join("private.pem");
//! write_atomically(&[NewFile::new(&key, b"secret", 0o600)]).unwrap();
//! assert_eq!(read_limited(&key, 1024).unwrap(), b"secret");
//! let err = read_limited(&key, 3).unwrap_err();
//! assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access;
mod atomic;
mod lock;
mod paths;
mod read;
mod set;

pub use access::{Access, NotPrivate, check_private_dir, create_private_dir};
pub use atomic::{NewFile, create_new_atomically, sync_dir, write_atomically};
pub use lock::open_lock_file;
pub use paths::{
    CONFIG_PATH_ENV, DEFAULT_CONFIG_PATH, IdentityPaths, KEY_DIR_ENV, MAX_IDENTITY_FILE_BYTES,
};
pub use read::{read_limited, read_private};
pub use set::{
    Interrupted, SetStep, finish_interrupted_set, replace_set, replace_set_with, staged_path,
};

/// The crate README's example, compiled and run as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
