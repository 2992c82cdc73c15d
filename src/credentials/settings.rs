//! Typed settings for credential sources, as they appear under `[credentials.<name>]`.
//!
//! ```toml
//! [credentials.default]
//! kind = "chain"
//!
//! [credentials.analytics]
//! kind = "web_identity"
//! assume_role = { role_arn = "arn:aws:iam::111122223333:role/analytics-reader" }
//!
//! [credentials.dev]
//! kind = "profile"
//! name = "dev"
//! refresh = { min_remaining_secs = 120 }
//! ```
//!
//! Secrets deserialize into [`Secret`], which never prints: `Debug` shows
//! `<redacted>` and `Serialize` writes `"<redacted>"`, so the effective config
//! printed by `signet check --config` is safe to share.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret string from the config file (secret access key, session token).
///
/// `Debug`, `Display` and `Serialize` all redact it; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Pass it to the signer, never to a log or an error.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// One named credential source: where the credentials come from, an optional
/// role to assume with them, and how the refresher keeps them fresh.
///
/// Every variant accepts `assume_role` and `refresh`; read them through
/// [`SourceSettings::assume_role`] and [`SourceSettings::refresh`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSettings {
    /// The standard AWS SDK chain in its usual order: environment, profile files
    /// (`AWS_PROFILE`), web identity, container endpoint, EC2 instance metadata.
    Chain {
        /// Profile to use instead of `AWS_PROFILE` / `default`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        /// Role to assume with the resolved credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assume_role: Option<AssumeRoleSettings>,
        /// Refresh tuning.
        #[serde(default)]
        refresh: RefreshSettings,
    },
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    Environment {
        /// Role to assume with the resolved credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assume_role: Option<AssumeRoleSettings>,
        /// Refresh tuning.
        #[serde(default)]
        refresh: RefreshSettings,
    },
    /// A profile from the shared credentials and config files: static keys,
    /// `role_arn` + `source_profile` chains, `credential_source`,
    /// `credential_process` and SSO sessions (`aws sso login`).
    Profile {
        /// Profile name; defaults to `AWS_PROFILE`, then `default`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Shared credentials file; defaults to `AWS_SHARED_CREDENTIALS_FILE`,
        /// then `~/.aws/credentials`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_file: Option<PathBuf>,
        /// Shared config file; defaults to `AWS_CONFIG_FILE`, then `~/.aws/config`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        config_file: Option<PathBuf>,
        /// Role to assume with the resolved credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assume_role: Option<AssumeRoleSettings>,
        /// Refresh tuning.
        #[serde(default)]
        refresh: RefreshSettings,
    },
    /// A web identity token exchanged with STS (IRSA on EKS).
    WebIdentity {
        /// Token file; defaults to `AWS_WEB_IDENTITY_TOKEN_FILE`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_file: Option<PathBuf>,
        /// Role to assume; defaults to `AWS_ROLE_ARN`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role_arn: Option<String>,
        /// Session name; defaults to `AWS_ROLE_SESSION_NAME`, then `signet`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_name: Option<String>,
        /// Role to assume with the resolved credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assume_role: Option<AssumeRoleSettings>,
        /// Refresh tuning.
        #[serde(default)]
        refresh: RefreshSettings,
    },
    /// The container credentials endpoint: ECS task roles
    /// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` / `_FULL_URI`) and EKS Pod
    /// Identity (with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`).
    Container {
        /// Role to assume with the resolved credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assume_role: Option<AssumeRoleSettings>,
        /// Refresh tuning.
        #[serde(default)]
        refresh: RefreshSettings,
    },
    /// The EC2 instance role through IMDSv2.
    Imds {
        /// Metadata endpoint; defaults to `AWS_EC2_METADATA_SERVICE_ENDPOINT`,
        /// then `http://169.254.169.254`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        /// Role to assume with the resolved credentials.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assume_role: Option<AssumeRoleSettings>,
        /// Refresh tuning.
        #[serde(default)]
        refresh: RefreshSettings,
    },
    /// Keys written in the config file. For local development only: signet
    /// warns at start when a source of this kind is configured.
    Static {
        /// The access key id.
        access_key_id: String,
        /// The secret access key (redacted when printed).
        secret_access_key: Secret,
        /// The session token of temporary keys (redacted when printed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session_token: Option<Secret>,
        /// Role to assume with these keys.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assume_role: Option<AssumeRoleSettings>,
        /// Refresh tuning.
        #[serde(default)]
        refresh: RefreshSettings,
    },
}

impl Default for SourceSettings {
    fn default() -> Self {
        SourceSettings::Chain {
            profile: None,
            assume_role: None,
            refresh: RefreshSettings::default(),
        }
    }
}

