//! Typed settings for the upstream path: retries, timeouts, in-flight limits and TLS.
//!
//! Every struct deserializes with `deny_unknown_fields` and fills missing fields from
//! its [`Default`], so a config file names only what it changes. Durations are humane
//! strings (`"150ms"`, `"20s"`, `"2m"`) through [`duration_serde`].
//!
//! ```
//! use signet::upstream::RetrySettings;
//! let retry: RetrySettings = serde_json::from_str(r#"{ "max_attempts": 5, "base_backoff": "200ms" }"#).unwrap();
//! assert_eq!(retry.max_attempts, 5);
//! assert!(retry.validate().is_ok());
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest duration any upstream setting accepts (one day); longer values are typos.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// How retries pace attempts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetryMode {
    /// Exponential backoff with full jitter and a retry budget (the AWS SDKs' standard mode).
    #[default]
    Standard,
    /// Standard, plus a client-side rate limiter that slows sending while the upstream
    /// throttles (the AWS SDKs' adaptive mode, CUBIC-style rate recovery).
    Adaptive,
}

/// Per-route retry policy.
///
/// Backoff is "full jitter": before retry `n` (1-based) signet sleeps a uniformly random
/// time in `[0, min(max_backoff, base_backoff * 2^(n-1))]`. The default base is 100 ms
/// rather than the SDKs' 1 s: signet sits next to its callers, and most throttles clear
/// quickly; the 20 s cap matches the SDKs' standard mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Total attempts per request, the first one included (1 disables retries). Default 3.
    pub max_attempts: u32,
    /// `standard` (default) or `adaptive`.
    pub mode: RetryMode,
    /// Backoff base: the upper bound of the first retry's jittered delay. Default 100 ms.
    #[serde(with = "duration_serde")]
    pub base_backoff: Duration,
    /// Cap on any single backoff delay, and on an upstream's Retry-After that signet
    /// will honour (a longer Retry-After goes back to the client instead). Default 20 s.
    #[serde(with = "duration_serde")]
    pub max_backoff: Duration,
    /// Whether the retry budget (token bucket) limits retries. Default true.
    pub budget_enabled: bool,
    /// Tokens in a full retry budget. Default 500.
    pub budget_capacity: u32,
    /// Tokens a retry after an error answer or a connection failure costs. Default 5.
    pub retry_cost: u32,
    /// Tokens a retry after a timeout costs. Default 10.
    pub timeout_retry_cost: u32,
    /// Tokens a request that succeeds on its first attempt puts back. Default 1.
    pub success_refund: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            mode: RetryMode::Standard,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(20),
            budget_enabled: true,
            budget_capacity: 500,
            retry_cost: 5,
            timeout_retry_cost: 10,
            success_refund: 1,
        }
    }
}

impl RetrySettings {
    /// Checks ranges; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=10).contains(&self.max_attempts) {
            return Err("max_attempts: must be between 1 and 10".into());
        }
        check_duration("base_backoff", self.base_backoff, false)?;
        check_duration("max_backoff", self.max_backoff, false)?;
        if self.base_backoff > self.max_backoff {
            return Err("base_backoff: must not exceed max_backoff".into());
        }
        if self.budget_enabled {
            if self.budget_capacity == 0 {
                return Err(
                    "budget_capacity: must be at least 1 (set budget_enabled = false to disable)"
                        .into(),
                );
            }
            if self.retry_cost > self.budget_capacity {
                return Err("retry_cost: must not exceed budget_capacity".into());
            }
            if self.timeout_retry_cost > self.budget_capacity {
                return Err("timeout_retry_cost: must not exceed budget_capacity".into());
            }
        }
        Ok(())
    }
}

/// Per-route timeouts. Each one that fires answers 504 naming it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutSettings {
    /// TCP connect plus TLS handshake to the upstream. Default 3 s.
    #[serde(with = "duration_serde")]
    pub connect: Duration,
    /// Per attempt: from the request body having been handed to the connection to the
    /// response head arriving. Default 60 s.
    #[serde(with = "duration_serde")]
    pub first_byte: Duration,
    /// Across all attempts and backoff sleeps, until the final response head. The
    /// response body is governed by `idle` instead, so long downloads are not cut, and
    /// so is a streamed request body while it moves: the time it takes to send does not
    /// count. Default 120 s.
    #[serde(with = "duration_serde")]
    pub total: Duration,
    /// Longest wait between two frames of a body: of the response, of the client's
    /// request body, and of the upstream taking a streamed request body. Default 60 s.
    #[serde(with = "duration_serde")]
    pub idle: Duration,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            first_byte: Duration::from_secs(60),
            total: Duration::from_secs(120),
            idle: Duration::from_secs(60),
        }
    }
}

