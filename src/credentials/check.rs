//! `signet check`: resolve every source once and report what it yields.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use super::resolve::Resolver;
use super::snapshot::access_key_hint;
use super::{CredentialsError, SourceSettings};

/// Resolves each source once and writes one line per source to `out`: its
/// kind, the access key id shortened to its first and last 4 characters, and
/// the expiry. With `identity`, also calls sts:GetCallerIdentity signed by
/// signet's own signer, over TLS set up as `tls` (the upstream client's
/// settings: extra CA bundle, verification), and prints the caller's Arn and
/// Account.
///
/// Returns `Ok(true)` when every source resolved (and every identity call
/// succeeded), `Ok(false)` when any failed; failures are reported in `out`.
pub async fn check(
    sources: &BTreeMap<String, SourceSettings>,
    identity: bool,
    tls: &crate::upstream::TlsSettings,
    out: &mut dyn Write,
) -> Result<bool, CredentialsError> {
    let mut all_ok = true;
    for (name, settings) in sources {
        if let Err(message) = settings.validate() {
            writeln!(out, "{name}: {} INVALID: {message}", settings.kind())?;
            all_ok = false;
            continue;
        }
        let timeout = Duration::from_secs_f64(settings.refresh().fetch_timeout_secs);
        let fetched =
            match tokio::time::timeout(timeout, Resolver::Source(settings.clone()).fetch()).await {
                Ok(result) => result,
                Err(_) => Err(format!("timed out after {:.1}s", timeout.as_secs_f64())),
            };
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(reason) => {
                writeln!(out, "{name}: {} FAILED: {reason}", settings.kind())?;
                all_ok = false;
                continue;
            }
        };
        let role = settings
            .assume_role()
            .map(|r| format!(" role={}", r.role_arn))
            .unwrap_or_default();
        writeln!(
            out,
            "{name}: {} key={} expires={}{role}",
            settings.kind(),
            access_key_hint(&fetched.credentials.access_key_id),
            describe_expiry(fetched.expires_at, SystemTime::now()),
        )?;
        if identity {
            match super::identity::caller_identity(&fetched.credentials, tls).await {
                Ok(caller) => writeln!(
                    out,
                    "{name}: identity arn={} account={}",
                    caller.arn, caller.account
                )?,
                Err(reason) => {
                    writeln!(out, "{name}: identity FAILED: {reason}")?;
                    all_ok = false;
                }
            }
        }
    }
    Ok(all_ok)
}

/// `never` for long-term keys, else the HTTP date and the time left.
fn describe_expiry(expires_at: Option<SystemTime>, now: SystemTime) -> String {
    match expires_at {
        None => "never".to_owned(),
        Some(at) => match at.duration_since(now) {
            Ok(left) => format!(
                "{} (in {}m{:02}s)",
                httpdate::fmt_http_date(at),
                left.as_secs() / 60,
                left.as_secs() % 60
            ),
            Err(_) => format!("{} (already expired)", httpdate::fmt_http_date(at)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

    #[test]
    fn describes_expiry_with_time_left() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(describe_expiry(None, now), "never");
        let text = describe_expiry(Some(now + Duration::from_secs(125)), now);
        assert!(text.ends_with("(in 2m05s)"), "{text}");
        let text = describe_expiry(Some(now - Duration::from_secs(1)), now);
        assert!(text.ends_with("(already expired)"), "{text}");
    }

    /// One static source named `dev`.
    fn static_dev_source() -> BTreeMap<String, SourceSettings> {
        let mut sources = BTreeMap::new();
        sources.insert(
            "dev".to_owned(),
            SourceSettings::Static {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                session_token: None,
                assume_role: None,
                refresh: Default::default(),
            },
        );
        sources
    }

    #[tokio::test]
    async fn check_prints_kind_and_shortened_key_never_the_secret() {
        let sources = static_dev_source();
        let mut out = Vec::new();
        let ok = check(&sources, false, &Default::default(), &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(ok);
        assert_eq!(text, "dev: static key=AKIA…MPLE expires=never\n");
    }

    #[tokio::test]
    async fn identity_check_uses_the_configured_tls_settings() {
        let sources = static_dev_source();
        let tls = crate::upstream::TlsSettings {
            ca_bundle: Some("/nonexistent/signet-check-ca.pem".into()),
            insecure_skip_verify: false,
        };
        let mut out = Vec::new();
        let ok = check(&sources, true, &tls, &mut out).await.unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!ok);
        // The bundle is read (and fails) before any request is sent.
        assert!(
            text.contains("dev: identity FAILED: TLS setup failed")
                && text.contains("/nonexistent/signet-check-ca.pem"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn check_reports_a_failing_source_and_returns_false() {
        let mut sources = BTreeMap::new();
        sources.insert(
            "broken".to_owned(),
            SourceSettings::Profile {
                name: Some("missing".into()),
                credentials_file: Some("/nonexistent/signet/credentials".into()),
                config_file: Some("/nonexistent/signet/config".into()),
                assume_role: None,
                refresh: Default::default(),
            },
        );
        let mut out = Vec::new();
        let ok = check(&sources, false, &Default::default(), &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!ok);
        assert!(text.starts_with("broken: profile FAILED: "), "{text}");
    }
}
