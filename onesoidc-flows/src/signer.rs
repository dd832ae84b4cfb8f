//! [`CommandSigner`]: signing through an external program, for TPM keys.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onesoidc_core::{JwsAlgorithm, SignError, Signer, ecdsa_der_to_fixed};

/// Environment variable naming px-device-identity's absolute path.
pub const PX_DEVICE_IDENTITY_ENV: &str = "ONESOIDC_PX_DEVICE_IDENTITY";

/// Where px-device-identity is looked for, in order, when
/// [`PX_DEVICE_IDENTITY_ENV`] is not set (never through `PATH`).
pub const PX_DEVICE_IDENTITY_PATHS: [&str; 2] = [
    "/usr/local/bin/px-device-identity",
    "/usr/bin/px-device-identity",
];

/// Most output read from the signing program (a signature is < 1 KiB).
const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

/// Signs through an external program, for `key_security: tpm`.
///
/// The program is called as `PROGRAM --operation SIGN --message <signing input>`
/// and must print the signature base64url without padding. ECDSA signatures
/// may come back DER-encoded; they are converted to the fixed-size `r || s`
/// JWS wants.
///
/// - The program is named by an absolute path, never looked up in `PATH`.
/// - It gets [`timeout`](Self::timeout) (default 10 s) and is killed after.
/// - It blocks while it runs, so it says so ([`Signer::blocks`]): the flows
///   sign with it on tokio's blocking pool, not on an async worker.
///
/// ```no_run
/// use onesoidc_core::{JwsAlgorithm, Signer};
/// use onesoidc_flows::CommandSigner;
/// let signer = CommandSigner::px_device_identity(JwsAlgorithm::RS256);
/// let signature = signer.sign(b"header.claims")?;
/// # Ok::<(), onesoidc_core::SignError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CommandSigner {
    program: PathBuf,
    algorithm: JwsAlgorithm,
    timeout: Duration,
}

impl CommandSigner {
    /// How long the program may take by default.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Signs with px-device-identity: the absolute path in
    /// `ONESOIDC_PX_DEVICE_IDENTITY` if set, else the first of
    /// [`PX_DEVICE_IDENTITY_PATHS`] that exists.
    pub fn px_device_identity(algorithm: JwsAlgorithm) -> Self {
        let program = std::env::var_os(PX_DEVICE_IDENTITY_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                PX_DEVICE_IDENTITY_PATHS
                    .iter()
                    .map(PathBuf::from)
                    .find(|p| p.exists())
            })
            .unwrap_or_else(|| PathBuf::from(PX_DEVICE_IDENTITY_PATHS[0]));
        Self::new(program, algorithm)
    }

    /// Signs with `program` (an absolute path), which takes
    /// px-device-identity's SIGN arguments.
    pub fn new(program: impl Into<PathBuf>, algorithm: JwsAlgorithm) -> Self {
        CommandSigner {
            program: program.into(),
            algorithm,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// How long the program may take before it is killed (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The program it runs.
    pub fn program(&self) -> &Path {
        &self.program
    }

    fn fail(&self, reason: String) -> SignError {
        SignError::Command {
            command: format!("{} --operation SIGN", self.program.display()),
            reason,
        }
    }

    /// Runs the program; its stdout once it exits successfully in time.
    fn run(&self, message: &str) -> Result<Vec<u8>, SignError> {
        if !self.program.is_absolute() {
            return Err(self.fail(format!(
                "the program must be named by an absolute path; set {PX_DEVICE_IDENTITY_ENV}"
            )));
        }
        let mut child = Command::new(&self.program)
            .args(["--operation", "SIGN", "--message", message])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                self.fail(format!(
                    "cannot run it ({e}); install px-device-identity or set {PX_DEVICE_IDENTITY_ENV} to its absolute path"
                ))
            })?;
        let deadline = Instant::now()
            .checked_add(self.timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(24 * 3600));
        let status = match wait_until(&mut child, deadline) {
            Ok(Some(status)) => status,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.fail(format!(
                    "it did not answer within {} s and was stopped",
                    self.timeout.as_secs_f64()
                )));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(self.fail(format!("cannot wait for it: {e}")));
            }
        };
        let read = |pipe: Option<&mut dyn Read>| {
            let mut bytes = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_OUTPUT_BYTES).read_to_end(&mut bytes);
            }
            bytes
        };
        let stdout = read(child.stdout.as_mut().map(|p| p as &mut dyn Read));
        if !status.success() {
            let stderr = read(child.stderr.as_mut().map(|p| p as &mut dyn Read));
            let stderr = String::from_utf8_lossy(&stderr);
            return Err(self.fail(format!("{status}: {}", stderr.trim())));
        }
        Ok(stdout)
    }
}

/// Waits for `child` to exit until `deadline`; `None` when it is still
/// running then. Checks with a growing interval (1 ms up to 25 ms).
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

impl Signer for CommandSigner {
    fn algorithm(&self) -> JwsAlgorithm {
        self.algorithm
    }

    fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        let message = std::str::from_utf8(signing_input)
            .map_err(|_| self.fail("the signing input is not UTF-8".into()))?;
        let stdout = self.run(message)?;
        let printed = String::from_utf8_lossy(&stdout);
        let printed = printed.trim().trim_end_matches('=');
        let raw = URL_SAFE_NO_PAD
            .decode(printed)
            .map_err(|e| self.fail(format!("printed something that is not base64url ({e})")))?;
        match self.algorithm.ecdsa_signature_len() {
            None => Ok(raw),
            Some(len) if raw.len() == len => Ok(raw),
            Some(len) => ecdsa_der_to_fixed(&raw, len).ok_or_else(|| {
                self.fail(format!(
                    "printed a {}-byte signature that is neither {len}-byte r||s nor DER",
                    raw.len()
                ))
            }),
        }
    }

    fn blocks(&self) -> bool {
        true
    }
}
