//! Item 15 (first part): making a DPoP proof (`DpopKey::proof`, RFC 9449
//! §4.2) against the bare signature of the same bytes, single thread, ES256.
//!
//! Two functions, interleaved in short batches (random order) in one run,
//! so that load from other processes hits both alike:
//!
//! - `proof`: `key.proof("GET", url, Some(token), Some(nonce), now)`, the
//!   whole thing (claims, `jti`, `ath`, JSON, base64url, signature);
//! - `sign`: `Signer::sign` of a real proof's signing input (same length,
//!   same hashing cost), with the same key (the primitive as onesoidc
//!   calls it).
//!
//! Target: proof throughput ≥ 90 % of the bare signature's. Prints
//! `PAIRED<TAB>ES256<TAB>proof ns<TAB>sign ns<TAB>ratio` for
//! `cargo xtask bench 15`.
//!
//! `cargo bench -p onesoidc-benches --bench dpop_proof`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use onesoidc_benches::{Coin, batch_ns, batch_size, median};
use onesoidc_core::{DpopKey, KeyType, PemSigner, Signer};
use url::Url;

/// A realistic access token (the proof carries its hash, `ath`).
const ACCESS_TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwic3ViIjoiZGV2aWNlIiwiY25mIjp7ImprdCI6IjBaY09DT1JaTll5LURXcHFxMzBqWnlKR0hUTjBkMkhnbEJWM3VpZ3VBNEkifX0.c2lnbmF0dXJl";
const NONCE: &str = "eyJ7S_zG.eyJH0-Z.HX4w-7v";

struct Subject {
    key: DpopKey,
    signer: Arc<dyn Signer>,
    url: Url,
    signing_input: Vec<u8>,
}

impl Subject {
    fn new() -> Subject {
        let pem = PemSigner::generate(KeyType::EccP256).unwrap();
        let jwk = pem.public_jwk();
        let signer: Arc<dyn Signer> = Arc::new(pem);
        let key = DpopKey::new(signer.clone(), jwk).unwrap();
        let url = Url::parse("https://app.example.com/api/v1/status?verbose=1").unwrap();
        let sample = key
            .proof(
                "GET",
                &url,
                Some(ACCESS_TOKEN),
                Some(NONCE),
                SystemTime::now(),
            )
            .unwrap();
        let signing_input = sample.as_bytes()[..sample.rfind('.').unwrap()].to_vec();
        Subject {
            key,
            signer,
            url,
            signing_input,
        }
    }

    fn proof(&self) -> usize {
        self.key
            .proof(
                "GET",
                &self.url,
                Some(ACCESS_TOKEN),
                Some(NONCE),
                black_box(SystemTime::now()),
            )
            .unwrap()
            .len()
    }

    fn sign(&self) -> usize {
        self.signer
            .sign(black_box(&self.signing_input))
            .unwrap()
            .len()
    }
}

fn main() {
    if !onesoidc_benches::measuring_run() {
        return;
    }
    const PAIRED_ROUNDS: usize = 200;
    const BATCH: Duration = Duration::from_millis(4);
    let subject = Subject::new();
    let mut coin = Coin::seeded();
    let n = batch_size(BATCH, || subject.sign());
    for _ in 0..3 {
        batch_ns(n, || subject.proof());
        batch_ns(n, || subject.sign());
    }
    let (mut proof, mut sign, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PAIRED_ROUNDS {
        let (p, s) = if coin.flip() {
            let p = batch_ns(n, || subject.proof());
            (p, batch_ns(n, || subject.sign()))
        } else {
            let s = batch_ns(n, || subject.sign());
            (batch_ns(n, || subject.proof()), s)
        };
        proof.push(p);
        sign.push(s);
        ratio.push(s / p);
    }
    let (p, s, q) = (median(&proof), median(&sign), median(&ratio));
    println!(
        "paired ES256: DpopKey::proof {:.1} µs ({:.0}/s), Signer::sign {:.1} µs ({:.0}/s); proof throughput = {:.1} % of sign's (median of {PAIRED_ROUNDS} interleaved rounds of {n}); proof length {} bytes",
        p / 1e3,
        1e9 / p,
        s / 1e3,
        1e9 / s,
        q * 100.0,
        subject.proof()
    );
    println!("PAIRED\tES256\t{p:.1}\t{s:.1}\t{q:.4}");
}