impl TimeoutSettings {
    /// Checks that every timeout is positive and at most a day; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        check_duration("connect", self.connect, true)?;
        check_duration("first_byte", self.first_byte, true)?;
        check_duration("total", self.total, true)?;
        check_duration("idle", self.idle, true)?;
        Ok(())
    }
}

/// Per-upstream load-shedding limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Requests in flight to one upstream (scheme + host + port) before signet answers
    /// 503 at once. A request counts until its response body ends. Default 1024.
    pub max_in_flight: usize,
    /// The Retry-After a shed request is told. Default 1 s.
    #[serde(with = "duration_serde")]
    pub shed_retry_after: Duration,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            shed_retry_after: Duration::from_secs(1),
        }
    }
}

impl LimitSettings {
    /// Checks ranges; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_in_flight == 0 {
            return Err("max_in_flight: must be at least 1".into());
        }
        check_duration("shed_retry_after", self.shed_retry_after, false)?;
        Ok(())
    }
}

/// TLS settings of the pooled client (process-wide).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// A PEM file of extra CA certificates trusted besides the built-in web PKI roots.
    pub ca_bundle: Option<PathBuf>,
    /// Skip certificate verification of upstreams outside the AWS endpoint domains
    /// (local test endpoints with self-signed certificates). AWS endpoints are
    /// verified all the same. signet logs a warning when it is on.
    pub insecure_skip_verify: bool,
}

