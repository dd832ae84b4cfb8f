//! `cargo xtask bench 14`: TPM signatures on swtpm, per algorithm; the
//! native signer vs `openssl pkeyutl -provider tpm2` (one process per
//! signature, what px-based setups do), same key, same run; and a device
//! token with a TPM key vs a file key of the same type, same run.
//!
//! Prints `ROW\titem\twhat\tmeasured\ttarget\tmet` lines for xtask.
//! Needs swtpm and tpm2-openssl (the tests' `support` module starts them).

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use onesoidc_core::{DeviceConfig, KeyType, PemSigner, Signer};
use onesoidc_devidp::{DevIdp, DevIdpConfig};
use onesoidc_flows::{DeviceIdentity, OnesIdClient};
use onesoidc_tpm::TpmSigner;

const INPUT: &[u8] =
    b"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJjbGllbnQtMSIsInN1YiI6ImNsaWVudC0xIn0";

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() - 1) as f64 * p).round() as usize;
    samples[index]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn row(what: &str, measured: String, target: &str, met: &str) {
    println!("ROW\t14\t{what}\t{measured}\t{target}\t{met}");
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(f());
            started.elapsed()
        })
        .collect()
}

fn main() {
    let Some(tpm) = support::Swtpm::start() else {
        row(
            "TPM signatures",
            "not measured: swtpm or tpm2-openssl missing".into(),
            "",
            "n/a",
        );
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let idp = runtime
        .block_on(DevIdp::start(DevIdpConfig::default()))
        .expect("dev IdP");
    let input = tpm.dir.path().join("input");
    std::fs::write(&input, INPUT).expect("input");
    let cases: [(&[&str], KeyType, &str); 3] = [
        (&["-algorithm", "RSA"], KeyType::Rsa2048, "RS256"),
        (
            &["-algorithm", "EC", "-pkeyopt", "group:P-256"],
            KeyType::EccP256,
            "ES256",
        ),
        (
            &["-algorithm", "EC", "-pkeyopt", "group:P-384"],
            KeyType::EccP384,
            "ES384",
        ),
    ];
    for (args, key_type, alg) in cases {
        let key = tpm.openssl_genpkey(args, &format!("{alg}.pem"));
        let pem = std::fs::read(&key).expect("key");
        let signer = TpmSigner::open(&pem, &key, &tpm.tcti()).expect("key loads");
        for _ in 0..5 {
            signer.sign(INPUT).expect("signs");
        }
        let mut native = time(200, || signer.sign(INPUT).expect("signs"));
        let native_p50 = percentile(&mut native, 0.5);
        row(
            &format!("{alg} TPM signature (swtpm), native signer"),
            format!(
                "p50 {}, p90 {} (n = 200)",
                ms(native_p50),
                ms(percentile(&mut native, 0.9))
            ),
            "report",
            "n/a",
        );

        // Device token: the TPM key vs a file key of the same type, alternating.
        let jwk = signer.public_jwk();
        let tpm_client = client(&idp, key_type, Arc::new(signer), &jwk);
        let file = PemSigner::generate(key_type).expect("file key");
        let file_jwk = file.public_jwk();
        let file_client = client(&idp, key_type, Arc::new(file), &file_jwk);
        let (mut with_tpm, mut with_file) = (Vec::new(), Vec::new());
        runtime.block_on(async {
            for _ in 0..3 {
                tpm_client.device_token().await.expect("token");
                file_client.device_token().await.expect("token");
            }
            for _ in 0..50 {
                let started = Instant::now();
                tpm_client.device_token().await.expect("token");
                with_tpm.push(started.elapsed());
                let started = Instant::now();
                file_client.device_token().await.expect("token");
                with_file.push(started.elapsed());
            }
        });
        row(
            &format!("{alg} device token (dev IdP in process): TPM key / file key"),
            format!(
                "{} / {} (medians of 50, alternating)",
                ms(percentile(&mut with_tpm, 0.5)),
                ms(percentile(&mut with_file, 0.5))
            ),
            "report",
            "n/a",
        );
        // The TPM signer must be gone before openssl loads the key: swtpm
        // has three transient object slots.
        drop(tpm_client);

        let digest = if alg == "ES384" { "sha384" } else { "sha256" };
        // tpm2-openssl sometimes opens a second TPM connection while its
        // first is open, which swtpm (one connection at a time) never
        // serves: such a run is stopped after 10 s and counted.
        let mut stuck = 0;
        let mut subprocess: Vec<Duration> = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            let mut child = Command::new("openssl")
                .args([
                    "pkeyutl",
                    "-provider",
                    "tpm2",
                    "-provider",
                    "base",
                    "-sign",
                    "-rawin",
                ])
                .args(["-digest", digest, "-inkey"])
                .arg(&key)
                .arg("-in")
                .arg(&input)
                .env("TPM2OPENSSL_TCTI", tpm.tcti_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("openssl runs");
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    assert!(status.success(), "openssl pkeyutl failed");
                    subprocess.push(started.elapsed());
                    break;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    let _ = child.kill();
                    let _ = child.wait();
                    stuck += 1;
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        if subprocess.is_empty() {
            row(
                &format!("{alg} openssl pkeyutl"),
                "not measured: every run stuck".into(),
                "",
                "n/a",
            );
            continue;
        }
        let subprocess_p50 = percentile(&mut subprocess, 0.5);
        let ratio = native_p50.as_secs_f64() / subprocess_p50.as_secs_f64();
        row(
            &format!("{alg} native / `openssl pkeyutl -provider tpm2` per signature, same key"),
            format!(
                "{} / {} = {ratio:.3}× (p50 of 200 / {}; openssl runs stopped stuck: {stuck})",
                ms(native_p50),
                ms(subprocess_p50),
                subprocess.len()
            ),
            "≤ 1/10 (0.10×)",
            if ratio <= 0.1 { "yes" } else { "NO" },
        );
    }
}

fn client(
    idp: &DevIdp,
    key_type: KeyType,
    signer: Arc<dyn Signer>,
    jwk: &onesoidc_core::PublicJwk,
) -> OnesIdClient {
    let ids = idp.register_device(jwk);
    let yaml = format!(
        "id: {}\nclient_id: {}\nhost: {}\nkey_type: {key_type}\nkey_security: default\n",
        ids.device_id,
        ids.client_id,
        idp.host()
    );
    let config = DeviceConfig::from_yaml_str(&yaml, "device.yml".as_ref()).expect("device.yml");
    OnesIdClient::new(
        DeviceIdentity::from_parts(config, signer),
        idp.in_process_client(),
    )
    .expect("client")
}
