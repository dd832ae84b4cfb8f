//! [`TpmKeyFile`]: the PEM `TSS2 PRIVATE KEY` files tpm2-tss-engine,
//! tpm2-openssl and px-device-identity write for keys that live in a TPM.
//!
//! The file holds no usable private key: its private part is encrypted by
//! the TPM under the parent key and only that TPM can load it.
//!
//! ```asn1
//! TPMKey ::= SEQUENCE {
//!     type        OBJECT IDENTIFIER,           -- 2.23.133.10.1.3 (loadable key)
//!     emptyAuth   [0] EXPLICIT BOOLEAN OPTIONAL,
//!     parent      INTEGER,                      -- 0x40000001: the owner hierarchy
//!     pubkey      OCTET STRING,                 -- TPM2B_PUBLIC
//!     privkey     OCTET STRING                  -- TPM2B_PRIVATE
//! }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Tag, Tagged};
use tss_esapi::structures::{Private, Public, PublicBuffer};
use tss_esapi::traits::{Marshall, UnMarshall};

use crate::error::TpmError;

/// The PEM label of a TPM key file.
pub const PEM_LABEL: &str = "TSS2 PRIVATE KEY";

/// The OID of a loadable TPM key (`id-loadablekey`).
const LOADABLE_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.10.1.3");

/// `TPM2_RH_OWNER`: the key's parent is the owner hierarchy's primary
/// storage key, which the loader recreates from the standard template.
pub const PARENT_OWNER: u32 = 0x4000_0001;

/// The ASN.1 structure, field for field.
#[derive(der::Sequence)]
struct TpmKeyAsn1 {
    key_type: ObjectIdentifier,
    /// A BOOLEAN, read leniently: OpenSSL writes TRUE as 0x01 (BER), not
    /// DER's 0xFF.
    #[asn1(context_specific = "0", optional = "true")]
    empty_auth: Option<Any>,
    parent: u32,
    pubkey: OctetString,
    privkey: OctetString,
}

/// A parsed `TSS2 PRIVATE KEY` file: the parent handle, whether the key
/// has an empty authorization value, and its public and (TPM-encrypted)
/// private parts.
///
/// ```no_run
/// use onesoidc_tpm::TpmKeyFile;
/// let bytes = std::fs::read("/etc/px-device-identity/private.pem")?;
/// let key = TpmKeyFile::from_pem(&bytes, "/etc/px-device-identity/private.pem".as_ref())?;
/// println!("parent {:#x}", key.parent());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TpmKeyFile {
    path: PathBuf,
    parent: u32,
    empty_auth: bool,
    public: Public,
    private: Private,
}

impl fmt::Debug for TpmKeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TpmKeyFile")
            .field("path", &self.path)
            .field("parent", &format_args!("{:#010x}", self.parent))
            .field("empty_auth", &self.empty_auth)
            .field("private", &"[TPM-wrapped]")
            .finish()
    }
}

impl TpmKeyFile {
    /// Parses the PEM text of a key file; `path` names it in errors.
    pub fn from_pem(bytes: &[u8], path: &Path) -> Result<Self, TpmError> {
        let invalid = |reason: String| TpmError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let block = pem::parse(bytes).map_err(|e| invalid(format!("not PEM ({e})")))?;
        if block.tag() != PEM_LABEL {
            return Err(invalid(format!(
                "a PEM `{}` block, not `{PEM_LABEL}`",
                block.tag()
            )));
        }
        Self::from_der(block.contents(), path)
    }

