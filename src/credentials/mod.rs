//! Credentials from every standard AWS source, kept fresh in the background.
//!
//! [`CredentialsSet::start`] spawns one refresher task per configured source
//! (and one per per-route role). Each refresher resolves credentials through
//! aws-config's providers, refreshes them ahead of expiry, retries failures
//! with capped exponential backoff and publishes an immutable snapshot. The
//! request path reads that snapshot through [`CredentialsHandle::current`],
//! which never awaits and never triggers a fetch.
//!
//! ```no_run
//! # async fn demo() -> Result<(), signet::credentials::CredentialsError> {
//! use std::collections::BTreeMap;
//! use signet::credentials::{CredentialsSet, SourceSettings};
//!
//! let mut sources = BTreeMap::new();
//! sources.insert("default".to_owned(), SourceSettings::default());
//! let set = CredentialsSet::start(&sources, &[])?;
//! let handle = set.handle("default", None).expect("configured");
//! match handle.current() {
//!     Ok(creds) => println!("signing with {}", creds.access_key_id),
//!     Err(unavailable) => println!("503: {unavailable}"),
//! }
//! # Ok(()) }
//! ```

mod check;
mod identity;
mod refresher;
mod resolve;
pub mod settings;
mod snapshot;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::task::JoinHandle;

pub use check::check;
pub use settings::{AssumeRoleSettings, RefreshSettings, Secret, SourceSettings};
pub use snapshot::access_key_hint;

use crate::sigv4::Credentials;
use resolve::Resolver;
use snapshot::SnapshotCell;

/// Errors from starting or checking credential sources.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A source's settings failed validation.
    #[error("credentials.{source_name}: {message}")]
    InvalidSettings {
        /// The source's name in the config.
        source_name: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A route names a source that is not configured.
    #[error("no credentials source named {0:?} (add it under [credentials.{0}])")]
    UnknownSource(String),
    /// `CredentialsSet::start` was called outside a tokio runtime.
    #[error("credential refreshers need a tokio runtime")]
    NoRuntime,
    /// `signet check --identity` could not call sts:GetCallerIdentity.
    #[error("GetCallerIdentity failed: {0}")]
    Identity(String),
    /// Writing the report of `signet check` failed.
    #[error("could not write the check report: {0}")]
    Output(#[from] std::io::Error),
}

/// Why a source has no usable credentials right now. Never contains secrets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("credentials unavailable: {reason}")]
pub struct Unavailable {
    /// The source's last failure, or why its cached credentials no longer count.
    pub reason: String,
}

/// Cheap, cloneable read access to one source's current credentials.
#[derive(Clone)]
pub struct CredentialsHandle {
    cell: Arc<SnapshotCell>,
}

impl fmt::Debug for CredentialsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsHandle")
            .field("source", &self.cell.name)
            .field("kind", &self.cell.kind)
            .finish()
    }
}

impl CredentialsHandle {
    /// The credentials to sign with now, or why there are none. Never awaits.
    pub fn current(&self) -> Result<Arc<Credentials>, Unavailable> {
        self.current_with_expiry().map(|(creds, _)| creds)
    }

    /// Like [`current`](Self::current), with the credentials' expiry.
    pub fn current_with_expiry(
        &self,
    ) -> Result<(Arc<Credentials>, Option<SystemTime>), Unavailable> {
        let snapshot = self.cell.load();
        match (&snapshot.credentials, snapshot.expires_at) {
            (Some(creds), None) => Ok((creds.clone(), None)),
            (Some(creds), Some(expiry)) if SystemTime::now() < expiry => {
                Ok((creds.clone(), Some(expiry)))
            }
            (Some(_), Some(expiry)) => Err(Unavailable {
                reason: match &snapshot.last_error {
                    Some(error) => format!(
                        "{} ({}): cached credentials expired at {}; last refresh failed: {error}",
                        self.cell.name,
                        self.cell.kind,
                        httpdate::fmt_http_date(expiry)
                    ),
                    None => format!(
                        "{} ({}): cached credentials expired at {}",
                        self.cell.name,
                        self.cell.kind,
                        httpdate::fmt_http_date(expiry)
                    ),
                },
            }),
            (None, _) => Err(Unavailable {
                reason: match &snapshot.last_error {
                    Some(error) => format!("{} ({}): {error}", self.cell.name, self.cell.kind),
                    None => format!("{} ({}): not resolved yet", self.cell.name, self.cell.kind),
                },
            }),
        }
    }

