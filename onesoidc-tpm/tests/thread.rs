//! A dropped signer leaves no thread behind: its TPM thread is joined, so
//! the thread's exit destructors (the TSS libraries' OpenSSL state) have
//! run before a C program that frees its client goes on to exit. One test
//! in a binary of its own, so no other test's TPM thread is counted.

mod support;

use onesoidc_core::Signer;
use onesoidc_tpm::TpmSigner;
use support::Swtpm;

/// The threads of this process named as the signer names its own.
fn tpm_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "onesoidc-tpm")
        .count()
}

#[test]
fn dropping_the_signer_joins_its_thread() {
    let Some(tpm) = Swtpm::start() else { return };
    let path = tpm.openssl_genpkey(&["-algorithm", "EC", "-pkeyopt", "group:P-256"], "k.pem");
    let bytes = std::fs::read(&path).unwrap();
    for _ in 0..3 {
        let signer = TpmSigner::open(&bytes, &path, &tpm.tcti()).expect("loads");
        signer.sign(b"input").expect("signs");
        assert_eq!(tpm_threads(), 1, "the signer's own thread");
        drop(signer);
        assert_eq!(tpm_threads(), 0, "gone once the signer is dropped");
    }
}
