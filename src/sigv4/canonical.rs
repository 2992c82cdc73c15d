//! The canonical request: path, query and header canonicalisation, written
//! straight into a [`Sink`] so the hot path never builds the text.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::Range;

use super::encoding::{
    canonical_query_component, is_canonical_query, write_encoded, write_path_as_sent, Sink,
};
use super::SigningError;

/// A header as it enters canonicalisation (name in any case).
#[derive(Clone, Copy)]
pub(crate) struct HeaderEntry<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a [u8],
}

/// RFC 9110 `tchar` lookup table.
const TCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    t
};

/// RFC 9110 `tchar`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// Checks a header name is a non-empty token.
pub(crate) fn check_header_name(name: &str) -> Result<(), SigningError> {
    if !name.is_empty() && name.bytes().all(is_tchar) {
        Ok(())
    } else {
        Err(SigningError::InvalidHeaderName(
            name.escape_default().to_string(),
        ))
    }
}

/// Checks a header value carries no line breaks or control characters
/// (horizontal tab allowed; obs-text bytes >= 0x80 allowed).
pub(crate) fn check_header_value(name: &str, value: &[u8]) -> Result<(), SigningError> {
    // Branch-free fold: no early exit, so it vectorises.
    let bad = value.iter().fold(false, |bad, &b| {
        bad | ((b < 0x20 && b != b'\t') | (b == 0x7f))
    });
    if !bad {
        Ok(())
    } else {
        Err(SigningError::InvalidHeaderValue {
            name: name.to_ascii_lowercase(),
        })
    }
}

/// Compares header names ASCII-case-insensitively.
#[inline]
pub(crate) fn cmp_names(a: &str, b: &str) -> Ordering {
    a.bytes()
        .map(|c| c.to_ascii_lowercase())
        .cmp(b.bytes().map(|c| c.to_ascii_lowercase()))
}

