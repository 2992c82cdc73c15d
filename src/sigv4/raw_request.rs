//! A small, lenient parser for one raw HTTP/1.x request as written in the
//! SigV4 test suite's `request.txt` (and read by `signet sign` on stdin).
//!
//! Accepts LF or CRLF line ends, `Name:value` with or without a space after
//! the colon, folded continuation lines (a line starting with a space or
//! tab continues the previous header), raw UTF-8 or spaces in the request
//! target, and a body (any bytes) after the first blank line.
//!
//! ```
//! use signet::sigv4::raw_request::RawRequest;
//! let req = RawRequest::parse(b"GET /a b/?x=1 HTTP/1.1\nHost:example.com\nMy-Header: one\n  two\n\nbody").unwrap();
//! assert_eq!(req.method, "GET");
//! assert_eq!(req.path(), "/a b/");
//! assert_eq!(req.query(), "x=1");
//! assert_eq!(req.header("my-header"), Some(&b"one two"[..]));
//! assert_eq!(req.body, b"body");
//! ```

use thiserror::Error;

/// Why a raw request could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RawRequestError {
    /// The input is empty or has no request line.
    #[error("no request line (expected e.g. `GET / HTTP/1.1`)")]
    MissingRequestLine,
    /// The request line has no target.
    #[error("request line {0:?} has no request target")]
    MissingTarget(String),
    /// The request line is not UTF-8.
    #[error("request line is not valid UTF-8")]
    RequestLineNotUtf8,
    /// A header line has no colon or an empty name.
    #[error("line {line}: not a `Name: value` header")]
    MalformedHeader {
        /// 1-based line number.
        line: usize,
    },
    /// A continuation line appears before any header.
    #[error("line {line}: continuation line before any header")]
    OrphanContinuation {
        /// 1-based line number.
        line: usize,
    },
}

/// One header of a raw request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawHeader {
    /// The name as written.
    pub name: String,
    /// The value with surrounding whitespace removed and folded lines
    /// joined by a single space.
    pub value: Vec<u8>,
    /// The header's original lines (folds included), without the final
    /// line end, joined by `\n`: what to echo when printing the request.
    pub raw: Vec<u8>,
}

/// A parsed raw request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The request target exactly as written (may contain spaces or UTF-8).
    pub target: String,
    /// The protocol, e.g. `HTTP/1.1` (empty when the line has none).
    pub version: String,
    /// Headers in order.
    pub headers: Vec<RawHeader>,
    /// Everything after the first blank line.
    pub body: Vec<u8>,
}

/// Splits off the next line; returns (line without its end, rest, had_end).
fn next_line(input: &[u8]) -> (&[u8], &[u8], bool) {
    match input.iter().position(|&b| b == b'\n') {
        Some(i) => {
            let line = &input[..i];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (line, &input[i + 1..], true)
        }
        None => {
            let line = input.strip_suffix(b"\r").unwrap_or(input);
            (line, &[], false)
        }
    }
}

fn trim(v: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ws(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ws(b)).map_or(start, |p| p + 1);
    &v[start..end]
}

/// The rest of an absolute-form target after `http://` or `https://`.
fn strip_scheme(target: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = target.get(..scheme.len())?;
        if head.eq_ignore_ascii_case(scheme) && target.len() > scheme.len() {
            target.get(scheme.len()..)
        } else {
            None
        }
    })
}

