//! Byte sizes as humane strings (`"16MiB"`, `"512KiB"`, `"1GB"`) or plain integers (bytes).
//!
//! Durations use [`crate::upstream::duration_serde`]: `"150ms"`, `"20s"`, `"2m"`, `"1h"`,
//! or combinations such as `"1m30s"`; a bare number is refused.
//!
//! ```
//! use signet::config::units::parse_bytes;
//! assert_eq!(parse_bytes("16MiB"), Ok(16 * 1024 * 1024));
//! assert_eq!(parse_bytes("1000"), Ok(1000));
//! ```

use serde::de::{self, Deserializer, Visitor};
use serde::Serializer;
use std::fmt;

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kb", 1000),
    ("kib", 1 << 10),
    ("mb", 1000 * 1000),
    ("mib", 1 << 20),
    ("gb", 1000 * 1000 * 1000),
    ("gib", 1 << 30),
];

/// Parses `"<n>"` (bytes) or `"<n><unit>"` with unit `B`, `KB`, `KiB`, `MB`, `MiB`,
/// `GB`, `GiB` (case-insensitive, optional space).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!(
            "invalid size {text:?} (write e.g. \"16MiB\" or a number of bytes)"
        ));
    }
    let number: u64 = text[..digits]
        .parse()
        .map_err(|_| format!("invalid size {text:?}: number too large"))?;
    let unit = text[digits..].trim().to_ascii_lowercase();
    if unit.is_empty() {
        return Ok(number);
    }
    let factor = UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|(_, factor)| *factor)
        .ok_or_else(|| {
            format!("invalid size {text:?}: unknown unit (B, KiB, MiB, GiB, KB, MB, GB)")
        })?;
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// Formats with the largest binary unit that represents the value exactly (`"16MiB"`).
pub fn format_bytes(value: u64) -> String {
    for (name, factor) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if value != 0 && value % factor == 0 {
            return format!("{}{name}", value / factor);
        }
    }
    format!("{value}B")
}

/// Serde `with` module for byte sizes held as `u64`.
pub mod bytes_serde {
    use super::*;

    /// Serializes as a humane string (`"16MiB"`).
    pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_bytes(*value))
    }

    /// Deserializes an integer (bytes) or a humane string.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(BytesVisitor)
    }

    /// The same for `Option<u64>`.
    pub mod option {
        use super::*;

        /// Serializes `Some` as a humane string.
        pub fn serialize<S: Serializer>(
            value: &Option<u64>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(v) => serializer.serialize_some(&format_bytes(*v)),
                None => serializer.serialize_none(),
            }
        }

        /// Deserializes an optional size.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<u64>, D::Error> {
            deserializer.deserialize_any(BytesVisitor).map(Some)
        }
    }
}

struct BytesVisitor;

impl Visitor<'_> for BytesVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"16MiB\" or a number of bytes")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom("a size must not be negative"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_bytes(v).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_with_and_without_units() {
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("16 mib"), Ok(16 << 20));
        assert_eq!(parse_bytes("2KB"), Ok(2000));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("3TiB").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("99999999999GiB")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn formats_sizes_round_trip() {
        for v in [0u64, 1, 1000, 1 << 10, 16 << 20, 3 << 30, 1536] {
            assert_eq!(parse_bytes(&format_bytes(v)), Ok(v), "{v}");
        }
        assert_eq!(format_bytes(16 << 20), "16MiB");
    }
}
