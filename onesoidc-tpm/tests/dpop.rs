//! DPoP proofs from the TPM (issue 26: "a TPM device's proofs come from
//! the TPM"): core's [`DpopKey`] over a [`TpmSigner`] makes proofs that
//! core's own verifier accepts, for each algorithm a TPM key signs with.

mod support;

use std::sync::Arc;
use std::time::SystemTime;

use onesoidc_core::{DpopKey, DpopProofError, DpopProofExpectations, verify_dpop_proof};
use onesoidc_tpm::TpmSigner;
use support::Swtpm;

#[test]
fn proofs_signed_in_the_tpm_pass_verify_dpop_proof_for_es256_es384_and_rs256() {
    let Some(tpm) = Swtpm::start() else { return };
    let cases: [(&[&str], &str); 3] = [
        (&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "ES256"),
        (&["-algorithm", "EC", "-pkeyopt", "group:P-384"], "ES384"),
        (&["-algorithm", "RSA"], "RS256"),
    ];
    let url = url::Url::parse("https://idp.example/oidc/token?x=1").unwrap();
    for (args, alg) in cases {
        let path = tpm.openssl_genpkey(args, &format!("{alg}.pem"));
        let signer =
            TpmSigner::open(&std::fs::read(&path).unwrap(), &path, &tpm.tcti()).expect("loads");
        let jwk = signer.public_jwk();
        let key = DpopKey::new(Arc::new(signer), jwk.clone()).expect("a DPoP key");
        assert_eq!(key.algorithm().as_str(), alg);
        assert_eq!(key.thumbprint(), jwk.thumbprint().unwrap());
        assert!(
            key.signer().blocks(),
            "{alg}: the proof's signer is the TPM"
        );

        let allowed = [alg];
        let now = SystemTime::now();
        let proof = key
            .proof("POST", &url, Some("access-token"), Some("n-1"), now)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let expect = DpopProofExpectations::new("POST", &url)
            .access_token("access-token", key.thumbprint())
            .nonce("n-1")
            .allowed_algorithms(&allowed);
        let checked =
            verify_dpop_proof(&proof, &expect, now).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(checked.key_thumbprint, key.thumbprint(), "{alg}");

        // The check can fail: a proof whose signature is altered is refused.
        let mut altered = proof.clone().into_bytes();
        let at = proof.rfind('.').unwrap() + 5;
        altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        let err = verify_dpop_proof(&altered, &expect, now).unwrap_err();
        assert_eq!(err, DpopProofError::BadSignature, "{alg}");
    }
}