impl RawRequest {
    /// Parses one request.
    pub fn parse(input: &[u8]) -> Result<Self, RawRequestError> {
        let (first, mut rest, _) = next_line(input);
        let first = std::str::from_utf8(first).map_err(|_| RawRequestError::RequestLineNotUtf8)?;
        let first = first.trim_matches(|c| c == ' ' || c == '\t');
        if first.is_empty() {
            return Err(RawRequestError::MissingRequestLine);
        }
        let (method, after) = first
            .split_once(' ')
            .ok_or_else(|| RawRequestError::MissingTarget(first.to_owned()))?;
        let after = after.trim_start_matches(' ');
        let (target, version) = match after.rsplit_once(' ') {
            Some((t, v)) if v.starts_with("HTTP/") => (t.trim_end_matches(' '), v),
            _ => (after, ""),
        };
        if target.is_empty() {
            return Err(RawRequestError::MissingTarget(first.to_owned()));
        }

        let mut headers: Vec<RawHeader> = Vec::new();
        let mut line_no = 1;
        let mut body = Vec::new();
        while !rest.is_empty() {
            let (line, next, _) = next_line(rest);
            line_no += 1;
            rest = next;
            if line.is_empty() {
                body = rest.to_vec();
                break;
            }
            if line[0] == b' ' || line[0] == b'\t' {
                let last = headers
                    .last_mut()
                    .ok_or(RawRequestError::OrphanContinuation { line: line_no })?;
                let more = trim(line);
                if !more.is_empty() {
                    if !last.value.is_empty() {
                        last.value.push(b' ');
                    }
                    last.value.extend_from_slice(more);
                }
                last.raw.push(b'\n');
                last.raw.extend_from_slice(line);
                continue;
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(RawRequestError::MalformedHeader { line: line_no })?;
            let name = std::str::from_utf8(trim(&line[..colon]))
                .map_err(|_| RawRequestError::MalformedHeader { line: line_no })?;
            if name.is_empty() {
                return Err(RawRequestError::MalformedHeader { line: line_no });
            }
            headers.push(RawHeader {
                name: name.to_owned(),
                value: trim(&line[colon + 1..]).to_vec(),
                raw: line.to_vec(),
            });
        }

        Ok(Self {
            method: method.to_owned(),
            target: target.to_owned(),
            version: version.to_owned(),
            headers,
            body,
        })
    }

    /// The target without an absolute-form `scheme://authority` prefix.
    fn origin_form(&self) -> &str {
        let t = self.target.as_str();
        match strip_scheme(t) {
            Some(rest) => match rest.find(['/', '?']) {
                Some(i) => &rest[i..],
                None => "/",
            },
            None => t,
        }
    }

    /// The authority of an absolute-form target (`http://host:port/...`).
    pub fn target_authority(&self) -> Option<&str> {
        let rest = strip_scheme(&self.target)?;
        Some(&rest[..rest.find(['/', '?']).unwrap_or(rest.len())])
    }

    /// The path part of the target (before the first `?`).
    pub fn path(&self) -> &str {
        let t = self.origin_form();
        t.split_once('?').map_or(t, |(p, _)| p)
    }

    /// The query part of the target (after the first `?`; empty if none).
    pub fn query(&self) -> &str {
        self.origin_form().split_once('?').map_or("", |(_, q)| q)
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }

    /// (name, value) pairs in order, as [`SignableRequest::headers`](super::SignableRequest::headers) takes them.
    pub fn header_pairs(&self) -> Vec<(&str, &[u8])> {
        self.headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_slice()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lf_and_crlf_alike() {
        let lf = RawRequest::parse(b"POST /x HTTP/1.1\nHost:h\nA: 1\n\nbody\n").unwrap();
        let crlf = RawRequest::parse(b"POST /x HTTP/1.1\r\nHost:h\r\nA: 1\r\n\r\nbody\n").unwrap();
        assert_eq!(lf.method, crlf.method);
        assert_eq!(lf.header_pairs(), crlf.header_pairs());
        assert_eq!(lf.body, b"body\n");
        assert_eq!(crlf.body, b"body\n");
    }

    #[test]
    fn keeps_spaces_and_utf8_in_the_target() {
        let r =
            RawRequest::parse("GET /example space/ሴ?ሴ=bar HTTP/1.1\nHost:h\n".as_bytes()).unwrap();
        assert_eq!(r.path(), "/example space/ሴ");
        assert_eq!(r.query(), "ሴ=bar");
        assert_eq!(r.version, "HTTP/1.1");
    }

    #[test]
    fn unfolds_continuation_lines_and_keeps_the_raw_lines() {
        let r = RawRequest::parse(b"GET / HTTP/1.1\nMy-Header1:value1\n  value2\n     value3\n")
            .unwrap();
        assert_eq!(r.headers[0].value, b"value1 value2 value3");
        assert_eq!(
            r.headers[0].raw,
            b"My-Header1:value1\n  value2\n     value3"
        );
    }

    #[test]
    fn keeps_repeated_headers_in_order() {
        let r = RawRequest::parse(b"GET / HTTP/1.1\nA:2\nA:2\nA:1").unwrap();
        let values: Vec<_> = r.headers.iter().map(|h| h.value.clone()).collect();
        assert_eq!(values, vec![b"2".to_vec(), b"2".to_vec(), b"1".to_vec()]);
    }

    #[test]
    fn accepts_binary_bodies() {
        let mut input = b"PUT / HTTP/1.1\nHost:h\n\n".to_vec();
        input.extend_from_slice(&[0, 0xff, b'\n', 0x80]);
        let r = RawRequest::parse(&input).unwrap();
        assert_eq!(r.body, vec![0, 0xff, b'\n', 0x80]);
    }

    #[test]
    fn splits_absolute_form_targets() {
        let r = RawRequest::parse(b"GET https://h.example:8443/p?q=1 HTTP/1.1\n").unwrap();
        assert_eq!(r.target_authority(), Some("h.example:8443"));
        assert_eq!(r.path(), "/p");
        assert_eq!(r.query(), "q=1");
    }

    #[test]
    fn reports_bad_input() {
        assert_eq!(
            RawRequest::parse(b""),
            Err(RawRequestError::MissingRequestLine)
        );
        assert_eq!(
            RawRequest::parse(b"\nHost:h"),
            Err(RawRequestError::MissingRequestLine)
        );
        assert!(matches!(
            RawRequest::parse(b"GET\n"),
            Err(RawRequestError::MissingTarget(_))
        ));
        assert_eq!(
            RawRequest::parse(b"GET / HTTP/1.1\nnocolon\n"),
            Err(RawRequestError::MalformedHeader { line: 2 })
        );
        assert_eq!(
            RawRequest::parse(b"GET / HTTP/1.1\n folded\n"),
            Err(RawRequestError::OrphanContinuation { line: 2 })
        );
        assert!(RawRequest::parse(b"GET /\xff HTTP/1.1\n").is_err());
    }
}