    /// A handle that always reads `credentials` (valid until `expires_at`),
    /// a snapshot this source handed out, whatever the source refreshes to
    /// later: for a request that must sign with the very credentials it has
    /// already used (an S3 Express CreateSession, whose session is filed under
    /// their access key id). Unavailable reasons still name the source.
    pub(crate) fn pinned(
        &self,
        credentials: Arc<Credentials>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        Self::holding(
            self.cell.name.clone(),
            self.cell.kind,
            credentials,
            expires_at,
        )
    }

    /// A handle to a source `name` of `kind` that holds `credentials` and
    /// never refreshes.
    pub(crate) fn holding(
        name: String,
        kind: &'static str,
        credentials: Arc<Credentials>,
        expires_at: Option<SystemTime>,
    ) -> Self {
        Self {
            cell: Arc::new(SnapshotCell::holding(name, kind, credentials, expires_at)),
        }
    }

    /// Replaces the credentials, as a refresh would (tests of code that
    /// must cope with a rotation).
    #[cfg(test)]
    pub(crate) fn rotate_to(&self, credentials: Credentials) {
        self.cell.publish(credentials, None);
    }

    /// The state of this source for readiness and metrics.
    pub fn status(&self) -> SourceStatus {
        let snapshot = self.cell.load();
        // Judged on the same snapshot the other fields describe.
        let valid = snapshot.credentials.is_some()
            && snapshot
                .expires_at
                .is_none_or(|expiry| SystemTime::now() < expiry);
        SourceStatus {
            name: self.cell.name.clone(),
            kind: self.cell.kind,
            valid,
            access_key_hint: snapshot
                .credentials
                .as_ref()
                .map(|c| access_key_hint(&c.access_key_id)),
            expires_at: snapshot.expires_at,
            refresh_failures: self.cell.refresh_failures(),
            last_error: snapshot.last_error.clone(),
        }
    }
}

/// The state of one source (or per-route role), for `/readyz` and `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceStatus {
    /// The source's name; a per-route role reads `<source> as <role_arn>`.
    pub name: String,
    /// The source's kind (`imds`, `profile`, ...; `assume_role` for per-route roles).
    pub kind: &'static str,
    /// Whether unexpired credentials are available now.
    pub valid: bool,
    /// First 4 and last 4 characters of the current access key id.
    pub access_key_hint: Option<String>,
    /// When the current credentials expire; `None` for long-term keys.
    pub expires_at: Option<SystemTime>,
    /// Failed fetches since start.
    pub refresh_failures: u64,
    /// The most recent fetch's failure, cleared by the next success.
    pub last_error: Option<String>,
}

