//! Byte sinks, percent-encoding and hex helpers shared by the signer.
//!
//! Everything here writes into a [`Sink`] so the same code feeds either the
//! SHA-256 hasher alone (hot path) or the hasher plus a text copy (explain).

use sha2::{Digest, Sha256};

/// Where canonical bytes go: a hasher, a buffer, or both.
pub(crate) trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Sha256 {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for Vec<u8> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A SHA-256 hasher fed through a stack buffer, so the many small pieces
/// of a canonical request reach the hasher in a few large updates.
pub(crate) struct BufferedHasher {
    hasher: Sha256,
    buf: [u8; 512],
    len: usize,
}

impl BufferedHasher {
    pub(crate) fn new() -> Self {
        Self {
            hasher: Sha256::new(),
            buf: [0u8; 512],
            len: 0,
        }
    }

    /// The digest of everything written.
    pub(crate) fn finalize(mut self) -> [u8; 32] {
        self.hasher.update(&self.buf[..self.len]);
        self.hasher.finalize().into()
    }
}

impl BufferedHasher {
    #[cold]
    #[inline(never)]
    fn spill(&mut self, bytes: &[u8]) {
        self.hasher.update(&self.buf[..self.len]);
        self.len = 0;
        if bytes.len() > self.buf.len() / 2 {
            self.hasher.update(bytes);
        } else {
            self.buf[..bytes.len()].copy_from_slice(bytes);
            self.len = bytes.len();
        }
    }
}

impl Sink for BufferedHasher {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        let len = self.len;
        match self.buf.get_mut(len..len + bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = len + bytes.len();
            }
            None => self.spill(bytes),
        }
    }
}

/// Feeds a hasher and keeps a copy of the text (used only when explaining).
pub(crate) struct Tee<'a> {
    pub(crate) hasher: &'a mut BufferedHasher,
    pub(crate) text: &'a mut Vec<u8>,
}

impl Sink for Tee<'_> {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.hasher.put(bytes);
        self.text.extend_from_slice(bytes);
    }
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// RFC 3986 unreserved characters: never percent-encoded by SigV4.
#[inline]
pub(crate) const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Lower-case hex of a 32-byte digest, on the stack.
#[inline]
pub(crate) fn hex32(digest: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().take(32).enumerate() {
        out[2 * i] = HEX_LOWER[usize::from(b >> 4)];
        out[2 * i + 1] = HEX_LOWER[usize::from(b & 0x0f)];
    }
    out
}

/// Writes `%XY` (upper-case hex) for `b`.
#[inline]
fn put_escape<S: Sink + ?Sized>(sink: &mut S, b: u8) {
    sink.put(&[
        b'%',
        HEX_UPPER[usize::from(b >> 4)],
        HEX_UPPER[usize::from(b & 0x0f)],
    ]);
}

/// SigV4 `UriEncode`: every byte except unreserved characters (and `/` when
/// `keep_slash`) becomes `%XY`. Runs of safe bytes are written in one call.
pub(crate) fn write_encoded<S: Sink + ?Sized>(sink: &mut S, input: &[u8], keep_slash: bool) {
    write_escaping(sink, input, |b| {
        is_unreserved(b) || (keep_slash && b == b'/')
    });
}

/// Writes `input`, escaping every byte for which `keep` is false as `%XY`.
/// Runs of kept bytes are written in one call.
#[inline]
fn write_escaping<S: Sink + ?Sized>(sink: &mut S, input: &[u8], keep: impl Fn(u8) -> bool) {
    let mut start = 0;
    for (i, &b) in input.iter().enumerate() {
        if keep(b) {
            continue;
        }
        if start < i {
            sink.put(&input[start..i]);
        }
        put_escape(sink, b);
        start = i + 1;
    }
    if start < input.len() {
        sink.put(&input[start..]);
    }
}

/// True when a query key or value is already in canonical form: only
/// unreserved bytes and upper-case `%XY` escapes of ASCII bytes that must be
/// escaped (so decoding and re-encoding would give it back unchanged).
#[inline]
pub(crate) fn is_canonical_query(input: &[u8]) -> bool {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if is_unreserved(b) {
            i += 1;
            continue;
        }
        if b != b'%' || i + 2 >= input.len() {
            return false;
        }
        let (h, l) = (input[i + 1], input[i + 2]);
        let upper_hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
        if !upper_hex(h) || !upper_hex(l) {
            return false;
        }
        let decoded = (h - if h.is_ascii_digit() { b'0' } else { b'A' - 10 }) << 4
            | (l - if l.is_ascii_digit() { b'0' } else { b'A' - 10 });
        if decoded >= 0x80 || is_unreserved(decoded) {
            return false;
        }
        i += 3;
    }
    true
}

