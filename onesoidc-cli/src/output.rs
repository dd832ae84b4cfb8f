//! Exit codes, error lines, progress and logging.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use onesoidc_core::Error;
use tracing_subscriber::EnvFilter;

/// Something failed.
pub const EXIT_ERROR: u8 = 1;
/// The person denied the login, or cancelled it on the phone.
pub const EXIT_DENIED: u8 = 3;
/// Nobody answered in time: the login, QR session or registration expired.
pub const EXIT_EXPIRED: u8 = 4;
/// `introspect`: the token is not usable now (inactive, expired, or another
/// provider's or client's).
pub const EXIT_NOT_USABLE: u8 = 5;
/// Wrong use of the command (clap's own usage errors exit 2 as well).
pub const EXIT_USAGE: u8 = 2;
/// Cancelled with Ctrl-C.
pub const EXIT_CANCELLED: u8 = 130;

/// A command's failure: the one-line reason and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn usage(message: &str) -> Self {
        Failure {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }

    pub fn cancelled() -> Self {
        Failure {
            message: "cancelled".into(),
            code: EXIT_CANCELLED,
        }
    }
}

impl From<std::sync::Arc<Error>> for Failure {
    fn from(e: std::sync::Arc<Error>) -> Self {
        Failure::from_error(&e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::from_error(&e)
    }
}

impl Failure {
    /// The exit code of `e`: 3 denied or cancelled, 4 nobody answered in
    /// time, 1 anything else.
    fn from_error(e: &Error) -> Self {
        let code = if e.is_denied() {
            EXIT_DENIED
        } else if e.is_expired() {
            EXIT_EXPIRED
        } else {
            EXIT_ERROR
        };
        Failure {
            message: e.to_string(),
            code,
        }
    }
}

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure { message: e.to_string(), code: EXIT_ERROR }
            }
        }
    )*};
}
failure_from!(
    onesoidc_core::ConfigError,
    onesoidc_core::KeyError,
    onesoidc_core::SignError,
    onesoidc_core::TransportError,
    onesoidc_flows::render::RenderError,
    onesoidc_devidp::ConfigError,
    serde_json::Error,
    std::io::Error,
    String,
    &str
);

/// Prints `onesoidc: error: MESSAGE` and returns `code`.
pub fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("onesoidc: error: {message}");
    ExitCode::from(code)
}

/// Logs to stderr; `RUST_LOG` wins over `-v`.
pub fn init_tracing(verbose: u8) {
    // Without -v, token managers stay quiet: the commands that run them
    // report their outcome themselves (the error line, `watch`'s events).
    let default = match verbose {
        0 => "warn,onesoidc_tokens=error",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Prints a JSON value on stdout, on one line (one object per line for scripts).
pub fn print_json(value: &serde_json::Value) {
    out!("{value}");
}

/// A spinner on stderr while waiting for a person; hidden when stderr is
/// not a terminal or output is JSON.
pub fn spinner(json: bool) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `1:05` for 65 s.
pub fn minutes_seconds(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}", s / 60, s % 60)
}

/// A line for the person at the terminal (stderr, so stdout stays for results).
pub fn say(json: bool, message: &str) {
    if !json {
        eprintln!("{message}");
    }
}

/// `println!` that ends the process quietly when stdout is closed (e.g. by
/// `| head`) instead of panicking, and with an error line when it fails otherwise.
macro_rules! out {
    () => { $crate::output::write_stdout(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::write_stdout(format_args!($($arg)*)) };
}
pub(crate) use out;

pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("onesoidc: error: cannot write to stdout: {e}");
        std::process::exit(i32::from(EXIT_ERROR));
    }
}

/// Ctrl-C, listened for from the moment this is created (so a Ctrl-C that
/// comes while the first request is still in flight is not missed).
pub struct Interrupt {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Interrupt {
    pub fn listen() -> Self {
        Interrupt {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    /// Resolves on Ctrl-C.
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = &mut self.signal {
            signal.recv().await;
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: Error) -> u8 {
        Failure::from(e).code
    }

    #[test]
    fn exit_codes_tell_denied_expired_and_errors_apart() {
        let oauth = |error: &str| Error::oauth("https://idp/oidc/token", 400, error, None);
        assert_eq!(code(oauth("access_denied")), EXIT_DENIED);
        assert_eq!(
            code(Error::Cancelled {
                what: "QR session q1".into()
            }),
            EXIT_DENIED
        );
        assert_eq!(code(oauth("expired_token")), EXIT_EXPIRED);
        assert_eq!(
            code(Error::Expired {
                what: "QR session q1".into(),
                after: Duration::from_secs(120)
            }),
            EXIT_EXPIRED
        );
        assert_eq!(code(oauth("invalid_client")), EXIT_ERROR);
        assert_eq!(
            code(Error::LoginRequired {
                reason: "no refresh token".into()
            }),
            EXIT_ERROR
        );
    }
}