/// Every configured source with its running refresher.
pub struct CredentialsSet {
    handles: BTreeMap<(String, Option<String>), CredentialsHandle>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for CredentialsSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsSet")
            .field("sources", &self.handles.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl CredentialsSet {
    /// Validates the sources and spawns one refresher per source and one per
    /// distinct `(source, role_arn)` pair in `route_roles`. Must be called
    /// inside a tokio runtime. Returns at once: credentials become available
    /// as each first fetch completes (see [`CredentialsSet::wait_ready`]).
    pub fn start(
        sources: &BTreeMap<String, SourceSettings>,
        route_roles: &[(String, String)],
    ) -> Result<CredentialsSet, CredentialsError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| CredentialsError::NoRuntime)?;
        for (name, settings) in sources {
            settings
                .validate()
                .map_err(|message| CredentialsError::InvalidSettings {
                    source_name: name.clone(),
                    message,
                })?;
        }
        for (source, role_arn) in route_roles {
            if !sources.contains_key(source) {
                return Err(CredentialsError::UnknownSource(source.clone()));
            }
            settings::validate_role_arn(role_arn).map_err(|message| {
                CredentialsError::InvalidSettings {
                    source_name: source.clone(),
                    message: format!("route role: {message}"),
                }
            })?;
        }

        let mut handles = BTreeMap::new();
        let mut tasks = Vec::new();
        for (name, settings) in sources {
            if let SourceSettings::Static { access_key_id, .. } = settings {
                tracing::warn!(
                    source = %name,
                    key = %access_key_hint(access_key_id),
                    "static credentials in the config file are for local development only"
                );
            }
            let cell = Arc::new(SnapshotCell::new(name.clone(), settings.kind()));
            tasks.push(runtime.spawn(refresher::run(
                cell.clone(),
                Resolver::Source(settings.clone()),
                settings.refresh().clone(),
            )));
            handles.insert((name.clone(), None), CredentialsHandle { cell });
        }
        for (source, role_arn) in route_roles {
            let key = (source.clone(), Some(role_arn.clone()));
            if handles.contains_key(&key) {
                continue;
            }
            let (Some(base), Some(settings)) = (
                handles.get(&(source.clone(), None)).cloned(),
                sources.get(source),
            ) else {
                return Err(CredentialsError::UnknownSource(source.clone()));
            };
            let cell = Arc::new(SnapshotCell::new(
                format!("{source} as {role_arn}"),
                "assume_role",
            ));
            let role = AssumeRoleSettings::new(role_arn.clone());
            tasks.push(runtime.spawn(refresher::run(
                cell.clone(),
                Resolver::RouteRole { base, role },
                settings.refresh().clone(),
            )));
            handles.insert(key, CredentialsHandle { cell });
        }
        Ok(CredentialsSet {
            handles,
            tasks: Mutex::new(tasks),
        })
    }

    /// The handle for `source`, or for the role `role_arn` assumed with it
    /// when a route names one. `None` if it was not configured at start.
    pub fn handle(&self, source: &str, role_arn: Option<&str>) -> Option<CredentialsHandle> {
        self.handles
            .get(&(source.to_owned(), role_arn.map(str::to_owned)))
            .cloned()
    }

    /// The state of every source and per-route role, sorted by name.
    pub fn status(&self) -> Vec<SourceStatus> {
        self.handles
            .values()
            .map(CredentialsHandle::status)
            .collect()
    }