    /// Parses the DER of a key file; `path` names it in errors.
    pub fn from_der(der: &[u8], path: &Path) -> Result<Self, TpmError> {
        let invalid = |reason: String| TpmError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let asn1 = TpmKeyAsn1::from_der(der)
            .map_err(|e| invalid(format!("not a TPMKey ASN.1 structure ({e})")))?;
        if asn1.key_type != LOADABLE_KEY {
            return Err(invalid(format!(
                "key type {} is not a loadable key ({LOADABLE_KEY}); imported and sealed keys are not supported",
                asn1.key_type
            )));
        }
        let public = PublicBuffer::unmarshall(asn1.pubkey.as_bytes())
            .and_then(Public::try_from)
            .map_err(|e| invalid(format!("its public part is not a TPM2B_PUBLIC ({e})")))?;
        let private_blob = tpm2b_contents(asn1.privkey.as_bytes()).ok_or_else(|| {
            invalid("its private part is not a TPM2B_PRIVATE (bad length)".into())
        })?;
        let private = Private::try_from(private_blob.to_vec()).map_err(|e| {
            invalid(format!(
                "its private part is not a TPM2B_PRIVATE ({e}, {} bytes)",
                private_blob.len()
            ))
        })?;
        let empty_auth = match &asn1.empty_auth {
            None => false,
            Some(value) if value.tag() == Tag::Boolean && value.value().len() == 1 => {
                value.value()[0] != 0
            }
            Some(_) => return Err(invalid("its emptyAuth is not a BOOLEAN".into())),
        };
        let parent = match asn1.parent {
            0 => PARENT_OWNER,
            parent => parent,
        };
        Ok(TpmKeyFile {
            path: path.to_path_buf(),
            parent,
            empty_auth,
            public,
            private,
        })
    }

    /// A key file for a key just created under the owner hierarchy's
    /// primary key, with an empty authorization value.
    pub fn new_under_owner(path: &Path, public: Public, private: Private) -> Self {
        TpmKeyFile {
            path: path.to_path_buf(),
            parent: PARENT_OWNER,
            empty_auth: true,
            public,
            private,
        }
    }

    /// The PEM text of the key file, as tpm2-openssl writes it.
    pub fn to_pem(&self) -> Result<String, TpmError> {
        let fail = |reason: String| TpmError::KeyFile {
            path: self.path.clone(),
            reason,
        };
        let pubkey = PublicBuffer::try_from(self.public.clone())
            .and_then(|b| b.marshall())
            .map_err(|e| fail(format!("cannot encode its public part ({e})")))?;
        let private = self.private.value();
        let size = u16::try_from(private.len())
            .map_err(|_| fail("its private part is too long".into()))?;
        let mut privkey = size.to_be_bytes().to_vec();
        privkey.extend_from_slice(private);
        let asn1 = TpmKeyAsn1 {
            key_type: LOADABLE_KEY,
            empty_auth: Some(
                Any::new(Tag::Boolean, [if self.empty_auth { 0xff } else { 0 }])
                    .map_err(|e| fail(e.to_string()))?,
            ),
            parent: self.parent,
            pubkey: OctetString::new(pubkey).map_err(|e| fail(e.to_string()))?,
            privkey: OctetString::new(privkey).map_err(|e| fail(e.to_string()))?,
        };
        let der = asn1.to_der().map_err(|e| fail(e.to_string()))?;
        Ok(pem::encode(&pem::Pem::new(PEM_LABEL, der)))
    }

    /// The file the key was read from (or is to be written to).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parent handle ([`PARENT_OWNER`] for the owner hierarchy).
    pub fn parent(&self) -> u32 {
        self.parent
    }

    /// Whether the key's own authorization value is empty.
    pub fn empty_auth(&self) -> bool {
        self.empty_auth
    }

    /// The key's public area.
    pub fn public(&self) -> &Public {
        &self.public
    }

    pub(crate) fn private(&self) -> &Private {
        &self.private
    }
}

/// The contents of a TPM2B (a big-endian `u16` size, then that many bytes).
fn tpm2b_contents(bytes: &[u8]) -> Option<&[u8]> {
    let (size, rest) = bytes.split_first_chunk::<2>()?;
    (usize::from(u16::from_be_bytes(*size)) == rest.len()).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpm2b_contents_checks_the_length() {
        assert_eq!(tpm2b_contents(&[0, 2, 7, 8]), Some(&[7u8, 8][..]));
        assert_eq!(tpm2b_contents(&[0, 3, 7, 8]), None);
        assert_eq!(tpm2b_contents(&[0]), None);
    }

    #[test]
    fn other_pem_blocks_are_refused_with_their_label() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = TpmKeyFile::from_pem(pem.as_bytes(), "k.pem".as_ref()).unwrap_err();
        assert!(err.to_string().contains("`PRIVATE KEY`"), "{err}");
        assert!(err.to_string().contains("k.pem"), "{err}");
    }

    #[test]
    fn garbage_der_is_an_error() {
        let err = TpmKeyFile::from_der(&[0x30, 0x03, 1, 2], "k.pem".as_ref()).unwrap_err();
        assert!(err.to_string().contains("not a TPMKey"), "{err}");
    }
}