impl TlsSettings {
    /// Checks that the CA bundle, when set, names a readable file.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(path) = &self.ca_bundle {
            if !path.is_file() {
                return Err(format!(
                    "ca_bundle: {} is not a readable file",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

/// Everything the upstream stack needs to know about one route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutePolicy {
    /// Retry policy.
    pub retry: RetrySettings,
    /// Timeouts.
    pub timeouts: TimeoutSettings,
    /// Load-shedding limits.
    pub limits: LimitSettings,
}

impl RoutePolicy {
    /// Validates all three parts; the error is prefixed with the part (`retry.max_attempts: ...`).
    pub fn validate(&self) -> Result<(), String> {
        self.retry.validate().map_err(|e| format!("retry.{e}"))?;
        self.timeouts
            .validate()
            .map_err(|e| format!("timeouts.{e}"))?;
        self.limits.validate().map_err(|e| format!("limits.{e}"))?;
        Ok(())
    }
}

fn check_duration(field: &str, value: Duration, positive: bool) -> Result<(), String> {
    if positive && value.is_zero() {
        return Err(format!("{field}: must be greater than zero"));
    }
    if value > MAX_DURATION {
        return Err(format!("{field}: must be at most 24h"));
    }
    Ok(())
}

/// Serde helpers for humane durations: `"150ms"`, `"20s"`, `"2m"`, `"1h"`, and
/// combinations such as `"1m30s"`. Use with `#[serde(with = "duration_serde")]`;
/// [`duration_serde::option`] handles `Option<Duration>`.
///
/// ```
/// use std::time::Duration;
/// use signet::upstream::duration_serde;
/// assert_eq!(duration_serde::parse("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(duration_serde::format(Duration::from_millis(150)), "150ms");
/// ```
pub mod duration_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Parses `"<n><unit>"` repeated, units `ms`, `s`, `m`, `h`. A bare number is refused
    /// so that `30` never silently means 30 ms or 30 minutes.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty duration (write e.g. \"150ms\", \"20s\", \"2m\")".into());
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!(
                    "invalid duration {text:?} (write e.g. \"150ms\", \"20s\", \"2m\")"
                ));
            }
            let number: u64 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let part = match unit {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                "m" => number
                    .checked_mul(60)
                    .map(Duration::from_secs)
                    .ok_or_else(|| format!("invalid duration {text:?}: too large"))?,
                "h" => number
                    .checked_mul(3600)
                    .map(Duration::from_secs)
                    .ok_or_else(|| format!("invalid duration {text:?}: too large"))?,
                "" => {
                    return Err(format!(
                        "invalid duration {text:?}: missing unit (ms, s, m or h)"
                    ))
                }
                other => {
                    return Err(format!(
                        "invalid duration {text:?}: unknown unit {other:?} (ms, s, m or h)"
                    ))
                }
            };
            total = total
                .checked_add(part)
                .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        }
        Ok(total)
    }

    /// Formats with the largest unit that represents the value exactly
    /// (`"2m"`, `"90s"`, `"150ms"`); sub-millisecond parts are dropped.
    pub fn format(value: Duration) -> String {
        let ms = value.as_millis();
        if ms == 0 {
            "0s".to_string()
        } else if ms % 3_600_000 == 0 {
            format!("{}h", ms / 3_600_000)
        } else if ms % 60_000 == 0 {
            format!("{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{ms}ms")
        }
    }

    /// Serde serializer for `Duration` as a humane string.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*value))
    }

    /// Serde deserializer for `Duration` from a humane string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    /// The same for `Option<Duration>` (`#[serde(with = "duration_serde::option", default)]`).
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Serializes `Some(d)` as a humane string and `None` as none.
        pub fn serialize<S: Serializer>(
            value: &Option<Duration>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(d) => serializer.serialize_some(&super::format(*d)),
                None => serializer.serialize_none(),
            }
        }

        /// Deserializes an optional humane string.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            let text = Option::<String>::deserialize(deserializer)?;
            text.map(|t| super::parse(&t).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_humane_durations() {
        assert_eq!(
            duration_serde::parse("150ms"),
            Ok(Duration::from_millis(150))
        );
        assert_eq!(duration_serde::parse("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(duration_serde::parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration_serde::parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(duration_serde::parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration_serde::parse(" 5s "), Ok(Duration::from_secs(5)));
    }

    #[test]
    fn refuses_durations_without_unit_or_with_unknown_unit() {
        assert!(duration_serde::parse("30")
            .unwrap_err()
            .contains("missing unit"));
        assert!(duration_serde::parse("3d")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(duration_serde::parse("").is_err());
        assert!(duration_serde::parse("s").is_err());
        assert!(duration_serde::parse("99999999999999999999s").is_err());
    }

    #[test]
    fn formats_durations_round_trip() {
        for text in ["150ms", "20s", "2m", "1h", "90s", "1500ms"] {
            let parsed = duration_serde::parse(text).unwrap();
            assert_eq!(duration_serde::format(parsed), text);
        }
    }

    #[test]
    fn fills_missing_fields_from_defaults() {
        let t: TimeoutSettings = serde_json::from_str(r#"{"connect":"1s"}"#).unwrap();
        assert_eq!(t.connect, Duration::from_secs(1));
        assert_eq!(t.first_byte, TimeoutSettings::default().first_byte);
        let p: RoutePolicy = serde_json::from_str(r#"{"retry":{"mode":"adaptive"}}"#).unwrap();
        assert_eq!(p.retry.mode, RetryMode::Adaptive);
        assert_eq!(p.retry.max_attempts, 3);
    }

    #[test]
    fn rejects_unknown_fields() {
        let err = serde_json::from_str::<RetrySettings>(r#"{"max_attempt":3}"#).unwrap_err();
        assert!(err.to_string().contains("max_attempt"));
        assert!(serde_json::from_str::<LimitSettings>(r#"{"inflight":3}"#).is_err());
    }

    #[test]
    fn serializes_durations_as_strings() {
        let json = serde_json::to_value(TimeoutSettings::default()).unwrap();
        assert_eq!(json["connect"], "3s");
        assert_eq!(json["total"], "2m");
        let back: TimeoutSettings = serde_json::from_value(json).unwrap();
        assert_eq!(back, TimeoutSettings::default());
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(RoutePolicy::default().validate(), Ok(()));
        assert_eq!(TlsSettings::default().validate(), Ok(()));
    }

    #[test]
    fn validation_errors_name_the_field() {
        let retry = RetrySettings {
            max_attempts: 0,
            ..Default::default()
        };
        assert_eq!(
            retry.validate().unwrap_err(),
            "max_attempts: must be between 1 and 10"
        );
        let retry = RetrySettings {
            base_backoff: Duration::from_secs(30),
            ..Default::default()
        };
        assert!(retry.validate().unwrap_err().starts_with("base_backoff:"));
        let timeouts = TimeoutSettings {
            idle: Duration::ZERO,
            ..Default::default()
        };
        assert!(timeouts.validate().unwrap_err().starts_with("idle:"));
        let policy = RoutePolicy {
            limits: LimitSettings {
                max_in_flight: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(policy
            .validate()
            .unwrap_err()
            .starts_with("limits.max_in_flight:"));
        let tls = TlsSettings {
            ca_bundle: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..Default::default()
        };
        assert!(tls.validate().unwrap_err().starts_with("ca_bundle:"));
    }
}
