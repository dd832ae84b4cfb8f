//! The TPM connection: one ESAPI context on a thread of its own, so every
//! call can be given a deadline (ESAPI itself waits for the TPM forever).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_ALG_ECC, TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::constants::{AlgorithmIdentifier, CapabilityType};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    CapabilityData, Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket, Public,
    PublicBuilder, PublicEccParametersBuilder, PublicKeyRsa, PublicRsaParametersBuilder,
    RsaExponent, RsaScheme, Signature, SignatureScheme, SymmetricDefinitionObject,
};
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use crate::error::{TpmError, describe};
use crate::key_file::{PARENT_OWNER, TpmKeyFile};
use crate::tcti::Tcti;

/// What a TPM call is, in words, for errors.
type Operation = &'static str;

/// An open ESAPI context with the device key loaded.
struct Session {
    context: Context,
    key: KeyHandle,
    tcti: Tcti,
    path: PathBuf,
}

impl Session {
    /// Opens the TCTI, recreates the owner primary key, loads `key` under
    /// it and flushes the primary again (the key stays loaded).
    fn open(tcti: &Tcti, key: &TpmKeyFile) -> Result<Self, TpmError> {
        let path = key.path();
        if key.parent() != PARENT_OWNER {
            return Err(TpmError::Unsupported {
                path: path.to_path_buf(),
                reason: format!(
                    "its parent is TPM handle {:#010x}; only keys under the owner hierarchy ({PARENT_OWNER:#010x}) are supported",
                    key.parent()
                ),
            });
        }
        if !key.empty_auth() {
            return Err(TpmError::Unsupported {
                path: path.to_path_buf(),
                reason: "the key has its own password (emptyAuth is false); create it without one (px-device-identity and tpm2-openssl do by default)".into(),
            });
        }
        let mut context = connect(tcti)?;
        let fail = |operation| tpm_error(tcti, path, operation);
        let primary =
            owner_primary(&mut context).map_err(fail("recreating the owner primary key"))?;
        let loaded = context.execute_with_session(Some(AuthSession::Password), |ctx| {
            ctx.load(primary, key.private().clone(), key.public().clone())
        });
        // The primary is needed only to load; free its slot either way.
        let _ = context.flush_context(primary.into());
        let key_handle = loaded.map_err(fail(
            "loading the key (a key of another TPM, or an altered file, fails here)",
        ))?;
        Ok(Session {
            context,
            key: key_handle,
            tcti: tcti.clone(),
            path: path.to_path_buf(),
        })
    }

    fn sign(&mut self, digest: Vec<u8>, scheme: SignatureScheme) -> Result<Signature, TpmError> {
        let fail = |operation| tpm_error(&self.tcti, &self.path, operation);
        let digest = Digest::try_from(digest).map_err(fail("preparing the digest"))?;
        let validation = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(fail("preparing the hash check ticket"))?;
        let key = self.key;
        self.context
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.sign(key, digest, scheme, validation)
            })
            .map_err(fail("signing"))
    }
}

fn connect(tcti: &Tcti) -> Result<Context, TpmError> {
    Context::new(tcti.name_conf()).map_err(|e| TpmError::Tcti {
        tcti: tcti.to_string(),
        reason: format!(
            "cannot open it: {}; check that the TPM exists and that this user may use it (group tss), or set TPM2TOOLS_TCTI",
            describe(e)
        ),
    })
}

fn tpm_error(
    tcti: &Tcti,
    path: &Path,
    operation: Operation,
) -> impl Fn(tss_esapi::Error) -> TpmError {
    let tcti = tcti.to_string();
    let path = path.to_path_buf();
    move |e| TpmError::Tpm {
        tcti: tcti.clone(),
        path: path.clone(),
        operation,
        code: describe(e),
    }
}

