//! Whose tokens a store holds: [`TokenOwner`] and [`StoreKey`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who the stored tokens were issued to: the provider (issuer) and the
/// client id, and for device tokens asked with a scope or resource, those.
/// A store records it with the tokens and ignores tokens of another owner.
///
/// ```
/// use onesoidc_tokens::TokenOwner;
/// let owner = TokenOwner::new("https://idp.example.com/oidc", "device-1");
/// let other = TokenOwner::new("https://idp.example.com/oidc", "device-2");
/// assert_ne!(owner.fingerprint(), other.fingerprint());
/// assert_eq!(owner.fingerprint().len(), 22);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenOwner {
    /// The issuer that issued the tokens.
    pub issuer: String,
    /// The client they were issued to.
    pub client_id: String,
    /// The scope asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The resource asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// For DPoP-bound tokens, the thumbprint of the key they are bound to
    /// (a process with another key cannot use them). Records written
    /// before DPoP have none: bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
}

impl TokenOwner {
    /// Tokens issued by `issuer` to `client_id`.
    pub fn new(issuer: impl Into<String>, client_id: impl Into<String>) -> Self {
        TokenOwner {
            issuer: issuer.into(),
            client_id: client_id.into(),
            scope: None,
            resource: None,
            dpop_jkt: None,
        }
    }

    /// The owner of tokens `client` gets: its issuer, client id, and with
    /// DPoP on the thumbprint of its DPoP key (which the first call picks,
    /// so it may read discovery and `dpop.pem`).
    #[cfg(feature = "flows")]
    #[cfg_attr(docsrs, doc(cfg(feature = "flows")))]
    pub async fn of_client(
        client: &onesoidc_flows::OnesIdClient,
    ) -> Result<Self, onesoidc_core::Error> {
        let jkt = client
            .dpop_key()
            .await?
            .map(|key| key.thumbprint().to_string());
        Ok(Self::of(client).with_dpop_jkt(jkt))
    }

    /// The same owner, for tokens bound to the DPoP key with thumbprint
    /// `jkt` (`None`: bearer tokens).
    ///
    /// ```
    /// use onesoidc_tokens::TokenOwner;
    /// let bearer = TokenOwner::new("https://idp.example.com/oidc", "device-1");
    /// let bound = bearer.clone().with_dpop_jkt(Some("jkt-1"));
    /// assert_ne!(bearer.fingerprint(), bound.fingerprint());
    /// assert_eq!(bearer.fingerprint(), bearer.clone().with_dpop_jkt(None::<String>).fingerprint());
    /// ```
    pub fn with_dpop_jkt(mut self, jkt: Option<impl Into<String>>) -> Self {
        self.dpop_jkt = jkt.map(Into::into);
        self
    }

    /// The owner of tokens `client` gets: its issuer and client id.
    #[cfg(feature = "flows")]
    #[cfg_attr(docsrs, doc(cfg(feature = "flows")))]
    pub fn of(client: &onesoidc_flows::OnesIdClient) -> Self {
        TokenOwner::new(client.issuer().as_str(), &*client.client_auth().client_id)
    }

    /// The same owner, for tokens asked with `scope`.
    pub fn with_scope(mut self, scope: Option<impl Into<String>>) -> Self {
        self.scope = scope.map(Into::into);
        self
    }

    /// The same owner, for tokens asked for `resource`.
    pub fn with_resource(mut self, resource: Option<impl Into<String>>) -> Self {
        self.resource = resource.map(Into::into);
        self
    }

    /// 22 characters (base64url of 128 bits of SHA-256) that differ between
    /// owners: a shared store puts it in its keys so identities sharing one
    /// server never collide.
    pub fn fingerprint(&self) -> String {
        use base64::Engine as _;
        let mut input = String::new();
        for part in [
            Some(self.issuer.as_str()),
            Some(self.client_id.as_str()),
            self.scope.as_deref(),
            self.resource.as_deref(),
        ] {
            // Length-prefixed, so no two owners give the same input.
            match part {
                Some(part) => input.push_str(&format!("{}:{part};", part.len())),
                None => input.push_str("-;"),
            }
        }
        // Only for bound tokens, so bearer owners keep their fingerprint.
        if let Some(jkt) = &self.dpop_jkt {
            input.push_str(&format!("jkt {}:{jkt};", jkt.len()));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
    }
}

impl fmt::Display for TokenOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} of {}", self.client_id, self.issuer)?;
        if let Some(scope) = &self.scope {
            write!(f, ", scope {scope:?}")?;
        }
        if let Some(resource) = &self.resource {
            write!(f, ", resource {resource}")?;
        }
        if let Some(jkt) = &self.dpop_jkt {
            write!(f, ", bound to DPoP key {jkt}")?;
        }
        Ok(())
    }
}

/// What a store keys tokens by: the manager's name and the tokens' owner.
///
/// ```
/// use onesoidc_tokens::{StoreKey, TokenOwner};
/// let key = StoreKey::new("device", TokenOwner::new("https://idp.example.com/oidc", "d1"));
/// assert_eq!(key.name(), "device");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StoreKey {
    name: String,
    owner: TokenOwner,
}

impl StoreKey {
    /// The key of manager `name`'s tokens, issued to `owner`.
    pub fn new(name: impl Into<String>, owner: TokenOwner) -> Self {
        StoreKey {
            name: name.into(),
            owner,
        }
    }

    /// The manager's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whose tokens.
    pub fn owner(&self) -> &TokenOwner {
        &self.owner
    }

    /// The name, safe as a file name or key part, and different for
    /// different names: ASCII letters, digits, `-` and `_` as they are,
    /// every other byte as `%XX`; `%` alone for the empty name; a name that
    /// would be longer than 120 characters is cut and ends with `~` and a
    /// digest of the whole name.
    ///
    /// ```
    /// use onesoidc_tokens::{StoreKey, TokenOwner};
    /// let owner = TokenOwner::new("https://idp.example.com/oidc", "d1");
    /// assert_eq!(StoreKey::new("../etc/passwd", owner.clone()).escaped_name(), "%2E%2E%2Fetc%2Fpasswd");
    /// assert_eq!(StoreKey::new("", owner.clone()).escaped_name(), "%");
    /// assert!(StoreKey::new("x".repeat(1000), owner).escaped_name().len() <= 120);
    /// ```
    pub fn escaped_name(&self) -> String {
        const MOST: usize = 120;
        if self.name.is_empty() {
            return "%".into();
        }
        let mut escaped = String::with_capacity(self.name.len());
        for byte in self.name.bytes() {
            if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
                escaped.push(char::from(byte));
            } else {
                escaped.push_str(&format!("%{byte:02X}"));
            }
        }
        if escaped.len() > MOST {
            use base64::Engine as _;
            let digest =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.name.as_bytes());
            let digest =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
            let mut cut = MOST - digest.len() - 1;
            while !escaped.is_char_boundary(cut) {
                cut -= 1;
            }
            escaped.truncate(cut);
            escaped.push('~');
            escaped.push_str(&digest);
        }
        escaped
    }
}
