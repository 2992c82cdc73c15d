//! One fetch of a source's credentials through aws-config's providers.
//!
//! Providers are built afresh for every fetch. That keeps aws-config's own
//! state out of the picture: profile files are parsed again (so a rotated
//! credentials file is picked up), and the IMDS provider cannot hand back its
//! previous credentials with a stretched expiry after a failure, so the
//! snapshot's expiry is the one the source really issued.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
// aws-config's own builder still takes these (deprecated) aliases.
#[allow(deprecated)]
use aws_config::profile::profile_file::{ProfileFileKind, ProfileFiles};
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::web_identity_token::{StaticConfiguration, WebIdentityTokenCredentialsProvider};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};

use super::settings::{AssumeRoleSettings, SourceSettings};
use super::CredentialsHandle;
use crate::error_chain::error_chain;
use crate::sigv4::Credentials;

/// Session name used when none is configured.
const DEFAULT_SESSION_NAME: &str = "signet";

/// Credentials as one fetch returned them.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) credentials: Credentials,
    pub(crate) expires_at: Option<SystemTime>,
}

/// How a refresher obtains credentials.
#[derive(Clone, Debug)]
pub(crate) enum Resolver {
    /// A configured source (with its own optional `assume_role`).
    Source(SourceSettings),
    /// A per-route role assumed with the current credentials of another source.
    RouteRole {
        base: CredentialsHandle,
        role: AssumeRoleSettings,
    },
}

impl Resolver {
    /// Fetches credentials once. The error is a one-line reason without secrets.
    pub(crate) async fn fetch(&self) -> Result<Fetched, String> {
        let provider = match self {
            Resolver::Source(settings) => {
                let base = base_provider(settings)?;
                match settings.assume_role() {
                    Some(role) => SharedCredentialsProvider::new(assume_role(role, base).await),
                    None => base,
                }
            }
            Resolver::RouteRole { base, role } => {
                base.current().map_err(|e| e.to_string())?;
                let base = SharedCredentialsProvider::new(HandleProvider(base.clone()));
                SharedCredentialsProvider::new(assume_role(role, base).await)
            }
        };
        let creds = provider
            .provide_credentials()
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(Fetched {
            credentials: Credentials {
                access_key_id: creds.access_key_id().to_owned(),
                secret_access_key: creds.secret_access_key().to_owned(),
                session_token: creds.session_token().map(str::to_owned),
            },
            expires_at: creds.expiry(),
        })
    }

