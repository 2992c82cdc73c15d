//! SigV4a routes end to end through the real `signet` binary: the upstream
//! recomputes every `AWS4-ECDSA-P256-SHA256` signature with the `aws-sigv4`
//! crate and rejects mismatches.

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};

fn v4a_config(up: &Upstream, service: &str, region: Option<&str>) -> String {
    let region = region.map_or(String::new(), |r| format!("region = \"{r}\""));
    format!(
        r#"
[[routes]]
name = "global"
path_prefix = "/"
upstream = "{}"
service = "{service}"
signature = "sigv4a"
{region}
"#,
        up.url()
    )
}

fn is_v4a(seen: &Seen) -> bool {
    seen.headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-ECDSA-P256-SHA256 Credential="))
}

#[tokio::test]
async fn signs_a_global_endpoint_post_with_sigv4a_for_every_region() {
    let up = Upstream::start().await;
    let signet = Signet::start(&v4a_config(&up, "events", None));
    let body = r#"{"Entries":[{"Source":"app","DetailType":"t","Detail":"{}"}]}"#;
    let req = Request::post(format!("{}/", signet.url()))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "AWSEvents.PutEvents")
        // A client's own region set is replaced by the route's.
        .header("x-amz-region-set", "eu-west-1")
        .body(full(body))
        .unwrap();
    let (status, _, out) = send(req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&out));
    assert_no_rejections(&up);
    let seen = up.seen().pop().expect("forwarded");
    assert!(is_v4a(&seen), "{:?}", seen.headers.get("authorization"));
    assert_eq!(seen.service, "events");
    assert_eq!(seen.region, "*", "the default region set");
    assert_eq!(seen.headers.get_all("x-amz-region-set").iter().count(), 1);
    assert_eq!(&seen.body[..], body.as_bytes());
    for h in [
        "host",
        "x-amz-date",
        "x-amz-region-set",
        "x-amz-security-token",
        "x-amz-target",
        "content-type",
    ] {
        assert!(seen.signed_headers.iter().any(|s| s == h), "{h} unsigned");
    }
}

#[tokio::test]
async fn signs_s3_reads_writes_and_unsigned_trailer_uploads_for_a_region_set() {
    let up = Upstream::start().await;
    let signet = Signet::start(&v4a_config(&up, "s3", Some("us-east-1,us-west-2")));
    let (status, _, _) = get(&format!("{}/key.txt?versionId=3", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    let put = Request::put(format!("{}/small.bin", signet.url()))
        .body(full(vec![7u8; 1024]))
        .unwrap();
    assert_eq!(send(put).await.0, StatusCode::OK);

    // aws-chunked with unsigned chunks: only the seed is signed.
    let data = vec![42u8; 70_000];
    let (upload, wire) = aws_chunked_put(&format!("{}/chunked.bin", signet.url()), &data, false);
    assert_eq!(send(upload).await.0, StatusCode::OK);

    assert_no_rejections(&up);
    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert!(is_v4a(s), "{} not SigV4a", s.path_and_query);
        assert_eq!(s.service, "s3");
        assert_eq!(s.region, "us-east-1,us-west-2");
        assert!(s.signed_headers.iter().any(|h| h == "x-amz-content-sha256"));
    }
    assert_eq!(seen[0].path_and_query, "/key.txt?versionId=3");
    assert_eq!(&seen[1].body[..], &[7u8; 1024][..]);
    assert_eq!(&seen[2].body[..], &wire[..], "byte-identical upload");
}

#[tokio::test]
async fn refuses_chunk_signed_uploads_it_cannot_resign() {
    let up = Upstream::start().await;
    let config = format!(
        "{}\n{}",
        v4a_config(&up, "s3", None).replace("path_prefix = \"/\"", "path_prefix = \"/a/\""),
        one_route_config(&up.url(), "s3", "us-east-1", "").replace("\"test\"", "\"v4\"")
    );
    let signet = Signet::start(&config);
    // HMAC chunk signatures on a SigV4a route, and ECDSA chunk signatures
    // anywhere: signet cannot sign those chunks.
    for (path, mode) in [
        ("/a/signed.bin", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("/a/signed.bin", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"),
        (
            "/v4.bin",
            "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
        ),
    ] {
        let wire = b"5;chunk-signature=00\r\nhello\r\n0;chunk-signature=00\r\n\r\n".to_vec();
        let req = Request::put(format!("{}{path}", signet.url()))
            .header("content-encoding", "aws-chunked")
            .header("x-amz-content-sha256", mode)
            .header("x-amz-decoded-content-length", "5")
            .header("content-length", wire.len().to_string())
            .body(full(Bytes::from(wire)))
            .unwrap();
        let (status, headers, body) = send(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{mode}");
        assert_eq!(headers.get("x-signet-error").unwrap(), "aws_chunked");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("with SigV4 only"), "{body}");
    }
    assert!(
        up.seen().is_empty() && up.rejected().is_empty(),
        "nothing forwarded"
    );
}

#[tokio::test]
async fn a_sigv4_route_beside_it_still_signs_sigv4() {
    let up = Upstream::start().await;
    let config = format!(
        r#"
[[routes]]
name = "global"
path_prefix = "/global/"
strip_prefix = true
upstream = "{url}"
service = "events"
signature = "sigv4a"

[[routes]]
name = "regional"
path_prefix = "/"
upstream = "{url}"
service = "events"
region = "eu-west-1"
"#,
        url = up.url()
    );
    let signet = Signet::start(&config);
    let (status, _, _) = get(&format!("{}/global/x", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    let req = Request::get(format!("{}/y", signet.url()))
        .header("x-amz-region-set", "*")
        .body(full(Bytes::new()))
        .unwrap();
    assert_eq!(send(req).await.0, StatusCode::OK);
    assert_no_rejections(&up);
    let seen = up.seen();
    assert!(is_v4a(&seen[0]));
    assert!(!is_v4a(&seen[1]));
    assert_eq!(seen[1].region, "eu-west-1");
    assert!(
        seen[1].headers.get("x-amz-region-set").is_none(),
        "a client's region set is not forwarded on a SigV4 route"
    );
}

#[tokio::test]
async fn a_route_whose_sign_host_is_a_multi_region_access_point_signs_sigv4a() {
    // The shape of an MRAP reached through a tunnel or interface endpoint:
    // signet connects to the upstream and signs the MRAP host, deriving
    // service, region set and algorithm from it.
    let up = Upstream::start().await;
    let mrap = "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com";
    let config = format!(
        r#"
[[routes]]
name = "mrap"
path_prefix = "/"
upstream = "{}"
sign_host = "{mrap}"
"#,
        up.url()
    );
    let signet = Signet::start(&config);
    let (status, _, _) = get(&format!("{}/photos/cat.jpg", signet.url())).await;
    assert_eq!(status, StatusCode::OK);
    assert_no_rejections(&up);
    let seen = up.seen().pop().expect("forwarded");
    assert!(is_v4a(&seen));
    assert_eq!(seen.headers.get("host").unwrap(), mrap);
    assert_eq!((seen.service.as_str(), seen.region.as_str()), ("s3", "*"));
}
