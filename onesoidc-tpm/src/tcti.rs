//! [`Tcti`]: which TPM to talk to, and how.

use std::fmt;
use std::str::FromStr;

use tss_esapi::tcti_ldr::TctiNameConf;

use crate::error::TpmError;

/// The environment variables naming the TCTI, in the order they are read
/// (tpm2-tools' first, then the TSS's own).
pub const TCTI_ENV: [&str; 2] = ["TPM2TOOLS_TCTI", "TSS2_TCTI"];

/// The TPM interface (TCTI) string, e.g. `device:/dev/tpmrm0` or
/// `swtpm:host=127.0.0.1,port=2321`.
///
/// Supported: `device:<path>`, `swtpm:host=…,port=…`, `mssim:host=…,port=…`
/// and `tabrmd:bus_name=…,bus_type=…`. tss-esapi 7 reaches swtpm and the
/// simulator over TCP only: a `path=` (unix socket) is refused rather than
/// silently ignored.
///
/// ```
/// use onesoidc_tpm::Tcti;
/// assert_eq!(Tcti::default().as_str(), "device:/dev/tpmrm0");
/// let tcti: Tcti = "swtpm:host=127.0.0.1,port=2321".parse().unwrap();
/// assert_eq!(tcti.to_string(), "swtpm:host=127.0.0.1,port=2321");
/// assert!("swtpm:path=/tmp/sock".parse::<Tcti>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Tcti {
    text: String,
    conf: TctiNameConf,
}

impl Tcti {
    /// The kernel's TPM resource manager: several processes may use the
    /// TPM at once.
    pub const DEFAULT: &str = "device:/dev/tpmrm0";

    /// The TCTI named by `TPM2TOOLS_TCTI`, else `TSS2_TCTI`, else
    /// [`Tcti::DEFAULT`].
    pub fn from_env() -> Result<Self, TpmError> {
        TCTI_ENV
            .iter()
            .filter_map(|name| std::env::var(name).ok())
            .find(|value| !value.trim().is_empty())
            .map_or_else(|| Ok(Tcti::default()), |value| value.trim().parse())
    }

    /// `explicit` if given (a `--tcti` option), else [`Tcti::from_env`].
    pub fn from_option_or_env(explicit: Option<&str>) -> Result<Self, TpmError> {
        match explicit {
            Some(text) => text.parse(),
            None => Self::from_env(),
        }
    }

    /// The TCTI string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub(crate) fn name_conf(&self) -> TctiNameConf {
        self.conf.clone()
    }
}

impl Default for Tcti {
    fn default() -> Self {
        Self::DEFAULT.parse().unwrap_or_else(|_| Tcti {
            text: Self::DEFAULT.to_owned(),
            conf: TctiNameConf::Device(Default::default()),
        })
    }
}

impl FromStr for Tcti {
    type Err = TpmError;

    fn from_str(text: &str) -> Result<Self, TpmError> {
        let invalid = |reason: String| TpmError::Tcti {
            tcti: text.to_owned(),
            reason,
        };
        let (name, options) = text.split_once(':').unwrap_or((text, ""));
        if matches!(name, "swtpm" | "mssim") {
            for option in options.split(',').filter(|o| !o.is_empty()) {
                let key = option.split_once('=').map_or(option, |(key, _)| key);
                if !matches!(key, "host" | "port") {
                    return Err(invalid(format!(
                        "option `{key}` is not supported (tss-esapi 7 reaches {name} over TCP: use {name}:host=…,port=…)"
                    )));
                }
            }
        }
        let conf = TctiNameConf::from_str(text).map_err(|e| {
            invalid(format!(
                "not a TCTI this build can use ({e}); use device:/dev/tpmrm0, swtpm:host=…,port=…, mssim:host=…,port=… or tabrmd"
            ))
        })?;
        Ok(Tcti {
            text: text.to_owned(),
            conf,
        })
    }
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tcti({:?})", self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tcti_names_are_refused_with_the_string() {
        let err = "nonsense:x".parse::<Tcti>().unwrap_err();
        assert!(err.to_string().contains("`nonsense:x`"), "{err}");
    }

    #[test]
    fn unix_socket_swtpm_is_refused_not_ignored() {
        let err = "swtpm:path=/run/swtpm.sock".parse::<Tcti>().unwrap_err();
        assert!(err.to_string().contains("`path`"), "{err}");
    }

    #[test]
    fn device_paths_are_kept() {
        let tcti: Tcti = "device:/dev/tpm0".parse().unwrap();
        assert_eq!(tcti.as_str(), "device:/dev/tpm0");
    }
}