    /// Waits until every source has valid credentials or `timeout` passes;
    /// returns whether all are valid. Useful before opening the listener.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.handles.values().all(|h| h.current().is_ok()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops every refresher. Handles keep returning the last snapshot.
    pub async fn shutdown(&self) {
        let tasks = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for CredentialsSet {
    fn drop(&mut self) {
        if let Ok(tasks) = self.tasks.get_mut() {
            for task in tasks.iter() {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_source() -> SourceSettings {
        SourceSettings::Static {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            assume_role: None,
            refresh: RefreshSettings::default(),
        }
    }

    #[test]
    fn start_outside_a_runtime_is_an_error() {
        let sources = BTreeMap::from([("dev".to_owned(), static_source())]);
        assert!(matches!(
            CredentialsSet::start(&sources, &[]),
            Err(CredentialsError::NoRuntime)
        ));
    }

    #[tokio::test]
    async fn rejects_route_roles_naming_unknown_sources_or_bad_arns() {
        let sources = BTreeMap::from([("dev".to_owned(), static_source())]);
        let err = CredentialsSet::start(
            &sources,
            &[("prod".into(), "arn:aws:iam::123456789012:role/x".into())],
        )
        .unwrap_err();
        assert!(matches!(err, CredentialsError::UnknownSource(ref s) if s == "prod"));
        let err = CredentialsSet::start(&sources, &[("dev".into(), "not-an-arn".into())])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("credentials.dev: route role: role_arn"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn invalid_settings_name_the_source() {
        let mut role = AssumeRoleSettings::new("arn:aws:iam::123456789012:role/x");
        role.session_name = Some("x".repeat(65));
        let sources = BTreeMap::from([(
            "ec2".to_owned(),
            SourceSettings::Imds {
                endpoint: None,
                assume_role: Some(role),
                refresh: RefreshSettings::default(),
            },
        )]);
        let err = CredentialsSet::start(&sources, &[])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("credentials.ec2: session_name"), "{err}");
    }

    #[tokio::test]
    async fn handles_exist_only_for_configured_sources_and_roles() {
        let sources = BTreeMap::from([("dev".to_owned(), static_source())]);
        let role = "arn:aws:iam::123456789012:role/x";
        let set = CredentialsSet::start(&sources, &[("dev".into(), role.into())]).unwrap();
        assert!(set.handle("dev", None).is_some());
        assert!(set.handle("dev", Some(role)).is_some());
        assert!(set
            .handle("dev", Some("arn:aws:iam::123456789012:role/y"))
            .is_none());
        assert!(set.handle("other", None).is_none());
        let names: Vec<String> = set.status().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["dev".to_owned(), format!("dev as {role}")]);
        set.shutdown().await;
    }

    #[test]
    fn unavailable_reasons_say_why_without_secrets() {
        let cell = Arc::new(SnapshotCell::new("ec2".into(), "imds"));
        let handle = CredentialsHandle { cell: cell.clone() };
        assert_eq!(
            handle.current().unwrap_err().to_string(),
            "credentials unavailable: ec2 (imds): not resolved yet"
        );
        cell.record_failure("received 404 from IMDS".into());
        assert_eq!(
            handle.current().unwrap_err().reason,
            "ec2 (imds): received 404 from IMDS"
        );
        let expired = SystemTime::now() - std::time::Duration::from_secs(1);
        cell.publish(
            Credentials {
                access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: "top-secret".into(),
                session_token: Some("token-secret".into()),
            },
            Some(expired),
        );
        cell.record_failure("connection refused".into());
        let reason = handle.current().unwrap_err().reason;
        assert!(reason.contains("cached credentials expired at"), "{reason}");
        assert!(
            reason.ends_with("last refresh failed: connection refused"),
            "{reason}"
        );
        assert!(!reason.contains("secret"));
        let status = handle.status();
        assert!(!status.valid);
        assert_eq!(status.access_key_hint.as_deref(), Some("ASIA…MPLE"));
        assert_eq!(status.refresh_failures, 2);
    }

    #[test]
    fn a_pinned_handle_keeps_its_snapshot_when_the_source_refreshes() {
        let cell = Arc::new(SnapshotCell::new("ec2".into(), "imds"));
        let handle = CredentialsHandle { cell: cell.clone() };
        let creds = |id: &str| Credentials {
            access_key_id: id.into(),
            secret_access_key: "secret".into(),
            session_token: None,
        };
        let later = SystemTime::now() + std::time::Duration::from_secs(600);
        cell.publish(creds("ASIAFIRST0000000001"), Some(later));
        let (first, expires) = handle.current_with_expiry().unwrap();
        let pinned = handle.pinned(first.clone(), expires);
        cell.publish(creds("ASIASECOND000000002"), Some(later));
        assert_eq!(
            handle.current().unwrap().access_key_id,
            "ASIASECOND000000002"
        );
        assert!(Arc::ptr_eq(&pinned.current().unwrap(), &first));
        // It expires when the snapshot does, naming the source.
        let gone = SystemTime::now() - std::time::Duration::from_secs(1);
        let expired = handle.pinned(first, Some(gone));
        let reason = expired.current().unwrap_err().reason;
        assert!(
            reason.starts_with("ec2 (imds): cached credentials expired at"),
            "{reason}"
        );
    }
}
