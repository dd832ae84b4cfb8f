//! The TPM signer against a real TPM 2.0 in software (swtpm), with keys
//! made by another tool (tpm2-openssl), each signature verified by
//! aws-lc-rs; and bad input: each a clear error, no panic, no hang.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{JwsAlgorithm, KeyType, PublicJwk, SignError, Signer};
use onesoidc_tpm::{Tcti, TpmError, TpmSigner};
use support::Swtpm;

/// openssl genpkey arguments, file name, key type, verification, JWS signature length.
type KeyCase = (
    &'static [&'static str],
    &'static str,
    KeyType,
    &'static dyn VerificationAlgorithm,
    usize,
);

const INPUT: &[u8] = b"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJkZXZpY2UifQ";

fn b64(text: &Option<String>) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text.as_deref().expect("JWK member"))
        .expect("base64url")
}

/// Verifies `sig` over `INPUT` with the JWK's own components.
fn verify_with_jwk(jwk: &PublicJwk, sig: &[u8]) {
    match jwk.kty.as_str() {
        "RSA" => RsaPublicKeyComponents {
            n: b64(&jwk.n),
            e: b64(&jwk.e),
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, INPUT, sig)
        .expect("RS256 signature verifies with the JWK"),
        _ => {
            let alg: &dyn VerificationAlgorithm = match jwk.crv.as_deref() {
                Some("P-384") => &ECDSA_P384_SHA384_FIXED,
                _ => &ECDSA_P256_SHA256_FIXED,
            };
            let point = [vec![4], b64(&jwk.x), b64(&jwk.y)].concat();
            UnparsedPublicKey::new(alg, point)
                .verify(INPUT, sig)
                .expect("ECDSA signature verifies with the JWK")
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("key file")
}

#[test]
fn keys_made_by_tpm2_openssl_load_and_sign_and_aws_lc_verifies() {
    let Some(tpm) = Swtpm::start() else { return };
    let cases: [KeyCase; 3] = [
        (
            &["-algorithm", "RSA"],
            "rsa.pem",
            KeyType::Rsa2048,
            &RSA_PKCS1_2048_8192_SHA256,
            256,
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "group:P-256"],
            "p256.pem",
            KeyType::EccP256,
            &ECDSA_P256_SHA256_FIXED,
            64,
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "group:P-384"],
            "p384.pem",
            KeyType::EccP384,
            &ECDSA_P384_SHA384_FIXED,
            96,
        ),
    ];
    for (args, name, key_type, verify_alg, len) in cases {
        let path = tpm.openssl_genpkey(args, name);
        // openssl's view of the public key, taken before the signer holds
        // swtpm's one connection.
        let spki = tpm.openssl_public_der(&path);
        let signer = TpmSigner::open(&read(&path), &path, &tpm.tcti()).expect("key loads");
        assert_eq!(signer.key_type(), key_type);
        let ours = pem::parse(signer.public_key_pem()).expect("public.pem is PEM");
        assert_eq!(ours.tag(), "PUBLIC KEY");
        assert_eq!(
            ours.contents(),
            &spki[..],
            "{name}: the same SPKI as openssl's"
        );
        assert_eq!(signer.algorithm(), key_type.jws_algorithm());
        assert!(signer.blocks(), "a TPM signer waits on a device");
        // Several signatures through the one context.
        for _ in 0..3 {
            let sig = signer.sign(INPUT).expect("signs");
            assert_eq!(sig.len(), len, "{name}: JWS signature width");
            UnparsedPublicKey::new(verify_alg, &spki)
                .verify(INPUT, &sig)
                .unwrap_or_else(|_| panic!("{name}: signature verifies with openssl's public key"));
            verify_with_jwk(&signer.public_jwk(), &sig);
        }
        assert_eq!(
            signer.public_jwk().alg.as_deref(),
            Some(key_type.jws_algorithm().as_str())
        );
    }
}

#[test]
fn the_signer_is_usable_behind_core_signer_trait() {
    let Some(tpm) = Swtpm::start() else { return };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let signer: std::sync::Arc<dyn Signer> =
        std::sync::Arc::new(TpmSigner::open(&read(&path), &path, &tpm.tcti()).expect("loads"));
    assert_eq!(signer.algorithm(), JwsAlgorithm::ES256);
    // Debug shows the key file and TCTI, never key material.
    let debug = format!("{signer:?}");
    assert!(
        debug.contains("k.pem") && debug.contains("swtpm:host=127.0.0.1"),
        "{debug}"
    );
    assert!(debug.contains("[TPM-wrapped]"), "{debug}");
}