/// The owner hierarchy's primary storage key, from the template
/// tpm2-tss-engine and tpm2-openssl use (so their keys load under it):
/// ECC P-256, SHA-256 names, AES-128-CFB; RSA 2048 on a TPM without ECC.
fn owner_primary(context: &mut Context) -> tss_esapi::Result<KeyHandle> {
    let has_ecc = context.execute_without_session(|ctx| {
        ctx.get_capability(CapabilityType::Algorithms, u32::from(TPM2_ALG_ECC), 1)
    })?;
    let has_ecc = matches!(has_ecc.0, CapabilityData::Algorithms(ref list) if list.find(AlgorithmIdentifier::Ecc).is_some());
    let attributes = ObjectAttributesBuilder::new()
        .with_user_with_auth(true)
        .with_restricted(true)
        .with_decrypt(true)
        .with_no_da(true)
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .build()?;
    let builder = PublicBuilder::new()
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes);
    let template = if has_ecc {
        builder
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_ecc_parameters(
                PublicEccParametersBuilder::new_restricted_decryption_key(
                    SymmetricDefinitionObject::AES_128_CFB,
                    EccCurve::NistP256,
                )
                .build()?,
            )
            .with_ecc_unique_identifier(EccPoint::default())
            .build()?
    } else {
        builder
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_rsa_parameters(
                PublicRsaParametersBuilder::new_restricted_decryption_key(
                    SymmetricDefinitionObject::AES_128_CFB,
                    RsaKeyBits::Rsa2048,
                    RsaExponent::default(),
                )
                .build()?,
            )
            .with_rsa_unique_identifier(PublicKeyRsa::default())
            .build()?
    };
    context.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
            .map(|primary| primary.key_handle)
    })
}

/// A signing request for the worker thread.
struct Job {
    digest: Vec<u8>,
    scheme: SignatureScheme,
    reply: mpsc::Sender<Result<Signature, TpmError>>,
}

/// The thread that owns a [`Session`]. Dropping it ends the thread and
/// waits (at most [`Worker::CLOSE_WAIT`]) until the session is closed,
/// then joins the thread, so the TSS context and the thread's own state
/// (the system OpenSSL's per-thread error queue, which the TSS libraries
/// use, is freed by a thread-exit destructor that runs after the session
/// is closed) are released when the signer is: a C program that frees its
/// client and exits leaks nothing. A thread stuck past a deadline is not
/// waited for.
pub(crate) struct Worker {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Disconnected once the thread has closed its session and ended.
    ended: mpsc::Receiver<()>,
    /// Set when a call missed its deadline: the thread may never return.
    stuck: AtomicBool,
    tcti: Tcti,
    path: PathBuf,
}

impl Worker {
    /// Starts the thread and opens the session on it, waiting at most
    /// `deadline` for the TPM.
    pub(crate) fn start(
        tcti: &Tcti,
        key: &TpmKeyFile,
        deadline: Duration,
    ) -> Result<Self, TpmError> {
        let (jobs, job_queue) = mpsc::channel::<Job>();
        let (opened, open_result) = mpsc::channel();
        let (ending, ended) = mpsc::channel::<()>();
        let (thread_tcti, thread_key) = (tcti.clone(), key.clone());
        let thread = std::thread::Builder::new()
            .name("onesoidc-tpm".into())
            .spawn(move || {
                // Declared first, so dropped last: after the session.
                let _ending = ending;
                let mut session = match Session::open(&thread_tcti, &thread_key) {
                    Ok(session) => {
                        let _ = opened.send(Ok(()));
                        session
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                        return;
                    }
                };
                for job in job_queue {
                    let _ = job.reply.send(session.sign(job.digest, job.scheme));
                }
            })
            .map_err(|e| TpmError::Tcti {
                tcti: tcti.to_string(),
                reason: format!("cannot start the TPM thread: {e}"),
            })?;
        let worker = Worker {
            jobs: Some(jobs),
            thread: Some(thread),
            ended,
            stuck: AtomicBool::new(false),
            tcti: tcti.clone(),
            path: key.path().to_path_buf(),
        };
        worker.wait(&open_result, "loading the key", deadline)?;
        Ok(worker)
    }

    /// Signs `digest` with `scheme`, waiting at most `deadline`.
    pub(crate) fn sign(
        &self,
        digest: Vec<u8>,
        scheme: SignatureScheme,
        deadline: Duration,
    ) -> Result<Signature, TpmError> {
        let (reply, result) = mpsc::channel();
        let job = Job {
            digest,
            scheme,
            reply,
        };
        if self
            .jobs
            .as_ref()
            .is_none_or(|jobs| jobs.send(job).is_err())
        {
            return Err(self.gone("signing"));
        }
        self.wait(&result, "signing", deadline)
    }

