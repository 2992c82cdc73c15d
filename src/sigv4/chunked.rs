//! aws-chunked streaming: per-chunk and trailer signatures, and framing.
//!
//! After the request headers are signed with a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`
//! (or `...-TRAILER`) payload hash, that "seed" signature starts a chain:
//! each chunk is signed over the previous signature and the chunk's hash.
//! The encoder sees one chunk at a time and never holds the body.

use std::fmt;

use hmac::Mac;
use sha2::{Digest, Sha256};

use super::canonical::{
    check_header_name, check_header_value, sort_headers, write_headers, HeaderEntry,
};
use super::encoding::hex32;
use super::key::{Signature, SigningKey};
use super::settings::EMPTY_PAYLOAD_SHA256;
use super::{AmzDate, SigningError};

/// Signs and frames an aws-chunked body chunk by chunk.
///
/// ```
/// use signet::sigv4::{AmzDate, ChunkSigner, Signature, SigningKey};
/// let key = SigningKey::derive("secret", "20130524", "us-east-1", "s3");
/// let seed = Signature::parse(&"0".repeat(64)).unwrap();
/// let time = AmzDate::parse("20130524T000000Z").unwrap();
/// let mut chunks = ChunkSigner::new(key, time, "us-east-1", "s3", seed);
/// let mut wire = Vec::new();
/// chunks.encode_chunk(b"hello", &mut wire);
/// chunks.encode_final(&[], &mut wire).unwrap();
/// assert!(wire.starts_with(b"5;chunk-signature="));
/// assert!(wire.ends_with(b"\r\n\r\n"));
/// ```
#[derive(Clone)]
pub struct ChunkSigner {
    key: SigningKey,
    time: AmzDate,
    /// `date/region/service/aws4_request`.
    scope: String,
    previous: Signature,
}

impl fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkSigner")
            .field("time", &self.time)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The framing line in front of a chunk's data:
/// `<hex-len>;chunk-signature=<sig>\r\n`, on the stack.
#[derive(Clone, Copy)]
pub struct ChunkHeader {
    buf: [u8; 100],
    len: usize,
}

impl ChunkHeader {
    /// The bytes to send before the chunk data.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Debug for ChunkHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkHeader(<redacted>)")
    }
}

impl ChunkSigner {
    /// Starts a chain from the seed signature of the request headers.
    pub fn new(
        key: SigningKey,
        time: AmzDate,
        region: &str,
        service: &str,
        seed: Signature,
    ) -> Self {
        let mut scope = String::with_capacity(32 + region.len() + service.len());
        scope.push_str(time.date());
        scope.push('/');
        scope.push_str(region);
        scope.push('/');
        scope.push_str(service);
        scope.push_str("/aws4_request");
        Self {
            key,
            time,
            scope,
            previous: seed,
        }
    }

    /// The last signature of the chain (the seed before any chunk).
    pub fn previous_signature(&self) -> Signature {
        self.previous
    }

