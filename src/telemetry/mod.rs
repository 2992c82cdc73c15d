//! Telemetry: Prometheus metrics ([`metrics`]) and structured, redacted logs
//! ([`logging`]).

mod json;
pub mod logging;
pub mod metrics;

pub use logging::{access_log, AccessRecord, LogFormat, TelemetryError};
pub use metrics::{CredentialGauge, InFlightGuard, Metrics};