    fn wait<T>(
        &self,
        result: &mpsc::Receiver<Result<T, TpmError>>,
        operation: Operation,
        deadline: Duration,
    ) -> Result<T, TpmError> {
        match result.recv_timeout(deadline) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.stuck.store(true, Ordering::Relaxed);
                Err(TpmError::Timeout {
                    tcti: self.tcti.to_string(),
                    path: self.path.clone(),
                    operation,
                    after: deadline,
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(self.gone(operation)),
        }
    }

    fn gone(&self, operation: Operation) -> TpmError {
        TpmError::Tcti {
            tcti: self.tcti.to_string(),
            reason: format!(
                "{operation} for {}: the TPM thread ended unexpectedly",
                self.path.display()
            ),
        }
    }
}

impl Worker {
    /// How long dropping a worker waits for its thread to close the
    /// session (a local call and a flush; milliseconds on a TPM).
    const CLOSE_WAIT: Duration = Duration::from_secs(1);
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if self.stuck.load(Ordering::Relaxed) {
            return;
        }
        // Disconnected: the session is closed and the thread is past its
        // last TPM call; what is left (thread-local destructors) cannot
        // wait on the TPM, so joining does not hang.
        if let Err(mpsc::RecvTimeoutError::Disconnected) = self.ended.recv_timeout(Self::CLOSE_WAIT)
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

/// The template of a new device key: an unrestricted signing key fixed to
/// this TPM, with an empty password, pinned to the JWS scheme it signs.
pub(crate) fn signing_key_template(key_type: onesoidc_core::KeyType) -> tss_esapi::Result<Public> {
    use onesoidc_core::KeyType;
    let attributes = ObjectAttributesBuilder::new()
        .with_user_with_auth(true)
        .with_sign_encrypt(true)
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .build()?;
    let builder = PublicBuilder::new()
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes);
    let ecc = |curve, hash| {
        PublicEccParametersBuilder::new_unrestricted_signing_key(
            EccScheme::EcDsa(HashScheme::new(hash)),
            curve,
        )
        .build()
    };
    match key_type {
        KeyType::Rsa2048 | KeyType::Rsa3072 => builder
            .with_public_algorithm(PublicAlgorithm::Rsa)
            .with_rsa_parameters(
                PublicRsaParametersBuilder::new_unrestricted_signing_key(
                    RsaScheme::RsaSsa(HashScheme::new(HashingAlgorithm::Sha256)),
                    if key_type == KeyType::Rsa2048 {
                        RsaKeyBits::Rsa2048
                    } else {
                        RsaKeyBits::Rsa3072
                    },
                    RsaExponent::default(),
                )
                .build()?,
            )
            .with_rsa_unique_identifier(PublicKeyRsa::default())
            .build(),
        KeyType::EccP256 => builder
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_ecc_parameters(ecc(EccCurve::NistP256, HashingAlgorithm::Sha256)?)
            .with_ecc_unique_identifier(EccPoint::default())
            .build(),
        KeyType::EccP384 => builder
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_ecc_parameters(ecc(EccCurve::NistP384, HashingAlgorithm::Sha384)?)
            .with_ecc_unique_identifier(EccPoint::default())
            .build(),
        KeyType::EccP521 => builder
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_ecc_parameters(ecc(EccCurve::NistP521, HashingAlgorithm::Sha512)?)
            .with_ecc_unique_identifier(EccPoint::default())
            .build(),
    }
}

/// Creates a key from `template` under the owner primary, on a thread of
/// its own with `deadline`; the private part never leaves the TPM
/// unencrypted.
pub(crate) fn create_key(
    tcti: &Tcti,
    path: &Path,
    template: Public,
    deadline: Duration,
) -> Result<TpmKeyFile, TpmError> {
    let (done, result) = mpsc::channel();
    let (thread_tcti, thread_path) = (tcti.clone(), path.to_path_buf());
    std::thread::Builder::new()
        .name("onesoidc-tpm-create".into())
        .spawn(move || {
            let created = (|| {
                let mut context = connect(&thread_tcti)?;
                let fail = |operation| tpm_error(&thread_tcti, &thread_path, operation);
                let primary = owner_primary(&mut context)
                    .map_err(fail("recreating the owner primary key"))?;
                let created = context.execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.create(primary, template, None, None, None, None)
                });
                let _ = context.flush_context(primary.into());
                let created = created.map_err(fail("creating the key"))?;
                Ok(TpmKeyFile::new_under_owner(
                    &thread_path,
                    created.out_public,
                    created.out_private,
                ))
            })();
            let _ = done.send(created);
        })
        .map_err(|e| TpmError::Tcti {
            tcti: tcti.to_string(),
            reason: format!("cannot start the TPM thread: {e}"),
        })?;
    match result.recv_timeout(deadline) {
        Ok(created) => created,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(TpmError::Timeout {
            tcti: tcti.to_string(),
            path: path.to_path_buf(),
            operation: "creating the key",
            after: deadline,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(TpmError::Tcti {
            tcti: tcti.to_string(),
            reason: format!(
                "creating the key for {}: the TPM thread ended unexpectedly",
                path.display()
            ),
        }),
    }
}
