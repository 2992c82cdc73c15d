//! The signer on hostile and random input: it never panics, and whatever it
//! signs is self-consistent (the string to sign hashes the canonical request
//! it reports, the signature is HMAC-SHA256 of that string under the
//! independently derived key, and the fast path agrees with `explain`).

use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};
use signet::sigv4::raw_request::RawRequest;
use signet::sigv4::{
    AmzDate, Credentials, PayloadHash, SessionTokenMode, SignableRequest, SignatureLocation,
    SignedHeaders, Signer, SigningError, SigningParams, SigningSettings,
};

const SEED: u64 = 0x7369_6776_3472_6f62;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// Textbook signature: key derivation and HMAC written out longhand.
fn reference_signature(secret: &str, date: &str, region: &str, service: &str, sts: &str) -> String {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    let k = hmac(&k, b"aws4_request");
    hex::encode(hmac(&k, sts.as_bytes()))
}

const PIECES: &[&str] = &[
    "a",
    "Z",
    "0",
    "-",
    "_",
    ".",
    "~",
    "/",
    "//",
    "/.",
    "/..",
    "%",
    "%2",
    "%2F",
    "%zz",
    "%E1%88%B4",
    "ሴ",
    " ",
    "\t",
    "+",
    "=",
    "&",
    "?",
    "#",
    ";",
    ",",
    ":",
    "@",
    "!",
    "$",
    "'",
    "(",
    ")",
    "*",
    "[",
    "]",
    "\"",
    "\\",
    "^",
    "`",
    "{",
    "|",
    "}",
    "<",
    ">",
    "é",
    "\u{7f}",
    "\u{0}",
    "\r",
    "\n",
];

/// Pieces that can never be sent in a header value.
const HOSTILE: usize = 4;

fn random_text(rng: &mut StdRng, max: usize) -> String {
    // Mostly sendable text; now and then a control character or line break.
    let hostile = rng.random_bool(0.1);
    let n = if hostile {
        PIECES.len()
    } else {
        PIECES.len() - HOSTILE
    };
    (0..rng.random_range(0..=max))
        .map(|_| PIECES[rng.random_range(0..n)])
        .collect()
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    if rng.random_bool(0.9) {
        random_text(rng, max).into_bytes()
    } else {
        (0..rng.random_range(0..=max))
            .map(|_| rng.random())
            .collect()
    }
}

