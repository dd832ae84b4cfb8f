//! Small string types for the values the protocol passes around, so one
//! cannot be given where another is expected (a client id where an
//! endpoint goes, a session id where an `auth_req_id` goes), the way
//! oauth2-rs types its ids and URLs.
//!
//! Each wraps a `String`: build it with `From`/`new`, read it with
//! `as_str` (or as a `&str`, through `Deref`), print it with `Display`. None of them is a secret (tokens are
//! [`SecretString`](crate::SecretString)s).

use std::fmt;

macro_rules! string_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps `value`.
            pub fn new(value: impl Into<String>) -> Self {
                $name(value.into())
            }

            /// The value.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                $name(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                $name(value.to_string())
            }
        }

        impl From<&String> for $name {
            fn from(value: &String) -> Self {
                $name(value.clone())
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

string_type!(
    /// An OAuth client id: the device's (`client_id` in `device.yml`) or an
    /// application's.
    ///
    /// ```
    /// let id = onesoidc_core::ClientId::from("d5fe8500-6003-49fd-9b8f-7adaf102e9a3");
    /// assert_eq!(id.as_str(), "d5fe8500-6003-49fd-9b8f-7adaf102e9a3");
    /// ```
    ClientId
);

string_type!(
    /// The URL of one of the provider's endpoints, e.g. its token endpoint:
    /// what a request is sent to, what a client assertion's `aud` names,
    /// and what an error about a response names.
    ///
    /// ```
    /// let token = onesoidc_core::Endpoint::from("https://idp.example.com/oidc/token");
    /// assert_eq!(token.to_string(), "https://idp.example.com/oidc/token");
    /// ```
    Endpoint
);

string_type!(
    /// Identifies a CIBA authentication request when polling
    /// (`auth_req_id`, CIBA Core §7.3).
    AuthReqId
);

string_type!(
    /// Identifies a QR login session (`session_id`, [PROTOCOL §8](https://github.com/ones-now/onesoidc/blob/main/docs/PROTOCOL.md#8-qr-login-ones-extension)), later sent
    /// as `qr_session_id`.
    QrSessionId
);

string_type!(
    /// Space-separated OAuth scopes, e.g. `openid offline_access profile`.
    ///
    /// ```
    /// let scope = onesoidc_core::Scope::from("openid profile");
    /// assert!(scope.contains("openid"));
    /// assert!(!scope.contains("open"));
    /// ```
    Scope
);

impl Scope {
    /// Whether `name` is one of the scopes.
    pub fn contains(&self, name: &str) -> bool {
        self.0.split_whitespace().any(|s| s == name)
    }

    /// These scopes with `openid` first when it is missing.
    pub fn with_openid(self) -> Self {
        if self.contains("openid") {
            self
        } else {
            Scope(format!("openid {}", self.0).trim().to_string())
        }
    }
}
