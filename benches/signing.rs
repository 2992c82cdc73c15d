//! Signing speed: signet's signer next to `aws-sigv4`, per request shape.
//!
//! Cases (each a criterion group with one entry per implementation):
//! - `dynamodb_post_1kib`: DynamoDB `PutItem` POST with a 1 KiB JSON body;
//!   hashing the body is part of the measurement.
//! - `s3_get_unsigned_token`: S3 GET with `UNSIGNED-PAYLOAD` and a session
//!   token (S3 rules: single encoding, `x-amz-content-sha256` signed).
//! - `headers20_query10`: a request with 20 headers and 10 query parameters.
//! - `s3_mrap_get_sigv4a`: `s3_get_unsigned_token` sent to a Multi-Region
//!   Access Point, signed with SigV4a for the region set `*` (the ECDSA
//!   signature dominates; `no key cache` adds the key derivation).
//!
//! `signet` signs with a warm signing-key cache (the proxy's steady state);
//! `signet (no key cache)` derives the key every time, as `aws-sigv4` does.
//! Each iteration builds the request description from borrowed data and
//! produces everything needed to send it (signature and the headers or
//! query to add). Results: `bench/RESULTS.md`.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::Credentials as AwsCredentials;
use aws_sigv4::http_request::{
    sign as aws_sign, PayloadChecksumKind, PercentEncodingMode, SignableBody,
    SignableRequest as AwsSignableRequest, SigningSettings as AwsSigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use criterion::{criterion_group, criterion_main, Criterion};
use signet::sigv4::{
    self, AmzDate, Credentials, PayloadHash, SignableRequest, Signer, SigningParams,
    SigningSettings,
};

const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "IQoJb3JpZ2luX2VjEOz//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampletokenAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";
/// 2015-08-30T12:36:00Z.
const UNIX_TIME: u64 = 1_440_938_160;

/// One request shape, as both implementations take it.
struct Shape {
    method: &'static str,
    host: &'static str,
    path: &'static str,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    unsigned_payload: bool,
    service: &'static str,
    region: &'static str,
    session_token: Option<&'static str>,
    /// Sign with SigV4a (then `region` is the region set).
    sigv4a: bool,
}

fn dynamodb_post_1kib() -> Shape {
    let mut body =
        String::from(r#"{"TableName":"Music","Item":{"Artist":{"S":"No One You Know"},"#);
    body.push_str(r#""SongTitle":{"S":"Call Me Today"},"Notes":{"S":""#);
    while body.len() < 1024 - 4 {
        body.push('x');
    }
    body.push_str(r#""}}}"#);
    assert_eq!(body.len(), 1024);
    Shape {
        method: "POST",
        host: "dynamodb.us-east-1.amazonaws.com",
        path: "/",
        query: String::new(),
        headers: vec![
            ("host".into(), "dynamodb.us-east-1.amazonaws.com".into()),
            ("content-type".into(), "application/x-amz-json-1.0".into()),
            ("x-amz-target".into(), "DynamoDB_20120810.PutItem".into()),
            ("content-length".into(), "1024".into()),
        ],
        body: body.into_bytes(),
        unsigned_payload: false,
        service: "dynamodb",
        region: "us-east-1",
        session_token: None,
        sigv4a: false,
    }
}

fn s3_get_unsigned_token() -> Shape {
    Shape {
        method: "GET",
        host: "examplebucket.s3.us-east-1.amazonaws.com",
        path: "/photos/2024/summer/beach.jpg",
        query: String::new(),
        headers: vec![
            (
                "host".into(),
                "examplebucket.s3.us-east-1.amazonaws.com".into(),
            ),
            ("range".into(), "bytes=0-1048575".into()),
        ],
        body: Vec::new(),
        unsigned_payload: true,
        service: "s3",
        region: "us-east-1",
        session_token: Some(SESSION_TOKEN),
        sigv4a: false,
    }
}

fn s3_mrap_get_sigv4a() -> Shape {
    let host = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com";
    Shape {
        host,
        headers: vec![
            ("host".into(), host.into()),
            ("range".into(), "bytes=0-1048575".into()),
        ],
        region: "*",
        sigv4a: true,
        ..s3_get_unsigned_token()
    }
}

fn headers20_query10() -> Shape {
    let mut headers = vec![("host".to_string(), "api.example.amazonaws.com".to_string())];
    for i in 1..20 {
        headers.push((
            format!("x-custom-header-{i:02}"),
            format!("value number {i} with  some   spaces"),
        ));
    }
    let query = (0..10)
        .map(|i| format!("param{}=value%20{i}", 9 - i))
        .collect::<Vec<_>>()
        .join("&");
    Shape {
        method: "GET",
        host: "api.example.amazonaws.com",
        path: "/v1/items/abc-123",
        query,
        headers,
        body: Vec::new(),
        unsigned_payload: false,
        service: "execute-api",
        region: "eu-west-1",
        session_token: None,
        sigv4a: false,
    }
}

fn bench_shape(c: &mut Criterion, name: &str, shape: &Shape) {
    let time = UNIX_EPOCH + Duration::from_secs(UNIX_TIME);

    // signet
    let credentials = Credentials {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SECRET_ACCESS_KEY.into(),
        session_token: shape.session_token.map(str::to_string),
    };
    let mut settings = SigningSettings::for_service(shape.service);
    if shape.sigv4a {
        settings.algorithm = sigv4::Algorithm::V4a;
    }
    let params = SigningParams {
        credentials: &credentials,
        region: shape.region,
        service: shape.service,
        time: AmzDate::from_system_time(time).unwrap(),
        settings: &settings,
    };
    let headers: Vec<(&str, &[u8])> = shape
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let signet_request = || SignableRequest {
        method: shape.method,
        path: shape.path,
        query: &shape.query,
        headers: &headers,
        payload: if shape.unsigned_payload {
            PayloadHash::Unsigned
        } else {
            PayloadHash::Bytes(&shape.body)
        },
    };
    let signer = Signer::new();

    // aws-sigv4
    let identity: Identity = AwsCredentials::new(
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        shape.session_token.map(str::to_string),
        None,
        "bench",
    )
    .into();
    let mut aws_settings = AwsSigningSettings::default();
    if sigv4::is_s3_family(shape.service) {
        aws_settings.percent_encoding_mode = PercentEncodingMode::Single;
        aws_settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        aws_settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let aws_params = if shape.sigv4a {
        aws_sigv4::sign::v4a::SigningParams::builder()
            .identity(&identity)
            .region_set(shape.region)
            .name(shape.service)
            .time(time)
            .settings(aws_settings)
            .build()
            .unwrap()
            .into()
    } else {
        v4::SigningParams::builder()
            .identity(&identity)
            .region(shape.region)
            .name(shape.service)
            .time(time)
            .settings(aws_settings)
            .build()
            .unwrap()
            .into()
    };
    let uri = if shape.query.is_empty() {
        format!("https://{}{}", shape.host, shape.path)
    } else {
        format!("https://{}{}?{}", shape.host, shape.path, shape.query)
    };
    let aws_request = || {
        AwsSignableRequest::new(
            shape.method,
            uri.as_str(),
            shape.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            if shape.unsigned_payload {
                SignableBody::UnsignedPayload
            } else {
                SignableBody::Bytes(&shape.body)
            },
        )
        .unwrap()
    };

    // Both must agree before their speed means anything.
    let ours = signer.sign(&signet_request(), &params).unwrap();
    let theirs = aws_sign(aws_request(), &aws_params).unwrap();
    assert_eq!(
        ours.signature(),
        theirs.signature(),
        "{name}: signatures differ"
    );

    let mut group = c.benchmark_group(name);
    group.bench_function("signet", |b| {
        b.iter(|| {
            let out = signer
                .sign(black_box(&signet_request()), black_box(&params))
                .unwrap();
            black_box(out.authorization().map(str::len));
            out
        })
    });
    group.bench_function("signet (no key cache)", |b| {
        b.iter(|| {
            let out = sigv4::sign(black_box(&signet_request()), black_box(&params)).unwrap();
            black_box(out.authorization().map(str::len));
            out
        })
    });
    group.bench_function("aws-sigv4", |b| {
        b.iter(|| aws_sign(black_box(aws_request()), black_box(&aws_params)).unwrap())
    });
    group.finish();
}

fn signing(c: &mut Criterion) {
    bench_shape(c, "dynamodb_post_1kib", &dynamodb_post_1kib());
    bench_shape(c, "s3_get_unsigned_token", &s3_get_unsigned_token());
    bench_shape(c, "headers20_query10", &headers20_query10());
    bench_shape(c, "s3_mrap_get_sigv4a", &s3_mrap_get_sigv4a());
}

criterion_group!(benches, signing);
criterion_main!(benches);
