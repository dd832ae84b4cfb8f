//! `PemSigner::from_pem`: never panics; a key that loads signs, exports and
//! re-loads to the same public key. Also `ecdsa_der_to_fixed` on the same bytes.

use std::path::Path;

use onesoidc_core::{PemSigner, Signer, ecdsa_der_to_fixed};

/// One input: never panics; successes respect their invariants.
pub fn run(data: &[u8]) {
    for len in [64, 96, 132] {
        if let Some(fixed) = ecdsa_der_to_fixed(data, len) {
            assert_eq!(fixed.len(), len);
        }
    }
    let path = Path::new("private.pem");
    let Ok(signer) = PemSigner::from_pem(data, path) else {
        return;
    };
    let signature = signer
        .sign(b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJtZSJ9")
        .expect("a loaded key signs");
    if let Some(len) = signer.algorithm().ecdsa_signature_len() {
        assert_eq!(signature.len(), len);
    }
    let jwk = signer.public_jwk();
    jwk.thumbprint().expect("thumbprint of a loaded key");
    let pem = signer.private_key_pem().expect("export");
    let again = PemSigner::from_pem(pem.as_bytes(), path).expect("re-load exported key");
    assert_eq!(again.key_type(), signer.key_type());
    assert_eq!(again.public_jwk(), jwk);
    signer.public_key_pem().expect("public PEM");
}
