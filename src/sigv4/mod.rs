//! AWS Signature Version 4, written for the proxy's hot path.
//!
//! Pure: no I/O, no async, and no dependency on the rest of the crate.

use std::fmt;

/// An AWS access key pair and optional session token, as the signer uses them.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA...` or `ASIA...`).
    pub access_key_id: String,
    /// The secret access key. Never printed.
    pub secret_access_key: String,
    /// The session token of temporary credentials. Never printed.
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &self.session_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