/// One of `good`, or (5% of the time) one of `bad`.
fn pick<'a>(rng: &mut StdRng, good: &[&'a str], bad: &[&'a str]) -> &'a str {
    if rng.random_bool(0.05) {
        bad[rng.random_range(0..bad.len())]
    } else {
        good[rng.random_range(0..good.len())]
    }
}

#[test]
fn never_panics_and_stays_self_consistent_on_random_requests() {
    let signer = Signer::new();
    let mut rng = StdRng::seed_from_u64(SEED);
    let (mut ok, mut rejected) = (0, 0);
    for i in 0..3000 {
        let service = pick(
            &mut rng,
            &["s3", "service", "dynamodb", "s3-outposts"],
            &["", "a/b"],
        );
        let region = pick(&mut rng, &["us-east-1", "eu-west-1"], &["", "x y"]);
        let mut settings = SigningSettings::for_service(service);
        settings.normalize_path = rng.random_bool(0.5);
        settings.content_sha256_header = rng.random_bool(0.5);
        settings.session_token = [
            SessionTokenMode::Signed,
            SessionTokenMode::AddedAfterSigning,
            SessionTokenMode::Omitted,
        ][rng.random_range(0..3)];
        settings.signed_headers = match rng.random_range(0..3) {
            0 => SignedHeaders::All,
            1 => SignedHeaders::AllExcept(vec!["x-b".into(), "user-agent".into()]),
            _ => SignedHeaders::Only(vec!["x-a".into()]),
        };
        if rng.random_bool(0.4) {
            settings.location = SignatureLocation::Query {
                expires: if rng.random_bool(0.9) {
                    Duration::from_secs(rng.random_range(1..=604_800))
                } else {
                    Duration::from_millis(rng.random_range(0..700_000_000))
                },
            };
        }
        let creds = Credentials {
            access_key_id: if rng.random_bool(0.95) {
                "AKIDEXAMPLE".into()
            } else {
                random_text(&mut rng, 3)
            },
            secret_access_key: random_text(&mut rng, 10),
            session_token: rng.random_bool(0.5).then(|| {
                if rng.random_bool(0.9) {
                    "FwoGZXIvYXdzE//token+/=".to_owned()
                } else {
                    random_text(&mut rng, 8)
                }
            }),
        };
        let method = pick(&mut rng, &["GET", "PUT", "DELETE", "PATCH"], &["", "G T"]);
        let path = random_text(&mut rng, 12);
        let query = random_text(&mut rng, 12);
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        if rng.random_bool(0.95) {
            headers.push(("Host".into(), b"example.amazonaws.com".to_vec()));
        }
        for _ in 0..rng.random_range(0..6) {
            let name = if rng.random_bool(0.8) {
                [
                    "x-a",
                    "X-A",
                    "x-b",
                    "x-amz-date",
                    "Authorization",
                    "x-amz-security-token",
                    "range",
                ][rng.random_range(0..7)]
                .to_owned()
            } else {
                random_text(&mut rng, 3)
            };
            headers.push((name, random_bytes(&mut rng, 10)));
        }
        let pairs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let body = random_bytes(&mut rng, 20);
        let hash_text = if rng.random_bool(0.7) {
            hex::encode(Sha256::digest(&body))
        } else {
            random_text(&mut rng, 3)
        };
        let payload = match rng.random_range(0..5) {
            0 => PayloadHash::Bytes(&body),
            1 => PayloadHash::Unsigned,
            2 => PayloadHash::Precomputed(&hash_text),
            3 => PayloadHash::Explicit(&hash_text),
            _ => PayloadHash::StreamingSigned,
        };
        let params = SigningParams {
            credentials: &creds,
            region,
            service,
            time: AmzDate::parse("20150830T123600Z").unwrap(),
            settings: &settings,
        };
        let request = SignableRequest {
            method,
            path: &path,
            query: &query,
            headers: &pairs,
            payload,
        };
        let fast = signer.sign(&request, &params);
        let explained = signer.explain(&request, &params);
        match (fast, explained) {
            (Ok(out), Ok(ex)) => {
                ok += 1;
                assert_eq!(out.signature(), ex.signature, "case {i}");
                let sts_hash = ex.string_to_sign.rsplit('\n').next().unwrap();
                // `canonical_request` is text; non-UTF-8 header bytes show as U+FFFD.
                if pairs.iter().all(|(_, v)| std::str::from_utf8(v).is_ok()) {
                    assert_eq!(
                        sts_hash,
                        hex::encode(Sha256::digest(ex.canonical_request.as_bytes())),
                        "case {i}"
                    );
                }
                assert_eq!(
                    ex.signature,
                    reference_signature(
                        &creds.secret_access_key,
                        "20150830",
                        region,
                        service,
                        &ex.string_to_sign
                    ),
                    "case {i}"
                );
                assert!(
                    ex.signed_headers.split(';').any(|h| h == "host"),
                    "case {i}"
                );
                // Canonical request lines never carry a raw line break from input.
                assert_eq!(
                    ex.canonical_request.matches('\n').count(),
                    5 + ex.signed_headers.split(';').count(),
                    "case {i}"
                );
            }
            (Err(a), Err(b)) => {
                rejected += 1;
                assert_eq!(a, b, "case {i}");
                let text = a.to_string();
                if creds.secret_access_key.len() >= 4 {
                    assert!(!text.contains(&creds.secret_access_key), "case {i}: {text}");
                }
            }
            (a, b) => panic!(
                "case {i}: sign and explain disagree: {:?} vs {:?}",
                a.err(),
                b.err()
            ),
        }
    }
    assert!(ok > 500 && rejected > 100, "ok {ok}, rejected {rejected}");
}

#[test]
fn rejects_requests_without_host_or_with_line_breaks() {
    let creds = Credentials {
        access_key_id: "AKID".into(),
        secret_access_key: "secret".into(),
        session_token: None,
    };
    let settings = SigningSettings::for_service("service");
    let params = SigningParams {
        credentials: &creds,
        region: "us-east-1",
        service: "service",
        time: AmzDate::parse("20150830T123600Z").unwrap(),
        settings: &settings,
    };
    let sign = |headers: &[(&str, &[u8])]| {
        signet::sigv4::sign(
            &SignableRequest {
                method: "GET",
                path: "/",
                query: "",
                headers,
                payload: PayloadHash::Unsigned,
            },
            &params,
        )
        .map(|o| o.signature().to_owned())
    };
    assert_eq!(sign(&[]), Err(SigningError::MissingHost));
    assert_eq!(
        sign(&[("host", b"h"), ("x-a", b"1\r\nx-b: 2")]),
        Err(SigningError::InvalidHeaderValue { name: "x-a".into() })
    );
    assert!(matches!(
        sign(&[("host", b"h"), ("bad name", b"1")]),
        Err(SigningError::InvalidHeaderName(_))
    ));
    let mut presign = settings.clone();
    presign.location = SignatureLocation::Query {
        expires: Duration::from_secs(604_801),
    };
    let err = signet::sigv4::sign(
        &SignableRequest {
            method: "GET",
            path: "/",
            query: "",
            headers: &[("host", b"h")],
            payload: PayloadHash::Unsigned,
        },
        &SigningParams {
            settings: &presign,
            ..params
        },
    );
    assert_eq!(err.map(|_| ()), Err(SigningError::InvalidExpires(604_801)));
}

#[test]
fn signs_only_the_headers_the_policy_names_plus_the_mandatory_ones() {
    let creds = Credentials {
        access_key_id: "AKID".into(),
        secret_access_key: "secret".into(),
        session_token: Some("tok".into()),
    };
    let headers: [(&str, &[u8]); 4] = [
        ("Host", b"h"),
        ("User-Agent", b"ua"),
        ("X-Custom", b"1"),
        ("Content-Type", b"text/plain"),
    ];
    let request = SignableRequest {
        method: "PUT",
        path: "/k",
        query: "",
        headers: &headers,
        payload: PayloadHash::Unsigned,
    };
    let signed_with = |policy: SignedHeaders| {
        let mut settings = SigningSettings::for_service("s3");
        settings.signed_headers = policy;
        let params = SigningParams {
            credentials: &creds,
            region: "us-east-1",
            service: "s3",
            time: AmzDate::parse("20150830T123600Z").unwrap(),
            settings: &settings,
        };
        signet::sigv4::sign(&request, &params)
            .unwrap()
            .signed_headers()
            .to_owned()
    };
    assert_eq!(
        signed_with(SignedHeaders::All),
        "content-type;host;user-agent;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-custom"
    );
    assert_eq!(
        signed_with(SignedHeaders::AllExcept(vec!["user-agent".into()])),
        "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-custom"
    );
    assert_eq!(
        signed_with(SignedHeaders::Only(vec!["X-Custom".into()])),
        "host;x-amz-content-sha256;x-amz-date;x-amz-security-token;x-custom"
    );
    assert_eq!(
        signed_with(SignedHeaders::Only(vec![])),
        "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
    );
}

#[test]
fn raw_request_parser_never_panics_on_random_bytes() {
    let mut rng = StdRng::seed_from_u64(SEED);
    for _ in 0..5000 {
        let mut input = Vec::new();
        for _ in 0..rng.random_range(0..8) {
            input.extend(random_bytes(&mut rng, 12));
            input.extend_from_slice(
                [&b"\n"[..], b"\r\n", b": ", b" ", b"\n "][rng.random_range(0..5)],
            );
        }
        if let Ok(req) = RawRequest::parse(&input) {
            assert!(!req.method.is_empty());
            assert!(!req.target.is_empty());
            let _ = (req.path(), req.query(), req.header_pairs());
        }
    }
}