/// A role assumed through STS `AssumeRole` with the credentials of a source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRoleSettings {
    /// The role to assume, `arn:<partition>:iam::<account>:role/<name>`.
    pub role_arn: String,
    /// External id the role's trust policy requires, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Session name (2 to 64 characters of `[A-Za-z0-9+=,.@_-]`); defaults to `signet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// Requested session duration in seconds (900 to 43200); STS's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
    /// Region of the STS endpoint; defaults to `AWS_REGION`, then `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl AssumeRoleSettings {
    /// A role with every optional field unset.
    pub fn new(role_arn: impl Into<String>) -> Self {
        Self {
            role_arn: role_arn.into(),
            external_id: None,
            session_name: None,
            duration_secs: None,
            region: None,
        }
    }

    /// Checks the role ARN, session name and duration.
    pub fn validate(&self) -> Result<(), String> {
        validate_role_arn(&self.role_arn)?;
        if let Some(name) = &self.session_name {
            validate_session_name(name)?;
        }
        if let Some(external_id) = &self.external_id {
            if external_id.len() < 2 || external_id.len() > 1224 {
                return Err("assume_role.external_id must be 2 to 1224 characters".into());
            }
        }
        if let Some(secs) = self.duration_secs {
            if !(900..=43_200).contains(&secs) {
                return Err(format!(
                    "assume_role.duration_secs must be between 900 and 43200, got {secs}"
                ));
            }
        }
        if let Some(region) = &self.region {
            validate_region(region, "assume_role.region")?;
        }
        Ok(())
    }
}

/// How the refresher keeps a source's credentials fresh. All durations are in
/// seconds and may be fractional, so tests can run on short timescales.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefreshSettings {
    /// Refresh when less than `max(min_remaining_secs, lifetime_fraction × lifetime)`
    /// of the credentials' lifetime remains. Default 300 (5 minutes).
    pub min_remaining_secs: f64,
    /// See `min_remaining_secs`. Default 0.2.
    pub lifetime_fraction: f64,
    /// The refresh moves earlier by a random part of up to this fraction of
    /// the refresh margin, so many signets do not refresh in lockstep. Default 0.1.
    pub jitter_fraction: f64,
    /// First retry delay after a failed fetch; it doubles per failure. Default 1.
    pub backoff_base_secs: f64,
    /// Longest retry delay. Default 60.
    pub backoff_cap_secs: f64,
    /// How often files the source reads (shared credentials and config files,
    /// token files) are checked for changes. Default 5.
    pub file_poll_secs: f64,
    /// A fetch taking longer than this counts as failed. Default 30.
    pub fetch_timeout_secs: f64,
}

impl Default for RefreshSettings {
    fn default() -> Self {
        Self {
            min_remaining_secs: 300.0,
            lifetime_fraction: 0.2,
            jitter_fraction: 0.1,
            backoff_base_secs: 1.0,
            backoff_cap_secs: 60.0,
            file_poll_secs: 5.0,
            fetch_timeout_secs: 30.0,
        }
    }
}

impl RefreshSettings {
    /// Checks that every duration is positive and finite and every fraction lies in `[0, 1)`.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("min_remaining_secs", self.min_remaining_secs),
            ("backoff_base_secs", self.backoff_base_secs),
            ("backoff_cap_secs", self.backoff_cap_secs),
            ("file_poll_secs", self.file_poll_secs),
            ("fetch_timeout_secs", self.fetch_timeout_secs),
        ];
        for (key, value) in positive {
            if !(value.is_finite() && value > 0.0 && value < 1.0e9) {
                return Err(format!(
                    "refresh.{key} must be a positive number of seconds, got {value}"
                ));
            }
        }
        for (key, value) in [
            ("lifetime_fraction", self.lifetime_fraction),
            ("jitter_fraction", self.jitter_fraction),
        ] {
            if !(value.is_finite() && (0.0..1.0).contains(&value)) {
                return Err(format!(
                    "refresh.{key} must be at least 0 and below 1, got {value}"
                ));
            }
        }
        if self.backoff_cap_secs < self.backoff_base_secs {
            return Err(
                "refresh.backoff_cap_secs must not be below refresh.backoff_base_secs".into(),
            );
        }
        Ok(())
    }
}

