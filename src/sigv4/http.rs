//! Adapter for `http` types: signs a `Method` + `Uri` + `HeaderMap` in place.

use http::header::{HeaderName, HeaderValue, HOST};
use http::uri::{PathAndQuery, Uri};
use http::{HeaderMap, Method, Request};

use super::sign::{SignableRequest, Signer, SigningOutput, SigningParams};
use super::{PayloadHash, SigningError};

/// The `Host` value for `uri`'s authority, without a default port.
fn host_for(uri: &Uri) -> Option<String> {
    let authority = uri.authority()?;
    let default = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    match authority.port_u16() {
        Some(p) if Some(p) != default => Some(authority.as_str().rsplit('@').next()?.to_owned()),
        _ => Some(authority.host().to_owned()),
    }
}

impl Signer {
    /// Signs an HTTP request in place.
    ///
    /// Header mode: sets `x-amz-date`, `x-amz-region-set` (SigV4a),
    /// `x-amz-security-token` (when a token is sent), `x-amz-content-sha256`
    /// (when enabled) and `authorization` (the token and `authorization`
    /// marked sensitive). Query mode: appends the presign
    /// parameters to `uri`. If `headers` has no `host`, one is added from
    /// the URI's authority (default port omitted).
    pub fn sign_http<'p>(
        &self,
        method: &Method,
        uri: &mut Uri,
        headers: &mut HeaderMap,
        payload: PayloadHash<'_>,
        params: &SigningParams<'p>,
    ) -> Result<SigningOutput<'p>, SigningError> {
        if !headers.contains_key(HOST) {
            let host = host_for(uri).ok_or(SigningError::MissingHost)?;
            let value = HeaderValue::from_str(&host).map_err(|_| SigningError::MissingHost)?;
            headers.insert(HOST, value);
        }
        let output = {
            let pairs: Vec<(&str, &[u8])> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()))
                .collect();
            let request = SignableRequest {
                method: method.as_str(),
                path: uri.path(),
                query: uri.query().unwrap_or(""),
                headers: &pairs,
                payload,
            };
            self.sign(&request, params)?
        };
        if let Some(params_text) = output.presigned_params() {
            let mut pq = String::with_capacity(uri.path().len() + 2 + params_text.len());
            pq.push_str(uri.path());
            pq.push('?');
            pq.push_str(&output.query_with(uri.query().unwrap_or("")));
            let pq = PathAndQuery::try_from(pq).map_err(|_| SigningError::InvalidUri)?;
            let mut parts = std::mem::take(uri).into_parts();
            parts.path_and_query = Some(pq);
            *uri = Uri::from_parts(parts).map_err(|_| SigningError::InvalidUri)?;
        }
        for (name, value) in output.headers() {
            let mut v =
                HeaderValue::from_str(value).map_err(|_| SigningError::InvalidHeaderValue {
                    name: name.to_owned(),
                })?;
            if name == super::AUTHORIZATION || name == super::X_AMZ_SECURITY_TOKEN {
                v.set_sensitive(true);
            }
            headers.insert(HeaderName::from_static(name), v);
        }
        Ok(output)
    }

    /// [`Signer::sign_http`] on a whole `http::Request`.
    pub fn sign_http_request<'p, B>(
        &self,
        request: &mut Request<B>,
        payload: PayloadHash<'_>,
        params: &SigningParams<'p>,
    ) -> Result<SigningOutput<'p>, SigningError> {
        let method = request.method().clone();
        let mut uri = std::mem::take(request.uri_mut());
        let result = self.sign_http(&method, &mut uri, request.headers_mut(), payload, params);
        *request.uri_mut() = uri;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigv4::{AmzDate, Credentials, SignatureLocation, SigningSettings};
    use std::time::Duration;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_owned),
        }
    }

    #[test]
    fn adds_signing_headers_in_place_and_marks_secrets_sensitive() {
        let signer = Signer::new();
        let c = creds(Some("tok"));
        let settings = SigningSettings::for_service("s3");
        let params = SigningParams {
            credentials: &c,
            region: "us-east-1",
            service: "s3",
            time: AmzDate::parse("20150830T123600Z").unwrap(),
            settings: &settings,
        };
        let mut req = Request::get("https://bucket.s3.amazonaws.com/key?list-type=2")
            .body(())
            .unwrap();
        let out = signer
            .sign_http_request(&mut req, PayloadHash::Unsigned, &params)
            .unwrap();
        let h = req.headers();
        assert_eq!(h["host"], "bucket.s3.amazonaws.com");
        assert_eq!(h["x-amz-date"], "20150830T123600Z");
        assert_eq!(h["x-amz-security-token"], "tok");
        assert_eq!(h["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
        assert!(h["authorization"].is_sensitive());
        assert!(h["x-amz-security-token"].is_sensitive());
        assert_eq!(
            out.signed_headers(),
            "host;x-amz-content-sha256;x-amz-date;x-amz-security-token"
        );
        assert!(h["authorization"]
            .to_str()
            .unwrap()
            .ends_with(out.signature()));
    }

    #[test]
    fn keeps_a_non_default_port_in_the_host() {
        let uri: Uri = "http://127.0.0.1:8080/x".parse().unwrap();
        assert_eq!(host_for(&uri).unwrap(), "127.0.0.1:8080");
        let uri: Uri = "https://h:443/x".parse().unwrap();
        assert_eq!(host_for(&uri).unwrap(), "h");
    }

    #[test]
    fn presigns_into_the_uri() {
        let signer = Signer::new();
        let c = creds(None);
        let mut settings = SigningSettings::for_service("s3");
        settings.location = SignatureLocation::Query {
            expires: Duration::from_secs(86_400),
        };
        let params = SigningParams {
            credentials: &c,
            region: "us-east-1",
            service: "s3",
            time: AmzDate::parse("20130524T000000Z").unwrap(),
            settings: &settings,
        };
        let mut req = Request::get("https://examplebucket.s3.amazonaws.com/test.txt")
            .body(())
            .unwrap();
        let out = signer
            .sign_http_request(&mut req, PayloadHash::Unsigned, &params)
            .unwrap();
        let q = req.uri().query().unwrap();
        assert!(q.starts_with("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&"));
        assert!(q.ends_with(&format!("X-Amz-Signature={}", out.signature())));
        assert!(!req.headers().contains_key("authorization"));
    }
}
