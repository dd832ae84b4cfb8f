//! The device's clock against the provider's, estimated from the `Date`
//! header of a provider's answer (RFC 9110 §6.6.1), so that an error caused
//! by a wrong device clock (an ID token "expired" or "issued in the future",
//! a client assertion refused) says so.

use std::fmt;
use std::time::SystemTime;

use crate::response::HttpResponse;
use crate::{CLOCK_SKEW, unix_seconds};

/// How far the device's clock is ahead of the provider's (negative: behind),
/// in whole seconds, from the `Date` of one answer: exact to about a second
/// plus the time the answer took to arrive.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use onesoidc_core::ClockOffset;
/// let answer = http::Response::builder()
///     .header("date", "Sun, 06 Nov 1994 08:49:37 GMT")
///     .body(Vec::new()).unwrap();
/// let device_now = UNIX_EPOCH + Duration::from_secs(784_111_777 + 120);
/// let offset = ClockOffset::from_response(&answer, device_now).unwrap();
/// assert_eq!(offset.device_ahead_secs(), 120);
/// assert!(offset.is_off());
/// assert_eq!(offset.to_string(), "the device clock is 120 s ahead of the provider's (by its Date header)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockOffset {
    device_ahead_secs: i64,
}

impl ClockOffset {
    /// The offset of `now` (the device's clock when the answer arrived)
    /// from the answer's `Date` header; `None` without a usable one.
    pub fn from_response(response: &HttpResponse, now: SystemTime) -> Option<ClockOffset> {
        let date = response.headers().get(http::header::DATE)?.to_str().ok()?;
        let provider = httpdate::parse_http_date(date.trim()).ok()?;
        let (device, provider) = (unix_seconds(now), unix_seconds(provider));
        let device_ahead_secs = i64::try_from(device)
            .ok()?
            .checked_sub(i64::try_from(provider).ok()?)?;
        Some(ClockOffset { device_ahead_secs })
    }

    /// Seconds the device's clock is ahead of the provider's (negative: behind).
    pub fn device_ahead_secs(&self) -> i64 {
        self.device_ahead_secs
    }

    /// Whether the clocks differ by more than the [`CLOCK_SKEW`] tokens
    /// are checked with (60 s): ID tokens and client assertions may then
    /// be refused for being expired or issued in the future.
    pub fn is_off(&self) -> bool {
        self.device_ahead_secs.unsigned_abs() > CLOCK_SKEW.as_secs()
    }
}

impl fmt::Display for ClockOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.device_ahead_secs.unsigned_abs();
        let side = if self.device_ahead_secs >= 0 {
            "ahead of"
        } else {
            "behind"
        };
        write!(
            f,
            "the device clock is {secs} s {side} the provider's (by its Date header)"
        )
    }
}