impl SourceSettings {
    /// The `kind` name as written in the config file.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSettings::Chain { .. } => "chain",
            SourceSettings::Environment { .. } => "environment",
            SourceSettings::Profile { .. } => "profile",
            SourceSettings::WebIdentity { .. } => "web_identity",
            SourceSettings::Container { .. } => "container",
            SourceSettings::Imds { .. } => "imds",
            SourceSettings::Static { .. } => "static",
        }
    }

    /// The role assumed with this source's credentials, if any.
    pub fn assume_role(&self) -> Option<&AssumeRoleSettings> {
        match self {
            SourceSettings::Chain { assume_role, .. }
            | SourceSettings::Environment { assume_role, .. }
            | SourceSettings::Profile { assume_role, .. }
            | SourceSettings::WebIdentity { assume_role, .. }
            | SourceSettings::Container { assume_role, .. }
            | SourceSettings::Imds { assume_role, .. }
            | SourceSettings::Static { assume_role, .. } => assume_role.as_ref(),
        }
    }

    /// Refresh tuning for this source.
    pub fn refresh(&self) -> &RefreshSettings {
        match self {
            SourceSettings::Chain { refresh, .. }
            | SourceSettings::Environment { refresh, .. }
            | SourceSettings::Profile { refresh, .. }
            | SourceSettings::WebIdentity { refresh, .. }
            | SourceSettings::Container { refresh, .. }
            | SourceSettings::Imds { refresh, .. }
            | SourceSettings::Static { refresh, .. } => refresh,
        }
    }

    /// Checks the settings once at start. The message names the offending key
    /// relative to the source (`assume_role.session_name`, `refresh.backoff_cap_secs`).
    pub fn validate(&self) -> Result<(), String> {
        self.refresh().validate()?;
        if let Some(role) = self.assume_role() {
            role.validate()?;
        }
        match self {
            SourceSettings::Profile { name, .. } | SourceSettings::Chain { profile: name, .. } => {
                if let Some(name) = name {
                    if name.trim().is_empty() {
                        return Err("profile name must not be empty".into());
                    }
                }
            }
            SourceSettings::WebIdentity {
                role_arn,
                session_name,
                ..
            } => {
                if let Some(arn) = role_arn {
                    validate_role_arn(arn)?;
                }
                if let Some(name) = session_name {
                    validate_session_name(name)?;
                }
            }
            SourceSettings::Imds {
                endpoint: Some(endpoint),
                ..
            } => {
                let uri: http::Uri = endpoint
                    .parse()
                    .map_err(|_| format!("endpoint {endpoint:?} is not a valid URL"))?;
                if uri.scheme().is_none() || uri.host().is_none() {
                    return Err(format!(
                        "endpoint {endpoint:?} must be an absolute URL such as http://169.254.169.254"
                    ));
                }
            }
            SourceSettings::Static {
                access_key_id,
                secret_access_key,
                ..
            } => {
                if access_key_id.len() < 16
                    || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Err(
                        "access_key_id must be at least 16 letters and digits (AKIA... or ASIA...)"
                            .into(),
                    );
                }
                if secret_access_key.expose().is_empty() {
                    return Err("secret_access_key must not be empty".into());
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Checks an IAM role ARN's shape: `arn:<partition>:iam::<12-digit account>:role/<name>`.
pub fn validate_role_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "iam"
        && parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "role_arn {arn:?} is not an IAM role ARN (arn:aws:iam::123456789012:role/name)"
        ))
    }
}

