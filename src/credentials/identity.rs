//! sts:GetCallerIdentity, signed by signet's own signer, for `signet check --identity`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::sigv4::{AmzDate, Credentials, PayloadHash, Signer, SigningParams, SigningSettings};
use crate::upstream::xml_element;

/// The form body of the call.
const BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

/// Who AWS says the credentials belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CallerIdentity {
    pub(crate) arn: String,
    pub(crate) account: String,
}

/// The STS endpoint: `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, or the regional endpoint.
pub(crate) fn sts_endpoint(region: &str) -> String {
    ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|key| std::env::var(key).ok())
        .find(|value| !value.is_empty())
        .unwrap_or_else(|| {
            let suffix = if region.starts_with("cn-") {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            format!("https://sts.{region}.{suffix}")
        })
}

/// Calls GetCallerIdentity with `credentials`, signed by [`crate::sigv4::Signer`].
pub(crate) async fn caller_identity(
    credentials: &Credentials,
    tls: &crate::upstream::TlsSettings,
) -> Result<CallerIdentity, String> {
    let region = super::resolve::default_region();
    let endpoint = sts_endpoint(&region);
    let uri: http::Uri = format!("{}/", endpoint.trim_end_matches('/'))
        .parse()
        .map_err(|_| format!("STS endpoint {endpoint:?} is not a valid URL"))?;
    let mut request = http::Request::post(uri)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(())
        .map_err(|e| format!("could not build the request: {e}"))?;
    let settings = SigningSettings::for_service("sts");
    let params = SigningParams {
        credentials,
        region: &region,
        service: "sts",
        time: AmzDate::now().map_err(|e| format!("clock: {e}"))?,
        settings: &settings,
    };
    Signer::new()
        .sign_http_request(&mut request, PayloadHash::Bytes(BODY.as_bytes()), &params)
        .map_err(|e| format!("signing failed: {e}"))?;
    let (parts, ()) = request.into_parts();
    let request = http::Request::from_parts(parts, Full::new(Bytes::from_static(BODY.as_bytes())));

    let tls = crate::upstream::tls_config(tls).map_err(|e| format!("TLS setup failed: {e}"))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = Client::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(https);
    let response = tokio::time::timeout(Duration::from_secs(15), client.request(request))
        .await
        .map_err(|_| format!("no answer from {endpoint} within 15s"))?
        .map_err(|e| {
            format!(
                "request to {endpoint} failed: {}",
                crate::error_chain::error_chain(&e)
            )
        })?;
    let status = response.status();
    let body = tokio::time::timeout(Duration::from_secs(15), response.into_body().collect())
        .await
        .map_err(|_| format!("{endpoint} did not finish its answer within 15s"))?
        .map_err(|e| format!("reading the answer from {endpoint} failed: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    if !status.is_success() {
        let code = xml_element(&text, "Code").unwrap_or("no error code");
        let message = xml_element(&text, "Message").unwrap_or_default();
        return Err(format!("STS answered {status}: {code} {message}")
            .trim_end()
            .to_owned());
    }
    match (xml_element(&text, "Arn"), xml_element(&text, "Account")) {
        (Some(arn), Some(account)) => Ok(CallerIdentity {
            arn: arn.to_owned(),
            account: account.to_owned(),
        }),
        _ => Err("STS answer has no Arn and Account".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arn_and_account_from_the_sts_answer() {
        let xml = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::111122223333:assumed-role/reader/signet</Arn>
    <UserId>AROAEXAMPLE:signet</UserId>
    <Account>111122223333</Account>
  </GetCallerIdentityResult>
</GetCallerIdentityResponse>"#;
        assert_eq!(
            xml_element(xml, "Arn"),
            Some("arn:aws:sts::111122223333:assumed-role/reader/signet")
        );
        assert_eq!(xml_element(xml, "Account"), Some("111122223333"));
        assert_eq!(xml_element(xml, "Missing"), None);
    }
}
