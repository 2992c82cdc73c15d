//! The JSON log line format: one flat object per event.
//!
//! `{"timestamp":"2026-11-23T07:09:58.503612Z","level":"INFO","message":"request",
//! "route":"s3",...,"target":"signet::access"}`: the timestamp (UTC, microseconds),
//! the level, the event's fields in the order they were recorded (the message
//! first), the target, and the current span's name and fields when there is one.
//!
//! Each line is written straight into the subscriber's line buffer: no
//! intermediate map, no serializer, one pass of JSON escaping per string. The
//! access log writes one such line per request, so this is on the request path.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::logging::{AccessRecord, ACCESS_TARGET};
use crate::sigv4::AmzDate;

/// Formats events as single-line JSON objects (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Built in a local string (static dispatch for every small write), then
        // handed to the subscriber's line buffer in one piece.
        let mut line = String::with_capacity(384);
        let metadata = event.metadata();
        line.push_str("{\"timestamp\":\"");
        write_timestamp(&mut line, SystemTime::now())?;
        line.push_str("\",\"level\":\"");
        line.push_str(metadata.level().as_str());
        line.push('"');
        let mut fields = FieldWriter {
            out: &mut line,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        line.push_str(",\"target\":");
        write_string(&mut line, metadata.target())?;
        if let Some(span) = ctx.lookup_current() {
            line.push_str(",\"span\":{\"name\":");
            write_string(&mut line, span.name())?;
            let extensions = span.extensions();
            if let Some(formatted) = extensions.get::<FormattedFields<JsonFields>>() {
                // JsonFields stores the span's fields as the inside of an object.
                let inner = formatted
                    .fields
                    .trim()
                    .trim_start_matches('{')
                    .trim_end_matches('}');
                if !inner.is_empty() {
                    line.push(',');
                    line.push_str(inner);
                }
            }
            line.push('}');
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// Writes the access line of `rec` whose path `path` is already redacted: the
/// object the access event renders as through [`JsonLines`] (same keys, order
/// and escaping), without a tracing event. The access log takes this path when
/// signet's own JSON output is installed ([`super::logging::access_log`]).
pub(crate) fn write_access_line(
    out: &mut String,
    rec: &AccessRecord<'_>,
    path: &str,
    now: SystemTime,
) -> fmt::Result {
    out.push_str("{\"timestamp\":\"");
    write_timestamp(out, now)?;
    out.push_str("\",\"level\":\"INFO\",\"message\":\"request\",\"client\":");
    write_string(out, rec.client)?;
    out.push_str(",\"route\":");
    write_string(out, rec.route)?;
    out.push_str(",\"service\":");
    write_string(out, rec.service)?;
    out.push_str(",\"region\":");
    write_string(out, rec.region)?;
    out.push_str(",\"method\":");
    write_string(out, rec.method)?;
    out.push_str(",\"path\":");
    write_string(out, path)?;
    let mut number = itoa::Buffer::new();
    out.push_str(",\"status\":");
    out.push_str(number.format(rec.status));
    out.push_str(",\"attempts\":");
    out.push_str(number.format(rec.attempts));
    out.push_str(",\"latency_ms\":");
    let latency = rec.latency.as_secs_f64() * 1000.0;
    out.push_str(ryu::Buffer::new().format_finite(latency));
    out.push_str(",\"bytes_in\":");
    out.push_str(number.format(rec.bytes_in));
    out.push_str(",\"bytes_out\":");
    out.push_str(number.format(rec.bytes_out));
    out.push_str(",\"upstream_request_id\":");
    write_string(out, rec.upstream_request_id.unwrap_or("-"))?;
    out.push_str(",\"target\":");
    write_string(out, ACCESS_TARGET)?;
    out.push_str("}\n");
    Ok(())
}

/// Writes each field as `,"name":value`.
struct FieldWriter<'a> {
    out: &'a mut String,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    fn put(&mut self, field: &Field, value: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_ok() {
            self.out.push(',');
            self.result = write_string(self.out, field.name()).and_then(|()| {
                self.out.push(':');
                value(self.out)
            });
        }
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, |out| write_string(out, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, |out| {
            out.push_str(itoa::Buffer::new().format(value));
            Ok(())
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, |out| {
            out.push_str(itoa::Buffer::new().format(value));
            Ok(())
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, |out| {
            out.push_str(if value { "true" } else { "false" });
            Ok(())
        });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, |out| {
            if value.is_finite() {
                out.push_str(ryu::Buffer::new().format_finite(value));
            } else {
                out.push_str("null");
            }
            Ok(())
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, |out| {
            out.push('"');
            write!(Escaped(&mut *out), "{value}")?;
            out.push('"');
            Ok(())
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, |out| {
            out.push('"');
            write!(Escaped(&mut *out), "{value:?}")?;
            out.push('"');
            Ok(())
        });
    }
}

/// Writes `value` as a JSON string, quotes included.
fn write_string(out: &mut impl fmt::Write, value: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(value)?;
    out.write_char('"')
}

/// A writer that JSON-escapes what passes through it.
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        // Most strings need no escaping.
        if !needs_escape(bytes) {
            return self.0.write_str(s);
        }
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let escape: &str = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            // Runs between escapes are whole UTF-8 sequences: every byte escaped
            // here is ASCII.
            self.0.write_str(&s[start..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// Whether `bytes` holds a `"`, a `\\` or a control character, checked eight
/// bytes at a time.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit set in every byte of `v` that is below `n` (n <= 128).
    let below = |v: u64, n: u64| v.wrapping_sub(ONES * n) & !v & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let x = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        if below(x, 0x20) | below(quote, 1) | below(backslash, 1) != 0 {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// RFC 3339 UTC with microseconds: `2026-11-23T07:09:58.503612Z`.
fn write_timestamp(out: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let Ok(since) = now.duration_since(UNIX_EPOCH) else {
        return out.write_str("1970-01-01T00:00:00.000000Z");
    };
    thread_local! {
        /// The last second formatted on this thread, and its text.
        static LAST: std::cell::Cell<(u64, [u8; 19])> =
            const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let secs = since.as_secs();
    let mut text = *b"0000-00-00T00:00:00.000000Z";
    match LAST.get() {
        (cached, prefix) if cached == secs => text[..19].copy_from_slice(&prefix),
        _ => {
            let Ok(date) = AmzDate::from_system_time(now) else {
                return out.write_str("9999-12-31T23:59:59.999999Z");
            };
            // AmzDate is `YYYYMMDDTHHMMSSZ`.
            let d = date.as_str().as_bytes();
            text[0..4].copy_from_slice(&d[0..4]);
            text[5..7].copy_from_slice(&d[4..6]);
            text[8..10].copy_from_slice(&d[6..8]);
            text[11..13].copy_from_slice(&d[9..11]);
            text[14..16].copy_from_slice(&d[11..13]);
            text[17..19].copy_from_slice(&d[13..15]);
            let mut prefix = [0; 19];
            prefix.copy_from_slice(&text[..19]);
            LAST.set((secs, prefix));
        }
    }
    let mut micros = since.subsec_micros();
    for slot in text[20..26].iter_mut().rev() {
        *slot = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    // Only ASCII digits and separators were written.
    out.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<serde_json::Value> {
        capture_text(f)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn capture_text(f: impl FnOnce()) -> String {
        let out = Capture::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(JsonLines)
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    /// The line without its timestamp's value.
    fn untimed(line: &str) -> String {
        let rest = line.split_once(r#""level":"#).unwrap().1;
        format!("{{{rest}")
    }

    #[test]
    fn direct_access_lines_match_the_access_event_byte_for_byte() {
        let records = [
            AccessRecord {
                client: "[2001:db8::7]:40123",
                route: "s3 \"prod\"",
                service: "s3",
                region: "eu-west-1",
                method: "GET",
                path: "/b/k\u{1}é?X-Amz-Signature=abc&x=\"1\"",
                status: 200,
                attempts: 2,
                latency: Duration::from_micros(1_503),
                bytes_in: 0,
                bytes_out: 42,
                upstream_request_id: Some("REQ\\123"),
            },
            AccessRecord {
                client: "-",
                route: "-",
                service: "-",
                region: "-",
                method: "PATCH",
                path: "/",
                status: 404,
                attempts: 0,
                latency: Duration::from_secs(3),
                bytes_in: u64::MAX,
                bytes_out: 0,
                upstream_request_id: None,
            },
        ];
        for rec in &records {
            let event = capture_text(|| super::super::logging::access_log(rec));
            let path = super::super::logging::redact_query(rec.path);
            let mut direct = String::new();
            write_access_line(&mut direct, rec, &path, SystemTime::now()).unwrap();
            assert_eq!(untimed(&direct), untimed(&event));
            let v: serde_json::Value = serde_json::from_str(&direct).unwrap();
            assert_eq!(v["route"], rec.route);
            assert_eq!(v["client"], rec.client);
            assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        }
    }

    #[test]
    fn writes_one_flat_object_per_event_with_every_field_type() {
        let err = std::io::Error::other("disk \"full\"");
        let lines = capture(|| {
            tracing::warn!(
                target: "signet::test",
                text = "a\"b\\c\nd\te\u{1}f é",
                count = 7u64,
                delta = -3i64,
                ok = true,
                ratio = 0.25f64,
                nan = f64::NAN,
                shown = %"x\ny",
                debugged = ?vec![1, 2],
                error = &err as &(dyn std::error::Error + 'static),
                "hello {}", "world"
            );
        });
        assert_eq!(lines.len(), 1);
        let v = &lines[0];
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "hello world");
        assert_eq!(v["target"], "signet::test");
        assert_eq!(v["text"], "a\"b\\c\nd\te\u{1}f é");
        assert_eq!(v["count"], 7);
        assert_eq!(v["delta"], -3);
        assert_eq!(v["ok"], true);
        assert_eq!(v["ratio"], 0.25);
        assert!(v["nan"].is_null());
        assert_eq!(v["shown"], "x\ny");
        assert_eq!(v["debugged"], "[1, 2]");
        assert_eq!(v["error"], "disk \"full\"");
        assert!(v.get("span").is_none());
    }

    #[test]
    fn names_the_current_span_and_its_fields() {
        let lines = capture(|| {
            let span = tracing::info_span!("reload", generation = 3u64, file = "a\"b");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        let v = &lines[0];
        assert_eq!(v["span"]["name"], "reload");
        assert_eq!(v["span"]["generation"], 3);
        assert_eq!(v["span"]["file"], "a\"b");
    }

    #[test]
    fn finds_every_byte_that_needs_escaping_at_any_position() {
        for len in 0..20 {
            let plain = "a".repeat(len);
            assert!(!needs_escape(plain.as_bytes()), "{plain:?}");
            for at in 0..len {
                for special in [b'"', b'\\', b'\n', 0u8, 0x1f] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{bytes:?}");
                }
                // Neighbours of the special bytes are plain.
                for other in [b' ', b'!', b'#', b'[', b']', 0x7f, 0xc3, 0xff] {
                    let mut bytes = plain.clone().into_bytes();
                    bytes[at] = other;
                    assert!(!needs_escape(&bytes), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let mut s = String::new();
        let t = UNIX_EPOCH + Duration::new(1_440_938_160, 503_612_999);
        write_timestamp(&mut s, t).unwrap();
        assert_eq!(s, "2015-08-30T12:36:00.503612Z");
        // The same second again (from the per-thread cache), then the next one.
        s.clear();
        write_timestamp(&mut s, t + Duration::from_micros(7)).unwrap();
        assert_eq!(s, "2015-08-30T12:36:00.503619Z");
        s.clear();
        write_timestamp(&mut s, t + Duration::from_secs(1)).unwrap();
        assert_eq!(s, "2015-08-30T12:36:01.503612Z");
    }
}