/// Checks an STS role session name: 2 to 64 characters of `[A-Za-z0-9+=,.@_-]`.
pub fn validate_session_name(name: &str) -> Result<(), String> {
    if name.len() < 2 || name.len() > 64 {
        return Err(format!(
            "session_name must be 2 to 64 characters, got {}",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "+=,.@_-".contains(*c)))
    {
        return Err(format!(
            "session_name may only contain letters, digits and +=,.@_- (found {bad:?})"
        ));
    }
    Ok(())
}

/// The same check routes get: the shape of an AWS region name.
fn validate_region(region: &str, key: &str) -> Result<(), String> {
    if !crate::routing::endpoint::is_region_name(region) {
        return Err(format!(
            "{key} {region:?} is not a region name such as us-east-1"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<SourceSettings, String> {
        let value: toml_like::Value = toml_like::from_str(toml_text)?;
        serde_json::from_value(value).map_err(|e| e.to_string())
    }

    /// Minimal TOML reading through the `config` crate, the loader signet uses.
    mod toml_like {
        pub type Value = serde_json::Value;
        pub fn from_str(text: &str) -> Result<Value, String> {
            config::Config::builder()
                .add_source(config::File::from_str(text, config::FileFormat::Toml))
                .build()
                .and_then(|c| c.try_deserialize::<Value>())
                .map_err(|e| e.to_string())
        }
    }

    #[test]
    fn default_is_the_sdk_chain() {
        assert_eq!(SourceSettings::default().kind(), "chain");
        assert!(SourceSettings::default().validate().is_ok());
    }

    #[test]
    fn parses_each_kind_with_assume_role_and_refresh() {
        let s = parse(
            r#"
            kind = "web_identity"
            token_file = "/var/run/secrets/token"
            [assume_role]
            role_arn = "arn:aws:iam::111122223333:role/reader"
            session_name = "signet-test"
            duration_secs = 3600
            [refresh]
            min_remaining_secs = 1.5
            "#,
        )
        .unwrap();
        assert_eq!(s.kind(), "web_identity");
        assert_eq!(
            s.assume_role().map(|r| r.role_arn.as_str()),
            Some("arn:aws:iam::111122223333:role/reader")
        );
        assert_eq!(s.refresh().min_remaining_secs, 1.5);
        assert_eq!(s.refresh().backoff_cap_secs, 60.0);
        assert!(s.validate().is_ok());
        for kind in ["chain", "environment", "profile", "container", "imds"] {
            let s = parse(&format!("kind = \"{kind}\"")).unwrap();
            assert_eq!(s.kind(), kind);
            assert!(s.validate().is_ok(), "{kind}");
        }
    }

    #[test]
    fn whole_numbers_are_accepted_for_second_fields() {
        let s = parse("kind = \"imds\"\n[refresh]\nbackoff_base_secs = 2\nbackoff_cap_secs = 30")
            .unwrap();
        assert_eq!(s.refresh().backoff_base_secs, 2.0);
        assert_eq!(s.refresh().backoff_cap_secs, 30.0);
    }

    #[test]
    fn rejects_unknown_fields_and_kinds() {
        assert!(parse("kind = \"imds\"\nendpont = \"http://x\"").is_err());
        assert!(parse("kind = \"sso\"").is_err());
        assert!(parse("kind = \"imds\"\n[refresh]\njitter = 1").is_err());
    }

    #[test]
    fn static_secrets_never_print() {
        let s = parse(
            r#"
            kind = "static"
            access_key_id = "AKIAIOSFODNN7EXAMPLE"
            secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            session_token = "FQoGZXIvYXdzEXAMPLETOKEN"
            "#,
        )
        .unwrap();
        let debug = format!("{s:?}");
        let json = serde_json::to_string(&s).unwrap();
        for out in [&debug, &json] {
            assert!(!out.contains("wJalrXUtnFEMI"), "{out}");
            assert!(!out.contains("FQoGZXIv"), "{out}");
            assert!(out.contains("AKIAIOSFODNN7EXAMPLE"), "{out}");
        }
        match &s {
            SourceSettings::Static {
                secret_access_key, ..
            } => assert_eq!(
                secret_access_key.expose(),
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            ),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_session_name_over_64_characters() {
        let mut role = AssumeRoleSettings::new("arn:aws:iam::111122223333:role/reader");
        role.session_name = Some("a".repeat(65));
        assert!(role.validate().unwrap_err().contains("64"));
        role.session_name = Some("a".repeat(64));
        assert!(role.validate().is_ok());
        role.session_name = Some("has space".into());
        assert!(role.validate().is_err());
    }

    #[test]
    fn rejects_malformed_role_arns_and_durations() {
        assert!(validate_role_arn("arn:aws:iam::111122223333:role/x").is_ok());
        assert!(validate_role_arn("arn:aws-cn:iam::111122223333:role/path/x").is_ok());
        assert!(validate_role_arn("arn:aws:iam::1111:role/x").is_err());
        assert!(validate_role_arn("arn:aws:iam::111122223333:user/x").is_err());
        assert!(validate_role_arn("role/x").is_err());
        let mut role = AssumeRoleSettings::new("arn:aws:iam::111122223333:role/reader");
        role.duration_secs = Some(60);
        assert!(role.validate().unwrap_err().contains("duration_secs"));
    }

    #[test]
    fn checks_the_sts_region_as_routes_check_regions() {
        let mut role = AssumeRoleSettings::new("arn:aws:iam::111122223333:role/reader");
        for good in ["us-east-1", "us-gov-west-1", "cn-north-1", "ap-southeast-9"] {
            role.region = Some(good.into());
            assert_eq!(role.validate(), Ok(()), "{good}");
        }
        for bad in ["us-est-1", "useast1", "", "us-east"] {
            role.region = Some(bad.into());
            let e = role.validate().unwrap_err();
            assert!(
                e.starts_with("assume_role.region") && e.contains("region name"),
                "{e}"
            );
        }
    }

    #[test]
    fn rejects_nonsensical_refresh_tuning() {
        let mut r = RefreshSettings::default();
        assert!(r.validate().is_ok());
        r.lifetime_fraction = 1.5;
        assert!(r.validate().unwrap_err().contains("lifetime_fraction"));
        let r = RefreshSettings {
            backoff_cap_secs: 0.5,
            ..Default::default()
        };
        assert!(r.validate().unwrap_err().contains("backoff_cap_secs"));
        let r = RefreshSettings {
            file_poll_secs: 0.0,
            ..Default::default()
        };
        assert!(r.validate().is_err());
    }
}
