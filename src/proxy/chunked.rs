//! aws-chunked uploads whose chunks the client signed
//! (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`): the client's chunk
//! signatures were made with its own (or no) credentials, so signet re-signs
//! every chunk, and the trailer, with the chain seeded by its own request
//! signature, as the body streams.
//!
//! The framing keeps its length: a chunk signature is always 64 hex digits, so
//! `Content-Length` and `x-amz-decoded-content-length` stay valid and the data
//! and checksum trailers reach S3 byte for byte. A chunk must be whole before
//! its signature can be computed, so at most one chunk is held in memory
//! (bounded by `max_chunk`).
//!
//! Unsigned-chunk uploads (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`) need none of
//! this: their bytes pass through untouched.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::sigv4::{ChunkSigner, Signature};

/// Where the attempt signer leaves the chunk-signature chain seeded by the
/// request it just signed; the body takes it when its first byte is needed.
pub type ChunkChain = Arc<Mutex<Option<ChunkSigner>>>;

/// Why an aws-chunked body could not be re-signed.
#[derive(Debug, thiserror::Error)]
pub enum ChunkedError {
    /// The framing is not aws-chunked.
    #[error("malformed aws-chunked body: {0}")]
    Malformed(&'static str),
    /// A chunk is larger than signet holds in memory.
    #[error("aws-chunked chunk of {size} bytes exceeds the {max} byte limit")]
    ChunkTooLarge {
        /// Declared chunk size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The body ended inside a chunk.
    #[error("aws-chunked body ended early")]
    Truncated,
    /// No request signature seeded the chain (signing did not run).
    #[error("aws-chunked body polled before the request was signed")]
    Unseeded,
    /// Reading the client's body failed.
    #[error("reading the request body failed: {0}")]
    Client(String),
}

enum State {
    /// Expecting `<hex>;chunk-signature=<sig>\r\n`.
    Header,
    /// Expecting `size` data bytes and `\r\n`.
    Data(usize),
    /// After the zero-length chunk: trailer lines up to a blank line.
    Trailers,
    Done,
}

pin_project_lite::pin_project! {
    /// Re-signs a client's signed aws-chunked body while streaming it.
    pub struct Resigned<B> {
        #[pin]
        inner: B,
        chain: ChunkChain,
        signer: Option<ChunkSigner>,
        pending: BytesMut,
        out: VecDeque<Bytes>,
        state: State,
        inner_done: bool,
        max_chunk: u64,
        remaining_len: Option<u64>,
        // Whether a frame has gone out. Until then the seed of the latest
        // attempt's signing replaces the one held: an attempt whose
        // connection failed before sending anything is signed again, with
        // a new seed, and sends this same body.
        sent: bool,
    }
}

impl<B> Resigned<B> {
    /// Wraps the client body; `chain` is filled by the attempt signer.
    /// `content_length` (when known) is reported as the exact size.
    pub fn new(inner: B, chain: ChunkChain, max_chunk: u64, content_length: Option<u64>) -> Self {
        Self {
            inner,
            chain,
            signer: None,
            pending: BytesMut::new(),
            out: VecDeque::new(),
            state: State::Header,
            inner_done: false,
            max_chunk,
            remaining_len: content_length,
            sent: false,
        }
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Parses `<hex-size>;chunk-signature=<64 hex>`, exactly as AWS SDKs write it:
/// the re-signed header replaces it byte for byte, so the body keeps the
/// length the request declared and signed. Leading zeros, spaces, signs or
/// other extensions would change that length and are refused.
fn parse_chunk_header(line: &[u8]) -> Result<u64, ChunkedError> {
    let text =
        std::str::from_utf8(line).map_err(|_| ChunkedError::Malformed("non-ASCII chunk header"))?;
    let Some((size_text, signature)) = text.split_once(";chunk-signature=") else {
        return Err(ChunkedError::Malformed(
            "chunk header is not <hex size>;chunk-signature=<signature>",
        ));
    };
    let canonical = !size_text.is_empty()
        && size_text.len() <= 15
        && size_text.bytes().all(|b| b.is_ascii_hexdigit())
        && (size_text == "0" || !size_text.starts_with('0'));
    if !canonical {
        return Err(ChunkedError::Malformed(
            "chunk size must be hex digits without leading zeros",
        ));
    }
    let size = u64::from_str_radix(size_text, 16)
        .map_err(|_| ChunkedError::Malformed("bad chunk size"))?;
    if Signature::parse(signature).is_none() {
        return Err(ChunkedError::Malformed(
            "chunk-signature must be 64 hex digits",
        ));
    }
    Ok(size)
}

impl<B> Resigned<B> {
    /// Turns as much of `pending` as possible into output frames.
    fn process(
        state: &mut State,
        pending: &mut BytesMut,
        out: &mut VecDeque<Bytes>,
        signer: &mut ChunkSigner,
        max_chunk: u64,
        inner_done: bool,
    ) -> Result<(), ChunkedError> {
        loop {
            match state {
                State::Header => {
                    let Some(end) = find_crlf(pending) else {
                        if pending.len() > 4096 {
                            return Err(ChunkedError::Malformed("chunk header too long"));
                        }
                        break;
                    };
                    let size = parse_chunk_header(&pending[..end])?;
                    if size > max_chunk {
                        return Err(ChunkedError::ChunkTooLarge {
                            size,
                            max: max_chunk,
                        });
                    }
                    pending.advance(end + 2);
                    if size == 0 {
                        *state = State::Trailers;
                    } else {
                        let size = usize::try_from(size)
                            .map_err(|_| ChunkedError::Malformed("bad chunk size"))?;
                        // Grows as the chunk arrives, not ahead of it.
                        pending.reserve((size + 2).min(64 * 1024));
                        *state = State::Data(size);
                    }
                }
                State::Data(size) => {
                    let size = *size;
                    if pending.len() < size + 2 {
                        break;
                    }
                    let data = pending.split_to(size).freeze();
                    if &pending[..2] != b"\r\n" {
                        return Err(ChunkedError::Malformed("chunk data not followed by CRLF"));
                    }
                    pending.advance(2);
                    let header = signer.chunk_header(&data);
                    out.push_back(Bytes::copy_from_slice(header.as_bytes()));
                    out.push_back(data);
                    out.push_back(Bytes::from_static(b"\r\n"));
                    *state = State::Header;
                }
                State::Trailers => {
                    // Trailer lines end with an empty line.
                    let Some(end) = pending.windows(2).enumerate().find_map(|(i, w)| {
                        (w == b"\r\n" && (i == 0 || pending[..i].ends_with(b"\r\n"))).then_some(i)
                    }) else {
                        if pending.len() > 16 * 1024 {
                            return Err(ChunkedError::Malformed("trailer section too long"));
                        }
                        break;
                    };
                    let block = pending.split_to(end + 2);
                    // Re-signed trailer lines must keep their length, as the
                    // chunk headers do: names without spaces around them and
                    // one 64-digit signature line exactly when there are
                    // trailers.
                    let mut trailers: Vec<(&str, &[u8])> = Vec::new();
                    let mut signatures = 0;
                    for line in block[..].split(|&b| b == b'\n') {
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        if line.is_empty() {
                            continue;
                        }
                        let colon = line
                            .iter()
                            .position(|&b| b == b':')
                            .ok_or(ChunkedError::Malformed("trailer without ':'"))?;
                        let name = std::str::from_utf8(&line[..colon])
                            .map_err(|_| ChunkedError::Malformed("non-ASCII trailer name"))?;
                        if name.is_empty() || name.trim() != name {
                            return Err(ChunkedError::Malformed(
                                "trailer name empty or with spaces",
                            ));
                        }
                        if name.eq_ignore_ascii_case("x-amz-trailer-signature") {
                            if line.len() - colon - 1 != 64 {
                                return Err(ChunkedError::Malformed(
                                    "trailer signature is not 64 hex digits",
                                ));
                            }
                            signatures += 1;
                            continue;
                        }
                        trailers.push((name, &line[colon + 1..]));
                    }
                    if signatures != usize::from(!trailers.is_empty()) {
                        return Err(ChunkedError::Malformed(
                            "trailers need exactly one x-amz-trailer-signature",
                        ));
                    }
                    let mut tail = Vec::with_capacity(256);
                    signer
                        .encode_final(&trailers, &mut tail)
                        .map_err(|_| ChunkedError::Malformed("invalid trailer"))?;
                    out.push_back(Bytes::from(tail));
                    *state = State::Done;
                }
                State::Done => break,
            }
        }
        if inner_done && !matches!(state, State::Done) {
            return Err(ChunkedError::Truncated);
        }
        Ok(())
    }
}

impl<B> Body for Resigned<B>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = ChunkedError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ChunkedError>>> {
        let mut this = self.project();
        if !*this.sent {
            if let Some(newer) = this.chain.lock().ok().and_then(|mut slot| slot.take()) {
                *this.signer = Some(newer);
            }
        }
        if this.signer.is_none() {
            return Poll::Ready(Some(Err(ChunkedError::Unseeded)));
        }
        loop {
            if let Some(frame) = this.out.pop_front() {
                if let Some(rem) = this.remaining_len.as_mut() {
                    *rem = rem.saturating_sub(frame.len() as u64);
                }
                *this.sent = true;
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            if matches!(this.state, State::Done) {
                return Poll::Ready(None);
            }
            if *this.inner_done {
                return Poll::Ready(Some(Err(ChunkedError::Truncated)));
            }
            match this.inner.as_mut().poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(ChunkedError::Client(e.to_string()))))
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.pending.extend_from_slice(&data);
                    }
                }
                Poll::Ready(None) => *this.inner_done = true,
            }
            let Some(signer) = this.signer.as_mut() else {
                return Poll::Ready(Some(Err(ChunkedError::Unseeded)));
            };
            if let Err(e) = Self::process(
                this.state,
                this.pending,
                this.out,
                signer,
                *this.max_chunk,
                *this.inner_done,
            ) {
                *this.state = State::Done;
                this.out.clear();
                return Poll::Ready(Some(Err(e)));
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining_len {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::{AmzDate, SigningKey};
    use http_body_util::{BodyExt, StreamBody};

    const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

    fn signer() -> ChunkSigner {
        seeded(SEED)
    }

    fn seeded(seed: &str) -> ChunkSigner {
        let time = AmzDate::parse("20130524T000000Z").unwrap();
        let key = SigningKey::derive(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            time.date(),
            "us-east-1",
            "s3",
        );
        ChunkSigner::new(
            key,
            time,
            "us-east-1",
            "s3",
            Signature::parse(seed).unwrap(),
        )
    }

    /// The client's framing of `chunks`, with a dummy signature each.
    fn client_framing(chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Vec<u8> {
        let fake = "0".repeat(64);
        let mut v = Vec::new();
        for c in chunks {
            v.extend_from_slice(format!("{:x};chunk-signature={fake}\r\n", c.len()).as_bytes());
            v.extend_from_slice(c);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(format!("0;chunk-signature={fake}\r\n").as_bytes());
        for (k, val) in trailers {
            v.extend_from_slice(format!("{k}:{val}\r\n").as_bytes());
        }
        if !trailers.is_empty() {
            v.extend_from_slice(format!("x-amz-trailer-signature:{fake}\r\n").as_bytes());
        }
        v.extend_from_slice(b"\r\n");
        v
    }

    /// What signet's own encoder produces for the same chunks.
    fn expected(chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Vec<u8> {
        expected_from(signer(), chunks, trailers)
    }

    fn expected_from(mut s: ChunkSigner, chunks: &[&[u8]], trailers: &[(&str, &str)]) -> Vec<u8> {
        let mut v = Vec::new();
        for c in chunks {
            s.encode_chunk(c, &mut v);
        }
        let t: Vec<(&str, &[u8])> = trailers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        s.encode_final(&t, &mut v).unwrap();
        v
    }

    async fn resign(input: Vec<u8>, split: usize) -> Result<Vec<u8>, ChunkedError> {
        let pieces: Vec<Result<Frame<Bytes>, std::io::Error>> = input
            .chunks(split)
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let len = input.len() as u64;
        let chain: ChunkChain = Arc::new(Mutex::new(Some(signer())));
        let body = Resigned::new(
            StreamBody::new(futures_util::stream::iter(pieces)),
            chain,
            1 << 20,
            Some(len),
        );
        body.collect().await.map(|c| c.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn resigns_chunks_and_trailer_keeping_length() {
        let chunks: [&[u8]; 3] = [&[b'a'; 65536], &[b'b'; 1024], b"tail"];
        let trailers = [("x-amz-checksum-crc32", "sOO8/Q==")];
        let input = client_framing(&chunks, &trailers);
        for split in [1, 7, 1000, input.len()] {
            let out = resign(input.clone(), split).await.unwrap();
            assert_eq!(out.len(), input.len(), "split {split}");
            assert_eq!(out, expected(&chunks, &trailers), "split {split}");
        }
    }

    #[tokio::test]
    async fn resigns_without_trailer() {
        let chunks: [&[u8]; 1] = [b"hello world"];
        let input = client_framing(&chunks, &[]);
        let out = resign(input.clone(), 3).await.unwrap();
        assert_eq!(out.len(), input.len());
        assert_eq!(out, expected(&chunks, &[]));
    }

    #[tokio::test]
    async fn chains_from_the_latest_seed_until_a_frame_goes_out() {
        // The first attempt's signing seeds the chain, hyper polls the body
        // before the client's first chunk has arrived, and the attempt fails;
        // the retry is signed again with a new seed and sends this same body.
        let chunks: [&[u8]; 2] = [b"first", b"second"];
        let mut frames: std::collections::VecDeque<Bytes> =
            [Bytes::from(client_framing(&chunks, &[]))].into();
        let mut waited = false;
        let inner = StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            if !waited {
                waited = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(
                frames
                    .pop_front()
                    .map(|b| Ok::<_, std::io::Error>(Frame::data(b))),
            )
        }));
        let chain: ChunkChain = Arc::new(Mutex::new(Some(signer())));
        let mut body = Resigned::new(inner, chain.clone(), 1 << 20, None);
        let mut cx = Context::from_waker(futures_util::task::noop_waker_ref());
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        let retry_seed = "1".repeat(64);
        *chain.lock().unwrap() = Some(seeded(&retry_seed));
        let out = body.collect().await.unwrap().to_bytes().to_vec();
        assert_eq!(out, expected_from(seeded(&retry_seed), &chunks, &[]));
        assert_ne!(out, expected(&chunks, &[]));
    }

    #[tokio::test]
    async fn refuses_chunk_headers_whose_length_would_change() {
        let sig = "0".repeat(64);
        for header in [
            format!("05;chunk-signature={sig}"),
            format!("+5;chunk-signature={sig}"),
            format!(" 5;chunk-signature={sig}"),
            format!("5;chunk-signature={sig};x=y"),
            format!("5; chunk-signature={sig}"),
            "5".to_string(),
        ] {
            let input = format!("{header}\r\nhello\r\n0;chunk-signature={sig}\r\n\r\n");
            assert!(
                matches!(
                    resign(input.into_bytes(), 4).await,
                    Err(ChunkedError::Malformed(_))
                ),
                "{header}"
            );
        }
    }

    #[tokio::test]
    async fn refuses_trailer_sections_whose_length_would_change() {
        let sig = "0".repeat(64);
        let head = format!("5;chunk-signature={sig}\r\nhello\r\n0;chunk-signature={sig}\r\n");
        for trailer in [
            format!("x-amz-checksum-crc32 :sOO8/Q==\r\nx-amz-trailer-signature:{sig}\r\n"),
            format!(" x-amz-checksum-crc32:sOO8/Q==\r\nx-amz-trailer-signature:{sig}\r\n"),
            format!(":sOO8/Q==\r\nx-amz-trailer-signature:{sig}\r\n"),
            "x-amz-checksum-crc32:sOO8/Q==\r\n".to_string(),
            format!("x-amz-checksum-crc32:sOO8/Q==\r\nx-amz-trailer-signature:{sig}0\r\n"),
            format!(
                "x-amz-checksum-crc32:sOO8/Q==\r\nx-amz-trailer-signature:{sig}\r\n\
                 x-amz-trailer-signature:{sig}\r\n"
            ),
            format!("x-amz-trailer-signature:{sig}\r\n"),
        ] {
            let input = format!("{head}{trailer}\r\n");
            assert!(
                matches!(
                    resign(input.into_bytes(), 5).await,
                    Err(ChunkedError::Malformed(_))
                ),
                "{trailer:?}"
            );
        }
        // Upper-case names are lower-cased: the length stays.
        let input =
            format!("{head}X-Amz-Checksum-CRC32:sOO8/Q==\r\nx-amz-trailer-signature:{sig}\r\n\r\n");
        let out = resign(input.clone().into_bytes(), 5).await.unwrap();
        assert_eq!(out.len(), input.len());
    }

    #[tokio::test]
    async fn rejects_truncated_and_malformed_bodies() {
        let input = client_framing(&[b"hello"], &[]);
        let cut = input[..input.len() - 10].to_vec();
        assert!(matches!(resign(cut, 4).await, Err(ChunkedError::Truncated)));
        let bad = b"zz;chunk-signature=00\r\nhello\r\n".to_vec();
        assert!(matches!(
            resign(bad, 4).await,
            Err(ChunkedError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn refuses_chunks_over_the_limit() {
        let input = client_framing(&[&[0u8; 4096]], &[]);
        let chain: ChunkChain = Arc::new(Mutex::new(Some(signer())));
        let body = Resigned::new(
            http_body_util::Full::new(Bytes::from(input)),
            chain,
            1024,
            None,
        );
        assert!(matches!(
            body.collect().await,
            Err(ChunkedError::ChunkTooLarge {
                size: 4096,
                max: 1024
            })
        ));
    }
}