#[test]
fn a_truncated_key_file_is_a_clear_error() {
    let Some(tpm) = Swtpm::start() else { return };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let block = pem::parse(read(&path)).expect("pem");
    let der = block.contents();
    for cut in [der.len() - 1, der.len() / 2, 10] {
        let truncated = pem::encode(&pem::Pem::new("TSS2 PRIVATE KEY", der[..cut].to_vec()));
        let err = TpmSigner::open(truncated.as_bytes(), &path, &tpm.tcti()).unwrap_err();
        assert!(matches!(err, TpmError::KeyFile { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("k.pem") && text.contains("TSS2 PRIVATE KEY"),
            "{text}"
        );
    }
    let err = TpmSigner::open(b"not a key", &path, &tpm.tcti()).unwrap_err();
    assert!(err.to_string().contains("not PEM"), "{err}");
}

#[test]
fn an_altered_private_blob_is_refused_by_the_tpm_with_its_code() {
    let Some(tpm) = Swtpm::start() else { return };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let block = pem::parse(read(&path)).expect("pem");
    let mut der = block.contents().to_vec();
    // The last bytes are the encrypted private part: flip one.
    let at = der.len() - 5;
    der[at] ^= 0x55;
    let altered = pem::encode(&pem::Pem::new("TSS2 PRIVATE KEY", der));
    let err = TpmSigner::open(altered.as_bytes(), &path, &tpm.tcti()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TpmError::Tpm { .. }), "{text}");
    assert!(text.contains(&tpm.tcti_string()), "names the TCTI: {text}");
    assert!(text.contains("k.pem"), "names the key file: {text}");
    assert!(
        text.contains("loading the key"),
        "names the command: {text}"
    );
    assert!(
        text.contains("TPM layer"),
        "names the response code: {text}"
    );
}

#[test]
fn a_key_of_another_tpm_does_not_load() {
    let Some(first) = Swtpm::start() else { return };
    let path = first.openssl_genpkey(&["-algorithm", "RSA"], "k.pem");
    let pem = read(&path);
    let Some(second) = Swtpm::start() else { return };
    let err = TpmSigner::open(&pem, &path, &second.tcti()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TpmError::Tpm { .. }), "{text}");
    assert!(
        text.contains(&second.tcti_string()) && text.contains("loading the key"),
        "{text}"
    );
    // The same file still loads in its own TPM.
    TpmSigner::open(&pem, &path, &first.tcti()).expect("loads in its own TPM");
}

#[test]
fn a_missing_tpm_is_a_clear_error_naming_the_tcti() {
    let Some(mut tpm) = Swtpm::start() else {
        return;
    };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let pem = read(&path);
    let tcti = tpm.tcti();
    tpm.kill();
    let started = Instant::now();
    let err = TpmSigner::open(&pem, &path, &tcti).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    let text = err.to_string();
    assert!(matches!(err, TpmError::Tcti { .. }), "{text}");
    assert!(
        text.contains(tcti.as_str()) && text.contains("cannot open"),
        "{text}"
    );

    let device: Tcti = "device:/nonexistent/tpmrm0".parse().expect("parses");
    let err = TpmSigner::open(&pem, &path, &device).unwrap_err();
    assert!(
        err.to_string().contains("device:/nonexistent/tpmrm0"),
        "{err}"
    );
}

/// A TCTI whose library is not installed (tpm2-abrmd's `tabrmd` here;
/// where it is installed, no tpm2-abrmd runs in the test): a clear error
/// naming it, within the deadline.
#[test]
fn a_tcti_that_cannot_be_loaded_is_a_clear_error_naming_it() {
    let Some(tpm) = Swtpm::start() else { return };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let tcti: Tcti = "tabrmd:bus_name=com.example.NoSuchTpm2AccessBroker"
        .parse()
        .expect("parses");
    let deadline = Duration::from_secs(3);
    let started = Instant::now();
    let err = TpmSigner::open_with_deadline(&read(&path), &path, &tcti, deadline).unwrap_err();
    assert!(started.elapsed() < deadline * 2, "no hang");
    let text = err.to_string();
    assert!(
        matches!(err, TpmError::Tcti { .. } | TpmError::Timeout { .. }),
        "{text}"
    );
    assert!(
        text.contains("tabrmd:bus_name=com.example.NoSuchTpm2AccessBroker"),
        "{text}"
    );
}

