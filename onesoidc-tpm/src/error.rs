//! [`TpmError`]: what went wrong, naming the TCTI, the key file and the
//! TPM's response code in words.

use std::path::PathBuf;
use std::time::Duration;

use tss_esapi::constants::response_code::Tss2ResponseCode;

/// Why a TPM key could not be loaded, created or used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TpmError {
    /// The key file is not a usable `TSS2 PRIVATE KEY`.
    #[error("{}: not a usable TSS2 PRIVATE KEY: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TCTI string cannot be used.
    #[error("TPM interface (TCTI) `{tcti}`: {reason}")]
    Tcti {
        /// The TCTI string.
        tcti: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TPM command failed.
    #[error("TPM at `{tcti}`: {operation} for {} failed: {code}", path.display())]
    Tpm {
        /// The TCTI string.
        tcti: String,
        /// The key file.
        path: PathBuf,
        /// The command, in words (`loading the key`).
        operation: &'static str,
        /// The response code and what it means.
        code: String,
    },
    /// The TPM did not answer in time (every call has a deadline).
    #[error("TPM at `{tcti}`: {operation} for {} got no answer within {} s; check that the TPM (or swtpm) is running and not stuck", path.display(), after.as_secs_f64())]
    Timeout {
        /// The TCTI string.
        tcti: String,
        /// The key file.
        path: PathBuf,
        /// The command, in words.
        operation: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// The key is of a kind this signer does not use.
    #[error("{}: {reason}", path.display())]
    Unsupported {
        /// The key file.
        path: PathBuf,
        /// What is not supported and what to do.
        reason: String,
    },
}

impl TpmError {
    /// Whether the TPM connection itself failed (so the next call should
    /// open a fresh one) rather than a command on a working connection.
    pub(crate) fn lost_connection(&self) -> bool {
        match self {
            TpmError::Timeout { .. } | TpmError::Tcti { .. } => true,
            TpmError::Tpm { code, .. } => code.contains("TCTI layer"),
            TpmError::KeyFile { .. } | TpmError::Unsupported { .. } => false,
        }
    }
}

/// The response code of a tss-esapi error, in words: the number, the
/// layer that produced it and what it means.
pub(crate) fn describe(error: tss_esapi::Error) -> String {
    match error {
        tss_esapi::Error::WrapperError(kind) => format!("tss-esapi: {kind}"),
        tss_esapi::Error::Tss2Error(rc) => {
            let Some(code) = raw_code(rc) else {
                return error.to_string();
            };
            let layer = (code >> 16) & 0xff;
            let words = if layer == 0 {
                rc.to_string()
            } else {
                base_code_words(code & 0xffff).to_string()
            };
            format!("{code:#010x} ({} layer: {words})", layer_name(layer))
        }
    }
}

/// tss-esapi 7 has no getter for the number itself; its inner types print
/// it as `Response code value: 0x…`.
fn raw_code(rc: Tss2ResponseCode) -> Option<u32> {
    let text = match rc {
        Tss2ResponseCode::Success => return Some(0),
        Tss2ResponseCode::FormatZero(inner) => inner.to_string(),
        Tss2ResponseCode::FormatOne(inner) => inner.to_string(),
    };
    let hex = text.rsplit("0x").next()?;
    u32::from_str_radix(hex.trim(), 16).ok()
}

/// `TSS2_RC_LAYER_SHIFT` layers of tpm2-tss.
fn layer_name(layer: u32) -> &'static str {
    match layer {
        0 => "TPM",
        6 => "FAPI",
        7 => "ESAPI",
        8 => "SAPI",
        9 => "marshalling",
        10 => "TCTI",
        11 => "resource manager",
        12 => "driver",
        _ => "unknown",
    }
}

/// `TSS2_BASE_RC_*` of tpm2-tss, for errors raised below the TPM.
fn base_code_words(base: u32) -> &'static str {
    match base {
        1 => "general failure",
        2 => "not implemented",
        3 => "bad context",
        4 => "ABI mismatch",
        5 => "bad reference",
        6 => "insufficient buffer",
        7 => "bad sequence",
        8 => "no connection to the TPM",
        9 => "try again",
        10 => "I/O error talking to the TPM (is it running?)",
        11 => "bad value",
        12 => "not permitted",
        13 => "invalid sessions",
        14 => "no decrypt parameter",
        15 => "no encrypt parameter",
        16 => "bad size",
        17 => "malformed response from the TPM",
        18 => "insufficient context",
        19 => "insufficient response",
        20 => "incompatible TCTI",
        21 => "not supported",
        22 => "bad TCTI structure",
        23 => "out of memory",
        24 => "bad ESYS_TR handle",
        25 => "multiple decrypt sessions",
        26 => "multiple encrypt sessions",
        27 => "the TPM's response authorization failed",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcti_io_errors_are_named_by_layer_and_meaning() {
        let error = tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(0x000a_000a));
        let text = describe(error);
        assert_eq!(
            text,
            "0x000a000a (TCTI layer: I/O error talking to the TPM (is it running?))"
        );
    }

    #[test]
    fn tpm_errors_keep_the_tpm_meaning() {
        // TPM_RC_INTEGRITY on parameter 1: a key of another TPM.
        let error = tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(0x0000_01df));
        let text = describe(error);
        assert!(text.starts_with("0x000001df (TPM layer: "), "{text}");
        assert!(text.contains("integrity"), "{text}");
    }
}
