//! Telemetry: Prometheus metrics ([`metrics`]) and structured, redacted logs
//! ([`logging`]).

pub mod metrics;

pub use metrics::{CredentialGauge, InFlightGuard, Metrics};