#[test]
fn a_tpm_killed_mid_run_fails_the_next_signatures_without_hanging() {
    let Some(mut tpm) = Swtpm::start() else {
        return;
    };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-384"], "k.pem");
    let signer = TpmSigner::open(&read(&path), &path, &tpm.tcti()).expect("loads");
    signer.sign(INPUT).expect("signs while the TPM runs");
    tpm.kill();
    for _ in 0..2 {
        let started = Instant::now();
        let err = signer.sign(INPUT).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(10), "no hang");
        let SignError::Device { device, reason } = &err else {
            panic!("a device error: {err}");
        };
        assert!(device.contains(&tpm.tcti_string()), "{err}");
        assert!(
            reason.contains("TCTI") || reason.contains("cannot open"),
            "{err}"
        );
    }
}

#[test]
fn a_tpm_that_stops_answering_hits_the_deadline() {
    let Some(tpm) = Swtpm::start() else { return };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let deadline = Duration::from_secs(2);
    let signer =
        TpmSigner::open_with_deadline(&read(&path), &path, &tpm.tcti(), deadline).expect("loads");
    signer.sign(INPUT).expect("signs while the TPM answers");
    tpm.freeze();
    let started = Instant::now();
    let err = signer.try_sign(INPUT).unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, TpmError::Timeout { .. }), "{err}");
    assert!(
        waited >= deadline && waited < deadline * 3,
        "waited {waited:?}"
    );
    assert!(err.to_string().contains("no answer within 2 s"), "{err}");
    // The next call does not queue behind the stuck one: it tries a new
    // connection, which the frozen TPM does not answer either.
    let started = Instant::now();
    assert!(signer.try_sign(INPUT).is_err());
    assert!(started.elapsed() < deadline * 3, "no hang");
    tpm.thaw();
}

#[test]
fn signatures_verify_under_the_jwk_it_reports() {
    let Some(tpm) = Swtpm::start() else { return };
    let path = tpm.openssl_genpkey(&["-algorithm", "RSA"], "rsa.pem");
    let signer = TpmSigner::open(&read(&path), &path, &tpm.tcti()).expect("loads");
    let jwk = signer.public_jwk();
    assert_eq!(jwk.kty, "RSA");
    assert_eq!(jwk.e.as_deref(), Some("AQAB"));
    let sig = signer.sign(INPUT).expect("signs");
    verify_with_jwk(&jwk, &sig);
    // A changed input does not verify: the check above can fail.
    let other = RsaPublicKeyComponents {
        n: b64(&jwk.n),
        e: b64(&jwk.e),
    }
    .verify(&signature::RSA_PKCS1_2048_8192_SHA256, b"other", &sig);
    assert!(other.is_err());
}

/// Two signers with contexts of their own (as two processes have) sign at
/// once through one swtpm: swtpm's TCTI connects per command and swtpm
/// serves one connection at a time, so the commands are serialized by
/// swtpm itself (no tpm2-abrmd; on a device, the kernel's /dev/tpmrm0).
#[test]
fn two_contexts_sign_at_once_through_one_swtpm() {
    let Some(tpm) = Swtpm::start() else { return };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let pem = read(&path);
    let signers: Vec<TpmSigner> = (0..2)
        .map(|_| TpmSigner::open(&pem, &path, &tpm.tcti()).expect("loads"))
        .collect();
    let jwk = signers[0].public_jwk();
    std::thread::scope(|scope| {
        let workers: Vec<_> = signers
            .iter()
            .map(|signer| scope.spawn(|| (0..20).map(|_| signer.sign(INPUT)).collect::<Vec<_>>()))
            .collect();
        for worker in workers {
            for signature in worker.join().expect("no panic") {
                verify_with_jwk(
                    &jwk,
                    &signature.expect("signs while the other context signs"),
                );
            }
        }
    });
}
