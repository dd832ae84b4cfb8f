//! Starting aws-lc's random generator early, on a thread of its own.
//!
//! aws-lc seeds its generator on the first random number a process asks
//! for. In its default configuration that first seeding samples CPU timing
//! jitter for about 60 ms (BENCHMARKS.md, item 5), and every signature
//! (ECDSA nonces, RSA blinding) and TLS handshake waits for it. Started at
//! the beginning of the work, the sampling runs beside what comes before the
//! first signature or handshake: loading the identity, DNS, connecting.
//! The generator and its seed are the same; only the wait moves.

use std::sync::Once;

/// Starts seeding aws-lc's random generator on a thread of its own, once
/// per process; returns at once. [`OnesIdClient::builder`](crate::OnesIdClient::builder)'s
/// `build()` calls it; call it earlier (first thing in `main`) to overlap
/// more of start-up. Costs nothing when the generator is already seeded, or
/// when the build opts out of the jitter sampling
/// (`AWS_LC_SYS_NO_JITTER_ENTROPY=1`).
pub fn warm_up_random_generator() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("onesoidc-rng-warm-up".into())
            .spawn(|| {
                let mut byte = [0u8; 1];
                if aws_lc_rs::rand::fill(&mut byte).is_err() {
                    tracing::warn!("aws-lc's random generator could not be seeded");
                }
            });
        if let Err(error) = spawned {
            tracing::debug!(%error, "cannot start the random generator's warm-up thread");
        }
    });
}
