//! The public key of a TPM key as an SPKI PEM (`public.pem`), from the
//! components of its public area.

use der::asn1::{Any, BitString, Null, ObjectIdentifier, Uint};
use der::{Encode, Sequence};

/// `rsaEncryption`.
const RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ecPublicKey`.
const EC: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

#[derive(Sequence)]
struct AlgorithmIdentifier {
    algorithm: ObjectIdentifier,
    parameters: Any,
}

#[derive(Sequence)]
struct SubjectPublicKeyInfo {
    algorithm: AlgorithmIdentifier,
    subject_public_key: BitString,
}

#[derive(Sequence)]
struct RsaPublicKey {
    modulus: Uint,
    public_exponent: Uint,
}

/// A public key's components.
pub(crate) enum Components<'a> {
    /// RSA: big-endian modulus and exponent.
    Rsa { n: &'a [u8], e: &'a [u8] },
    /// EC: the curve's OID and the fixed-width coordinates.
    Ec {
        curve: &'static str,
        x: &'a [u8],
        y: &'a [u8],
    },
}

/// The SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of `components`.
pub(crate) fn spki_pem(components: &Components<'_>) -> der::Result<String> {
    let (algorithm, key) = match components {
        Components::Rsa { n, e } => {
            let key = RsaPublicKey {
                modulus: Uint::new(n)?,
                public_exponent: Uint::new(e)?,
            };
            (
                AlgorithmIdentifier {
                    algorithm: RSA,
                    parameters: Any::encode_from(&Null)?,
                },
                key.to_der()?,
            )
        }
        Components::Ec { curve, x, y } => (
            AlgorithmIdentifier {
                algorithm: EC,
                parameters: Any::encode_from(&ObjectIdentifier::new(curve)?)?,
            },
            [&[4u8][..], x, y].concat(),
        ),
    };
    let spki = SubjectPublicKeyInfo {
        algorithm,
        subject_public_key: BitString::from_bytes(&key)?,
    };
    Ok(pem::encode(&pem::Pem::new("PUBLIC KEY", spki.to_der()?)))
}