/// A path as sent (single encoding): keeps every byte that may appear in a
/// request target, and escapes only those that cannot (controls, space,
/// non-ASCII), which is how a raw UTF-8 or spaced target goes on the wire.
pub(crate) fn write_path_as_sent<S: Sink + ?Sized>(sink: &mut S, input: &[u8]) {
    write_escaping(sink, input, |b| b > 0x20 && b < 0x7f);
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` query component into
/// `out`: `%XY` becomes the byte, `+` a space; a `%` not followed by two hex
/// digits stays literal.
pub(crate) fn decode_query_component(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        let b = input[i];
        if b == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex_value(input[i + 1]), hex_value(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if b == b'+' { b' ' } else { b });
        i += 1;
    }
}

/// Canonical form of one query key or value: decoded, made valid UTF-8
/// (invalid sequences become U+FFFD), then strictly percent-encoded.
/// Appends to `scratch` and returns the range written.
pub(crate) fn canonical_query_component(
    input: &[u8],
    decoded: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> std::ops::Range<usize> {
    decoded.clear();
    decode_query_component(input, decoded);
    let start = scratch.len();
    match std::str::from_utf8(decoded) {
        Ok(_) => write_encoded(scratch, decoded, false),
        Err(_) => {
            let lossy = String::from_utf8_lossy(decoded).into_owned();
            write_encoded(scratch, lossy.as_bytes(), false);
        }
    }
    start..scratch.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str, keep_slash: bool) -> String {
        let mut v = Vec::new();
        write_encoded(&mut v, s.as_bytes(), keep_slash);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(
            enc(":/?#[]@!$&'()*+,;=%", false),
            "%3A%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%25"
        );
        assert_eq!(enc("AZaz09-._~", false), "AZaz09-._~");
        assert_eq!(enc("a b/c", true), "a%20b/c");
        assert_eq!(enc("ሴ", false), "%E1%88%B4");
    }

    #[test]
    fn path_as_sent_escapes_only_bytes_a_target_cannot_carry() {
        let mut v = Vec::new();
        write_path_as_sent(&mut v, "/a b/%24ሴ!".as_bytes());
        assert_eq!(String::from_utf8(v).unwrap(), "/a%20b/%24%E1%88%B4!");
    }

    #[test]
    fn decodes_query_components_like_a_form() {
        let mut out = Vec::new();
        decode_query_component(b"a+b%20c%zz%4", &mut out);
        assert_eq!(out, b"a b c%zz%4");
    }

    #[test]
    fn canonical_query_component_reencodes_strictly() {
        let mut d = Vec::new();
        let mut s = Vec::new();
        let r = canonical_query_component(b"%e1%88%b4+x/y", &mut d, &mut s);
        assert_eq!(&s[r], b"%E1%88%B4%20x%2Fy");
        let r = canonical_query_component(b"%ff", &mut d, &mut s);
        assert_eq!(&s[r], b"%EF%BF%BD");
    }

    #[test]
    fn buffered_hasher_matches_one_shot_hashing() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for split in [1usize, 3, 63, 64, 255, 256, 257, 700] {
            let mut h = BufferedHasher::new();
            for chunk in data.chunks(split) {
                h.put(chunk);
            }
            assert_eq!(h.finalize()[..], Sha256::digest(&data)[..], "split {split}");
        }
    }

    #[test]
    fn recognises_query_components_already_in_canonical_form() {
        for (text, canonical) in [
            ("value%20x", true),
            ("a%2Fb%3D", true),
            ("abc-._~", true),
            ("a%2fb", false),
            ("%41", false),
            ("%E1%88%B4", false),
            ("a+b", false),
            ("a b", false),
            ("%2", false),
            ("%", false),
            ("ab%", false),
        ] {
            assert_eq!(is_canonical_query(text.as_bytes()), canonical, "{text}");
            if canonical {
                let mut d = Vec::new();
                let mut s = Vec::new();
                let r = canonical_query_component(text.as_bytes(), &mut d, &mut s);
                assert_eq!(&s[r], text.as_bytes(), "{text}");
            }
        }
    }

    #[test]
    fn hex32_is_lowercase() {
        let h = hex32(&[0xab; 32]);
        assert!(h.iter().all(|c| *c == b'a' || *c == b'b'));
    }
}