    fn sign_with(&mut self, algorithm: &[u8], middle: &[u8], hash: &[u8; 64]) -> Signature {
        let mut mac = self.key.mac();
        mac.update(algorithm);
        mac.update(b"\n");
        mac.update(self.time.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(self.scope.as_bytes());
        mac.update(b"\n");
        mac.update(self.previous.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(middle);
        mac.update(hash);
        let sig = Signature::from_digest(&mac.finalize().into_bytes());
        self.previous = sig;
        sig
    }

    /// Signs the next chunk (`AWS4-HMAC-SHA256-PAYLOAD` over the previous
    /// signature, the empty-string hash and the chunk's hash). An empty
    /// chunk is the final one.
    pub fn sign_chunk(&mut self, data: &[u8]) -> Signature {
        let hash = hex32(&Sha256::digest(data));
        let mut middle = [0u8; 65];
        middle[..64].copy_from_slice(EMPTY_PAYLOAD_SHA256.as_bytes());
        middle[64] = b'\n';
        self.sign_with(b"AWS4-HMAC-SHA256-PAYLOAD", &middle, &hash)
    }

    /// Signs the next chunk and returns its framing line.
    pub fn chunk_header(&mut self, data: &[u8]) -> ChunkHeader {
        let sig = self.sign_chunk(data);
        let mut h = ChunkHeader {
            buf: [0u8; 100],
            len: 0,
        };
        let mut put = |bytes: &[u8]| {
            h.buf[h.len..h.len + bytes.len()].copy_from_slice(bytes);
            h.len += bytes.len();
        };
        let mut hex = [0u8; 16];
        let n = format_hex(data.len() as u64, &mut hex);
        put(&hex[16 - n..]);
        put(b";chunk-signature=");
        put(sig.as_str().as_bytes());
        put(b"\r\n");
        h
    }

    /// Signs `data` and appends the framed chunk
    /// (`<hex-len>;chunk-signature=<sig>\r\n<data>\r\n`) to `out`.
    pub fn encode_chunk(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let header = self.chunk_header(data);
        out.reserve(header.as_bytes().len() + data.len() + 2);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }

    /// Signs the trailing headers (`AWS4-HMAC-SHA256-TRAILER` over the
    /// previous signature and the hash of the canonical trailer block).
    pub fn sign_trailer(&mut self, trailers: &[(&str, &[u8])]) -> Result<Signature, SigningError> {
        let mut entries = Vec::with_capacity(trailers.len());
        for &(name, value) in trailers {
            check_header_name(name)?;
            check_header_value(name, value)?;
            entries.push(HeaderEntry { name, value });
        }
        sort_headers(&mut entries);
        let mut hasher = Sha256::new();
        write_headers(&mut hasher, &entries);
        let hash = hex32(&hasher.finalize());
        Ok(self.sign_with(b"AWS4-HMAC-SHA256-TRAILER", b"", &hash))
    }

    /// Appends the final zero-length chunk to `out`; with `trailers`, also
    /// the trailer lines and `x-amz-trailer-signature`, then the closing
    /// blank line.
    pub fn encode_final(
        &mut self,
        trailers: &[(&str, &[u8])],
        out: &mut Vec<u8>,
    ) -> Result<(), SigningError> {
        let header = self.chunk_header(b"");
        out.extend_from_slice(header.as_bytes());
        if !trailers.is_empty() {
            let sig = self.sign_trailer(trailers)?;
            for &(name, value) in trailers {
                out.extend(name.bytes().map(|b| b.to_ascii_lowercase()));
                out.push(b':');
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"x-amz-trailer-signature:");
            out.extend_from_slice(sig.as_str().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// Length on the wire of a signed chunk carrying `data_len` bytes
    /// (for computing `Content-Length` ahead of streaming).
    pub fn encoded_chunk_len(data_len: u64) -> u64 {
        let mut hex = [0u8; 16];
        let n = format_hex(data_len, &mut hex) as u64;
        n + ";chunk-signature=".len() as u64 + 64 + 2 + data_len + 2
    }
}

/// Lower-case hex of `v` right-aligned in `out`; returns the digit count.
fn format_hex(mut v: u64, out: &mut [u8; 16]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = 0;
    loop {
        out[15 - n] = HEX[(v & 0xf) as usize];
        n += 1;
        v >>= 4;
        if v == 0 {
            return n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> ChunkSigner {
        let key = SigningKey::derive("secret", "20130524", "us-east-1", "s3");
        let time = AmzDate::parse("20130524T000000Z").unwrap();
        ChunkSigner::new(
            key,
            time,
            "us-east-1",
            "s3",
            Signature::parse(&"a".repeat(64)).unwrap(),
        )
    }

    #[test]
    fn frames_chunks_with_hex_length_and_signature() {
        let mut s = signer();
        let mut out = Vec::new();
        s.encode_chunk(&[b'x'; 1024], &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("400;chunk-signature="));
        let line_end = text.find("\r\n").unwrap();
        assert_eq!(line_end, "400;chunk-signature=".len() + 64);
        assert_eq!(out.len() as u64, ChunkSigner::encoded_chunk_len(1024));
        assert_eq!(s.previous_signature().as_str(), &text[20..84]);
    }

    #[test]
    fn chains_each_signature_over_the_previous_one() {
        let mut a = signer();
        let mut b = signer();
        let first = a.sign_chunk(b"one");
        assert_eq!(first, b.sign_chunk(b"one"));
        // Same data after a different history signs differently.
        let mut c = signer();
        c.sign_chunk(b"other");
        assert_ne!(a.sign_chunk(b"two"), c.sign_chunk(b"two"));
    }

    #[test]
    fn final_chunk_carries_trailers_and_their_signature() {
        let mut s = signer();
        let mut out = Vec::new();
        s.encode_final(&[("X-Amz-Checksum-Crc32", b"AAAAAA==")], &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("0;chunk-signature="));
        assert!(text.contains("\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn rejects_trailer_values_with_line_breaks() {
        let mut s = signer();
        assert!(s.sign_trailer(&[("x", b"a\r\nb")]).is_err());
    }
}