/// Sorts headers by lower-cased name, keeping the order of repeated names.
pub(crate) fn sort_headers(headers: &mut [HeaderEntry<'_>]) {
    let all_lower = headers
        .iter()
        .all(|h| !h.name.bytes().any(|b| b.is_ascii_uppercase()));
    if all_lower {
        // Names from `http::HeaderMap` are already lower-case.
        headers.sort_by(|a, b| a.name.cmp(b.name));
    } else {
        headers.sort_by(|a, b| cmp_names(a.name, b.name));
    }
}

/// Writes a lower-cased header name.
#[inline]
pub(crate) fn write_lower<S: Sink + ?Sized>(sink: &mut S, name: &str) {
    let bytes = name.as_bytes();
    if !bytes.iter().any(u8::is_ascii_uppercase) {
        sink.put(bytes);
        return;
    }
    let mut buf = [0u8; 64];
    for chunk in bytes.chunks(64) {
        let out = &mut buf[..chunk.len()];
        for (o, c) in out.iter_mut().zip(chunk) {
            *o = c.to_ascii_lowercase();
        }
        sink.put(out);
    }
}

/// Writes a header value trimmed of surrounding spaces/tabs, with inner runs
/// of spaces/tabs collapsed to one space.
///
/// `value` must have passed [`check_header_value`]: the only byte below a
/// space it can hold is a tab, so `b <= b' '` means "space or tab".
pub(crate) fn write_header_value<S: Sink + ?Sized>(sink: &mut S, value: &[u8]) {
    let is_ws = |b: &u8| *b <= b' ';
    let start = value.iter().position(|b| !is_ws(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ws(b))
        .map_or(start, |p| p + 1);
    let v = &value[start..end];
    let mut run_start = 0;
    let mut pos = 0;
    while let Some(off) = v[pos..].iter().position(is_ws) {
        let i = pos + off;
        let mut j = i + 1;
        while j < v.len() && is_ws(&v[j]) {
            j += 1;
        }
        // A single plain space is already canonical: keep it in the run.
        if !(j == i + 1 && v[i] == b' ') {
            sink.put(&v[run_start..i]);
            sink.put(b" ");
            run_start = j;
        }
        pos = j;
    }
    sink.put(&v[run_start..]);
}

/// Writes the canonical header block (`name:v1,v2\n` per name) for sorted
/// headers, and the signed-headers list into `signed`.
pub(crate) fn write_headers<S: Sink + ?Sized>(sink: &mut S, headers: &[HeaderEntry<'_>]) {
    let mut i = 0;
    while i < headers.len() {
        let name = headers[i].name;
        write_lower(sink, name);
        sink.put(b":");
        write_header_value(sink, headers[i].value);
        let mut j = i + 1;
        while j < headers.len() && headers[j].name.eq_ignore_ascii_case(name) {
            sink.put(b",");
            write_header_value(sink, headers[j].value);
            j += 1;
        }
        sink.put(b"\n");
        i = j;
    }
}

/// Appends the `;`-separated lower-cased unique names of sorted headers.
pub(crate) fn push_signed_headers(out: &mut String, headers: &[HeaderEntry<'_>]) {
    let mut prev: Option<&str> = None;
    for h in headers {
        if prev.is_some_and(|p| p.eq_ignore_ascii_case(h.name)) {
            continue;
        }
        if prev.is_some() {
            out.push(';');
        }
        if h.name.bytes().any(|b| b.is_ascii_uppercase()) {
            out.push_str(&h.name.to_ascii_lowercase());
        } else {
            out.push_str(h.name);
        }
        prev = Some(h.name);
    }
}

/// Removes `.`/`..` segments and empty segments; keeps a trailing slash only
/// when the input ends with one (the suite's and botocore's rule).
pub(crate) fn normalize_path(path: &str) -> Cow<'_, str> {
    if path.starts_with('/') && !path.contains("//") && !path.contains("/.") {
        return Cow::Borrowed(path);
    }
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() || path.ends_with('/') {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Writes the canonical URI.
pub(crate) fn write_uri<S: Sink + ?Sized>(sink: &mut S, path: &str, normalize: bool, double: bool) {
    let path = if path.is_empty() {
        Cow::Borrowed("/")
    } else if normalize {
        normalize_path(path)
    } else {
        Cow::Borrowed(path)
    };
    if double {
        write_encoded(sink, path.as_bytes(), true);
    } else {
        write_path_as_sent(sink, path.as_bytes());
    }
}

/// Where one canonical query key or value lives.
#[derive(Clone, Copy)]
pub(crate) enum Part {
    /// In the caller's query string.
    Query(u32, u32),
    /// In the scratch buffer (re-encoded).
    Scratch(u32, u32),
    /// In the presign parameter text.
    Extra(u32, u32),
}

/// Canonical query parameters as (key, value) references.
pub(crate) struct CanonicalQuery<'q> {
    query: &'q [u8],
    scratch: Vec<u8>,
    pairs: Vec<(Part, Part)>,
}

fn to_u32(r: Range<usize>) -> (u32, u32) {
    (
        u32::try_from(r.start).unwrap_or(u32::MAX),
        u32::try_from(r.end).unwrap_or(u32::MAX),
    )
}

impl<'q> CanonicalQuery<'q> {
    /// Splits and canonicalises `query` (without the `?`).
    pub(crate) fn parse(query: &'q str) -> Result<Self, SigningError> {
        if query.len() > u32::MAX as usize / 4 {
            return Err(SigningError::QueryTooLong);
        }
        let bytes = query.as_bytes();
        let mut out = CanonicalQuery {
            query: bytes,
            scratch: Vec::new(),
            pairs: Vec::new(),
        };
        if bytes.is_empty() {
            return Ok(out);
        }
        let mut decoded = Vec::new();
        let mut start = 0usize;
        for piece in bytes.split(|&b| b == b'&') {
            let range = start..start + piece.len();
            start = range.end + 1;
            if piece.is_empty() {
                continue;
            }
            let (k, v) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => (
                    range.start..range.start + eq,
                    range.start + eq + 1..range.end,
                ),
                None => (range.clone(), range.end..range.end),
            };
            let key = out.component(k, &mut decoded);
            let value = out.component(v, &mut decoded);
            out.pairs.push((key, value));
        }
        Ok(out)
    }

    fn component(&mut self, r: Range<usize>, decoded: &mut Vec<u8>) -> Part {
        let src = &self.query[r.clone()];
        if is_canonical_query(src) {
            let (a, b) = to_u32(r);
            Part::Query(a, b)
        } else {
            if self.scratch.capacity() == 0 {
                self.scratch.reserve(self.query.len() * 2 + 16);
            }
            let w = canonical_query_component(src, decoded, &mut self.scratch);
            let (a, b) = to_u32(w);
            Part::Scratch(a, b)
        }
    }

    /// Adds an already-canonical pair located in the presign text.
    pub(crate) fn push_extra(&mut self, key: Range<usize>, value: Range<usize>) {
        let (a, b) = to_u32(key);
        let (c, d) = to_u32(value);
        self.pairs.push((Part::Extra(a, b), Part::Extra(c, d)));
    }

    fn resolve<'s>(&'s self, extra: &'s [u8], p: Part) -> &'s [u8] {
        let slice = |buf: &'s [u8], a: u32, b: u32| buf.get(a as usize..b as usize).unwrap_or(&[]);
        match p {
            Part::Query(a, b) => slice(self.query, a, b),
            Part::Scratch(a, b) => slice(&self.scratch, a, b),
            Part::Extra(a, b) => slice(extra, a, b),
        }
    }

    /// Sorts by encoded key, then encoded value, and writes `k=v&k=v`.
    pub(crate) fn write<S: Sink + ?Sized>(&mut self, sink: &mut S, extra: &[u8]) {
        let mut pairs = std::mem::take(&mut self.pairs);
        pairs.sort_by(|x, y| {
            self.resolve(extra, x.0)
                .cmp(self.resolve(extra, y.0))
                .then_with(|| self.resolve(extra, x.1).cmp(self.resolve(extra, y.1)))
        });
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                sink.put(b"&");
            }
            sink.put(self.resolve(extra, *k));
            sink.put(b"=");
            sink.put(self.resolve(extra, *v));
        }
        self.pairs = pairs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(path: &str, normalize: bool, double: bool) -> String {
        let mut v = Vec::new();
        write_uri(&mut v, path, normalize, double);
        String::from_utf8(v).unwrap()
    }

    fn query(q: &str) -> String {
        let mut c = CanonicalQuery::parse(q).unwrap();
        let mut v = Vec::new();
        c.write(&mut v, &[]);
        String::from_utf8(v).unwrap()
    }

    fn value(v: &str) -> String {
        let mut out = Vec::new();
        write_header_value(&mut out, v.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn normalizes_dot_segments_and_duplicate_slashes() {
        assert_eq!(normalize_path("/example/.."), "/");
        assert_eq!(normalize_path("/example1/example2/../.."), "/");
        assert_eq!(normalize_path("/./"), "/");
        assert_eq!(normalize_path("//example//"), "/example/");
        assert_eq!(normalize_path("/./example"), "/example");
        assert_eq!(normalize_path("/a/b/../c/./d/"), "/a/c/d/");
        assert_eq!(normalize_path("/../a"), "/a");
        assert_eq!(normalize_path("a/b"), "/a/b");
        assert_eq!(normalize_path("/.hidden/x"), "/.hidden/x");
    }

    #[test]
    fn drops_trailing_slash_after_final_dot_segment_like_the_suite() {
        assert_eq!(normalize_path("/foo/bar/."), "/foo/bar");
        assert_eq!(normalize_path("/foo/bar/baz/.."), "/foo/bar");
    }

    #[test]
    fn double_encodes_non_s3_paths_and_keeps_s3_paths_as_sent() {
        assert_eq!(uri("/a%3Ab c", true, true), "/a%253Ab%20c");
        assert_eq!(uri("/test/@x/%3D", false, true), "/test/%40x/%253D");
        assert_eq!(uri("/test%24file.text", false, false), "/test%24file.text");
        assert_eq!(uri("//a/../b", false, false), "//a/../b");
        assert_eq!(uri("", false, false), "/");
        assert_eq!(uri("/ሴ", true, true), "/%E1%88%B4");
    }

    #[test]
    fn sorts_query_by_encoded_key_then_value() {
        assert_eq!(
            query("Param-3=Value3&Param=Value2&%E1%88%B4=Value1"),
            "%E1%88%B4=Value1&Param=Value2&Param-3=Value3"
        );
        assert_eq!(query("b=2&a=2&a=1"), "a=1&a=2&b=2");
        assert_eq!(query("ሴ=bar"), "%E1%88%B4=bar");
        assert_eq!(query("flag&x="), "flag=&x=");
        assert_eq!(query("&&a=1&"), "a=1");
        assert_eq!(query("k=a+b%2fc=d"), "k=a%20b%2Fc%3Dd");
        assert_eq!(query("A=1&a=1"), "A=1&a=1");
    }

    #[test]
    fn trims_and_collapses_header_whitespace() {
        assert_eq!(value("  value1 "), "value1");
        assert_eq!(value("\"a   b   c\""), "\"a b c\"");
        assert_eq!(value("a\t\tb \t c"), "a b c");
        assert_eq!(value("a b"), "a b");
        assert_eq!(value("   "), "");
    }

    #[test]
    fn joins_repeated_headers_in_order() {
        let mut hs = vec![
            HeaderEntry {
                name: "My-Header1",
                value: b"value2",
            },
            HeaderEntry {
                name: "host",
                value: b"h",
            },
            HeaderEntry {
                name: "my-header1",
                value: b"value1",
            },
        ];
        sort_headers(&mut hs);
        let mut out = Vec::new();
        write_headers(&mut out, &hs);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "host:h\nmy-header1:value2,value1\n"
        );
        let mut signed = String::new();
        push_signed_headers(&mut signed, &hs);
        assert_eq!(signed, "host;my-header1");
    }

    #[test]
    fn rejects_line_breaks_and_bad_names() {
        assert!(check_header_value("x", b"a\r\nb").is_err());
        assert!(check_header_value("x", b"a\0").is_err());
        assert!(check_header_value("x", b"a\tb \xff").is_ok());
        assert!(check_header_name("").is_err());
        assert!(check_header_name("a b").is_err());
        assert!(check_header_name("a:b").is_err());
        assert!(check_header_name("X-Amz-Meta-1").is_ok());
    }
}