    /// Files whose change means the source may now yield different credentials.
    pub(crate) fn watched_files(&self) -> Vec<PathBuf> {
        let Resolver::Source(settings) = self else {
            return Vec::new();
        };
        let mut files = Vec::new();
        match settings {
            SourceSettings::Chain { .. } => {
                files.extend(shared_files(None, None));
                files.extend(env_path("AWS_WEB_IDENTITY_TOKEN_FILE"));
                files.extend(env_path("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
            }
            SourceSettings::Profile {
                credentials_file,
                config_file,
                ..
            } => files.extend(shared_files(credentials_file.clone(), config_file.clone())),
            SourceSettings::WebIdentity { token_file, .. } => {
                files.extend(
                    token_file
                        .clone()
                        .or_else(|| env_path("AWS_WEB_IDENTITY_TOKEN_FILE")),
                );
            }
            SourceSettings::Container { .. } => {
                files.extend(env_path("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
            }
            SourceSettings::Environment { .. }
            | SourceSettings::Imds { .. }
            | SourceSettings::Static { .. } => {}
        }
        files
    }
}

/// The region for STS calls: `AWS_REGION`, `AWS_DEFAULT_REGION`, then `us-east-1`.
pub(crate) fn default_region() -> String {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|key| std::env::var(key).ok())
        .find(|value| !value.is_empty())
        .unwrap_or_else(|| "us-east-1".to_owned())
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home_aws(file: &str) -> Option<PathBuf> {
    env_path("HOME").map(|home| home.join(".aws").join(file))
}

fn shared_files(credentials: Option<PathBuf>, config: Option<PathBuf>) -> Vec<PathBuf> {
    let credentials = credentials
        .or_else(|| env_path("AWS_SHARED_CREDENTIALS_FILE"))
        .or_else(|| home_aws("credentials"));
    let config = config
        .or_else(|| env_path("AWS_CONFIG_FILE"))
        .or_else(|| home_aws("config"));
    credentials.into_iter().chain(config).collect()
}

fn provider_config() -> ProviderConfig {
    ProviderConfig::without_region().with_region(Some(Region::new(default_region())))
}

/// Builds the provider for a source's own kind (without its `assume_role`).
#[allow(deprecated)]
fn base_provider(settings: &SourceSettings) -> Result<SharedCredentialsProvider, String> {
    let conf = provider_config();
    Ok(match settings {
        SourceSettings::Chain { profile, .. } => SharedCredentialsProvider::new(ChainProvider {
            conf,
            profile: profile.clone(),
        }),
        SourceSettings::Environment { .. } => {
            SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new())
        }
        SourceSettings::Profile {
            name,
            credentials_file,
            config_file,
            ..
        } => {
            let mut files = ProfileFiles::builder();
            files = match credentials_file {
                Some(path) => files.with_file(ProfileFileKind::Credentials, path),
                None => files.include_default_credentials_file(true),
            };
            files = match config_file {
                Some(path) => files.with_file(ProfileFileKind::Config, path),
                None => files.include_default_config_file(true),
            };
            let mut builder = ProfileFileCredentialsProvider::builder()
                .configure(&conf)
                .profile_files(files.build());
            if let Some(name) = name {
                builder = builder.profile_name(name);
            }
            SharedCredentialsProvider::new(builder.build())
        }
        SourceSettings::WebIdentity {
            token_file,
            role_arn,
            session_name,
            ..
        } => {
            let mut builder = WebIdentityTokenCredentialsProvider::builder().configure(&conf);
            if token_file.is_some() || role_arn.is_some() || session_name.is_some() {
                let web_identity_token_file = token_file
                    .clone()
                    .or_else(|| env_path("AWS_WEB_IDENTITY_TOKEN_FILE"))
                    .ok_or(
                        "no web identity token file: set token_file or AWS_WEB_IDENTITY_TOKEN_FILE",
                    )?;
                let role_arn = role_arn
                    .clone()
                    .or_else(|| std::env::var("AWS_ROLE_ARN").ok())
                    .ok_or(
                        "no role to assume with the web identity: set role_arn or AWS_ROLE_ARN",
                    )?;
                let session_name = session_name
                    .clone()
                    .or_else(|| std::env::var("AWS_ROLE_SESSION_NAME").ok())
                    .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned());
                builder = builder.static_configuration(StaticConfiguration {
                    web_identity_token_file,
                    role_arn,
                    session_name,
                });
            }
            SharedCredentialsProvider::new(builder.build())
        }
        SourceSettings::Container { .. } => SharedCredentialsProvider::new(
            EcsCredentialsProvider::builder().configure(&conf).build(),
        ),
        SourceSettings::Imds { endpoint, .. } => {
            // One attempt per fetch: the refresher owns retries and backoff, so a
            // failure is reported (and retried) promptly.
            let mut client = aws_config::imds::Client::builder()
                .configure(&conf)
                .max_attempts(1);
            if let Some(endpoint) = endpoint {
                client = client
                    .endpoint(endpoint)
                    .map_err(|e| format!("invalid IMDS endpoint {endpoint:?}: {e}"))?;
            }
            SharedCredentialsProvider::new(
                ImdsCredentialsProvider::builder()
                    .configure(&conf)
                    .imds_client(client.build())
                    .build(),
            )
        }
        SourceSettings::Static {
            access_key_id,
            secret_access_key,
            session_token,
            ..
        } => SharedCredentialsProvider::new(aws_credential_types::Credentials::new(
            access_key_id.clone(),
            secret_access_key.expose().to_owned(),
            session_token.as_ref().map(|t| t.expose().to_owned()),
            None,
            "signet-static",
        )),
    })
}

/// Wraps `base` in STS `AssumeRole`. The STS endpoint follows the standard
/// overrides (`AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, profile `endpoint_url`).
async fn assume_role(
    role: &AssumeRoleSettings,
    base: SharedCredentialsProvider,
) -> AssumeRoleProvider {
    let region = role.region.clone().unwrap_or_else(default_region);
    let sdk_config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region))
        .credentials_provider(base.clone())
        .load()
        .await;
    let mut builder = AssumeRoleProvider::builder(role.role_arn.clone())
        .session_name(
            role.session_name
                .clone()
                .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned()),
        )
        .configure(&sdk_config);
    if let Some(external_id) = &role.external_id {
        builder = builder.external_id(external_id.clone());
    }
    if let Some(secs) = role.duration_secs {
        builder = builder.session_length(Duration::from_secs(secs));
    }
    builder.build_from_provider(base).await
}

/// The SDK default chain, built when asked (its builder is async).
#[derive(Debug)]
struct ChainProvider {
    conf: ProviderConfig,
    profile: Option<String>,
}

impl ProvideCredentials for ChainProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            // An explicit region keeps the chain from asking IMDS for one.
            let mut builder = DefaultCredentialsChain::builder()
                .configure(self.conf.clone())
                .region(Region::new(default_region()));
            if let Some(profile) = &self.profile {
                builder = builder.profile_name(profile);
            }
            builder.build().await.provide_credentials().await
        })
    }
}

/// Serves another source's current snapshot to an `AssumeRole` call.
#[derive(Debug)]
struct HandleProvider(CredentialsHandle);

impl ProvideCredentials for HandleProvider {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let result = match self.0.current_with_expiry() {
            Ok((creds, expiry)) => Ok(aws_credential_types::Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.clone(),
                creds.session_token.clone(),
                expiry,
                "signet-source",
            )),
            Err(e) => Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded(e.to_string()),
            ),
        };
        future::ProvideCredentials::ready(result)
    }
}
