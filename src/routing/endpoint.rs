//! AWS endpoint knowledge: which hosts are AWS endpoints, and which signing
//! service and region a host implies.
//!
//! Everything here works from the *shape* of the host name (no frozen table of
//! regions, no network), so a region launched tomorrow routes without a
//! release:
//!
//! ```
//! use signet::routing::endpoint::{parse_host, is_region_name};
//! let ep = parse_host("sqs.ap-southeast-9.amazonaws.com").unwrap();
//! assert_eq!((ep.service.as_str(), ep.region.as_str()), ("sqs", "ap-southeast-9"));
//! let ep = parse_host("bedrock-runtime.us-west-2.amazonaws.com").unwrap();
//! assert_eq!(ep.service, "bedrock");
//! assert!(is_region_name("eu-central-2") && !is_region_name("us-est-1"));
//! ```
//!
//! A few hosts take only SigV4a, whose signature is valid in a set of regions
//! rather than one ([`Algorithm::V4a`]); for them the endpoint's `region` is
//! that region set:
//!
//! ```
//! use signet::routing::endpoint::parse_host;
//! use signet::sigv4::Algorithm;
//! let ep = parse_host("mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com").unwrap();
//! assert_eq!((ep.service.as_str(), ep.region.as_str(), ep.algorithm), ("s3", "*", Algorithm::V4a));
//! ```

use std::fmt;

use crate::sigv4::Algorithm;

/// An AWS partition: a group of regions with its own domain and home region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Partition {
    /// `aws`: the commercial regions (amazonaws.com, api.aws, on.aws).
    Aws,
    /// `aws-cn`: the China regions (amazonaws.com.cn).
    AwsCn,
    /// `aws-us-gov`: AWS GovCloud (US).
    AwsUsGov,
    /// `aws-iso` (c2s.ic.gov).
    AwsIso,
    /// `aws-iso-b` (sc2s.sgov.gov).
    AwsIsoB,
    /// `aws-iso-e` (cloud.adc-e.uk).
    AwsIsoE,
    /// `aws-iso-f` (csp.hci.ic.gov).
    AwsIsoF,
    /// `aws-eusc`: the AWS European Sovereign Cloud (amazonaws.eu).
    AwsEusc,
}

impl Partition {
    /// The partition id as it appears in ARNs (`aws`, `aws-cn`, `aws-us-gov`, ...).
    pub fn id(self) -> &'static str {
        match self {
            Partition::Aws => "aws",
            Partition::AwsCn => "aws-cn",
            Partition::AwsUsGov => "aws-us-gov",
            Partition::AwsIso => "aws-iso",
            Partition::AwsIsoB => "aws-iso-b",
            Partition::AwsIsoE => "aws-iso-e",
            Partition::AwsIsoF => "aws-iso-f",
            Partition::AwsEusc => "aws-eusc",
        }
    }

    /// The region global endpoints (IAM, Route 53, ...) of this partition sign with.
    pub fn home_region(self) -> &'static str {
        match self {
            Partition::Aws => "us-east-1",
            Partition::AwsCn => "cn-north-1",
            Partition::AwsUsGov => "us-gov-west-1",
            Partition::AwsIso => "us-iso-east-1",
            Partition::AwsIsoB => "us-isob-east-1",
            Partition::AwsIsoE => "eu-isoe-west-1",
            Partition::AwsIsoF => "us-isof-south-1",
            Partition::AwsEusc => "eusc-de-east-1",
        }
    }

    /// The partition a region name belongs to, judged by its prefix; `None`
    /// when the name does not have a region's shape.
    pub fn of_region(region: &str) -> Option<Partition> {
        let (prefix, _) = split_region(region)?;
        Some(match prefix {
            "cn" => Partition::AwsCn,
            "us-gov" => Partition::AwsUsGov,
            "us-iso" => Partition::AwsIso,
            "us-isob" => Partition::AwsIsoB,
            "eu-isoe" => Partition::AwsIsoE,
            "us-isof" => Partition::AwsIsoF,
            "eusc-de" => Partition::AwsEusc,
            _ => Partition::Aws,
        })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// Region prefixes (geography, or the partition's own prefix).
const REGION_PREFIXES: &[&str] = &[
    "us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx", "cn", "us-gov", "us-iso", "us-isob",
    "eu-isoe", "us-isof", "eusc-de",
];

/// Region directions.
const REGION_DIRECTIONS: &[&str] = &[
    "east",
    "west",
    "north",
    "south",
    "central",
    "northeast",
    "northwest",
    "southeast",
    "southwest",
];

/// Splits a region name into (prefix, direction) when it has a region's shape:
/// `<prefix>-<direction>-<number>`.
fn split_region(name: &str) -> Option<(&str, &str)> {
    let (rest, number) = name.rsplit_once('-')?;
    let number_ok = !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
        && !number.starts_with('0');
    if !number_ok {
        return None;
    }
    let (prefix, direction) = rest.rsplit_once('-')?;
    if REGION_PREFIXES.contains(&prefix) && REGION_DIRECTIONS.contains(&direction) {
        Some((prefix, direction))
    } else {
        None
    }
}

/// Whether `name` has the shape of an AWS region name: a known prefix
/// (`us`, `eu`, `ap`, ..., `cn`, `us-gov`, `us-iso`, `us-isob`, `eu-isoe`, `eusc-de`,
/// `us-isof`), a direction (`east`, `southeast`, ...) and a number.
///
/// `us-est-1` is refused; a future `ap-southeast-9` passes.
pub fn is_region_name(name: &str) -> bool {
    split_region(name).is_some()
}

/// The SigV4a region set that covers every region.
pub const ALL_REGIONS: &str = "*";

/// Checks a SigV4a region set: [`ALL_REGIONS`] (`*`) alone, or region names
/// (see [`is_region_name`]) of one partition separated by commas, with no
/// spaces and none twice. The error says what is wrong, quoting the set.
///
/// ```
/// use signet::routing::endpoint::check_region_set;
/// assert!(check_region_set("*").is_ok());
/// assert!(check_region_set("us-east-1,us-west-2").is_ok());
/// assert!(check_region_set("us-east-1, us-west-2").is_err());
/// assert!(check_region_set("*,us-east-1").is_err());
/// assert!(check_region_set("us-east-1,cn-north-1").is_err());
/// ```
pub fn check_region_set(set: &str) -> Result<(), String> {
    let refuse = |why: String| Err(format!("'{set}' is not a region set: {why}"));
    if set.is_empty() {
        return refuse(
            "give '*' (every region) or region names separated by commas, such as us-east-1,us-west-2"
                .into(),
        );
    }
    if set.chars().any(char::is_whitespace) {
        return refuse(
            "it has spaces; separate region names with commas only, such as us-east-1,us-west-2"
                .into(),
        );
    }
    let elements: Vec<&str> = set.split(',').collect();
    for (i, element) in elements.iter().enumerate() {
        if element.is_empty() {
            return refuse("it has an empty element (a comma too many)".into());
        }
        if *element == ALL_REGIONS {
            if elements.len() > 1 {
                return refuse("'*' (every region) must stand alone".into());
            }
            continue;
        }
        if !is_region_name(element) {
            return refuse(format!("'{element}' is not a region name or '*'"));
        }
        if elements[..i].contains(element) {
            return refuse(format!("it names {element} twice"));
        }
        // Credentials belong to one partition, so a signature can only be valid in one.
        if let (Some(first), Some(this)) = (
            Partition::of_region(elements[0]),
            Partition::of_region(element),
        ) {
            if first != this {
                return refuse(format!(
                    "{element} is in the {this} partition and {} in {first}; name regions of one partition",
                    elements[0]
                ));
            }
        }
    }
    Ok(())
}

/// The AWS endpoint domains signet will sign for without a configured route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    AmazonAws,
    AmazonAwsCn,
    ApiAws,
    OnAws,
    C2s,
    Sc2s,
    AdcE,
    Hci,
    AmazonAwsEu,
}

const DOMAINS: &[(&str, Domain)] = &[
    ("amazonaws.com.cn", Domain::AmazonAwsCn),
    ("api.amazonwebservices.com.cn", Domain::AmazonAwsCn),
    ("amazonaws.com", Domain::AmazonAws),
    ("api.aws", Domain::ApiAws),
    ("on.aws", Domain::OnAws),
    ("c2s.ic.gov", Domain::C2s),
    ("api.aws.ic.gov", Domain::C2s),
    ("sc2s.sgov.gov", Domain::Sc2s),
    ("api.aws.scloud", Domain::Sc2s),
    ("cloud.adc-e.uk", Domain::AdcE),
    ("api.cloud-aws.adc-e.uk", Domain::AdcE),
    ("csp.hci.ic.gov", Domain::Hci),
    ("api.aws.hci.ic.gov", Domain::Hci),
    ("amazonaws.eu", Domain::AmazonAwsEu),
    ("api.amazonwebservices.eu", Domain::AmazonAwsEu),
];

impl Domain {
    /// Whether a region of `partition` may appear under this domain.
    fn admits(self, partition: Partition) -> bool {
        match self {
            Domain::AmazonAws | Domain::ApiAws | Domain::OnAws => {
                matches!(partition, Partition::Aws | Partition::AwsUsGov)
            }
            Domain::AmazonAwsCn => partition == Partition::AwsCn,
            Domain::C2s => partition == Partition::AwsIso,
            Domain::Sc2s => partition == Partition::AwsIsoB,
            Domain::AdcE => partition == Partition::AwsIsoE,
            Domain::Hci => partition == Partition::AwsIsoF,
            Domain::AmazonAwsEu => partition == Partition::AwsEusc,
        }
    }

    /// The partition of a global endpoint under this domain.
    fn partition(self) -> Partition {
        match self {
            Domain::AmazonAws | Domain::ApiAws | Domain::OnAws => Partition::Aws,
            Domain::AmazonAwsCn => Partition::AwsCn,
            Domain::C2s => Partition::AwsIso,
            Domain::Sc2s => Partition::AwsIsoB,
            Domain::AdcE => Partition::AwsIsoE,
            Domain::Hci => Partition::AwsIsoF,
            Domain::AmazonAwsEu => Partition::AwsEusc,
        }
    }
}

/// Strips an optional `:port` and trailing dot and lowercases; `None` for IP
/// literals in brackets and empty hosts.
fn normalize_host(host: &str) -> Option<String> {
    let host = host.trim();
    if host.starts_with('[') {
        return None;
    }
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Splits a normalized host into (labels before the domain, domain).
fn split_domain(host: &str) -> Option<(&str, Domain)> {
    DOMAINS.iter().find_map(|(suffix, domain)| {
        let prefix = host.strip_suffix(suffix)?;
        let prefix = prefix.strip_suffix('.')?;
        Some((prefix, *domain))
    })
}

/// Whether `host` (optionally with `:port`) lies under an AWS endpoint domain:
/// amazonaws.com, amazonaws.com.cn, api.aws, on.aws, amazonaws.eu, the ISO
/// partitions' c2s.ic.gov, sc2s.sgov.gov, cloud.adc-e.uk and csp.hci.ic.gov, or
/// one of the dual-stack domains of those partitions (api.amazonwebservices.com.cn,
/// api.amazonwebservices.eu, api.aws.ic.gov, api.aws.scloud,
/// api.cloud-aws.adc-e.uk, api.aws.hci.ic.gov).
pub fn is_aws_domain(host: &str) -> bool {
    normalize_host(host).is_some_and(|h| split_domain(&h).is_some())
}

/// Whether `host` (with or without port) is an S3 Express One Zone zonal
/// endpoint: a directory bucket's data-plane host, such as
/// `bucket--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com`
/// (the bucket label ends in `--x-s3`, the next one names the zone). The
/// regional control endpoint `s3express-control.<region>...` is not one.
///
/// Requests to zonal endpoints authenticate with sessions from CreateSession
/// rather than with IAM credentials directly.
///
/// ```
/// use signet::routing::endpoint::is_s3express_zonal_host;
/// assert!(is_s3express_zonal_host("logs--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com"));
/// assert!(!is_s3express_zonal_host("s3express-control.us-west-2.amazonaws.com"));
/// assert!(!is_s3express_zonal_host("logs.s3.us-west-2.amazonaws.com"));
/// ```
pub fn is_s3express_zonal_host(host: &str) -> bool {
    let Some(host) = normalize_host(host) else {
        return false;
    };
    let mut labels = host.split('.');
    let (Some(bucket), Some(zone), Some(_)) = (labels.next(), labels.next(), labels.next()) else {
        return false;
    };
    bucket.len() > "--x-s3".len()
        && bucket.ends_with("--x-s3")
        && zone.len() > "s3express-".len()
        && zone.starts_with("s3express-")
        && !zone.starts_with("s3express-control")
}

/// What an AWS endpoint host implies for signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsEndpoint {
    /// The signing name (`sqs`, `s3`, `es`, `ses` for `email.*`, ...).
    pub service: String,
    /// The signing region (the partition's home region for global endpoints);
    /// for [`Algorithm::V4a`] the region set, [`ALL_REGIONS`] (`*`).
    pub region: String,
    /// The partition the endpoint belongs to.
    pub partition: Partition,
    /// The signature algorithm the endpoint takes: [`Algorithm::V4a`] for S3
    /// Multi-Region Access Points and EventBridge global endpoints,
    /// [`Algorithm::V4`] for every other host.
    pub algorithm: Algorithm,
}

/// Why a host gives no AWS endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The host is not under an AWS endpoint domain.
    #[error("{0} is not an AWS endpoint domain")]
    NotAws(String),
    /// The host is under an AWS domain but its shape names no API endpoint.
    #[error("cannot tell the signing service and region from host {host}: {reason}")]
    Unrecognized {
        /// The host as given.
        host: String,
        /// Why.
        reason: &'static str,
    },
}

/// Endpoint prefixes whose signing name differs (single last label, `-fips` removed).
const SIGNING_NAMES: &[(&str, &str)] = &[
    ("email", "ses"),
    ("runtime-v2-lex", "lex"),
    ("models-v2-lex", "lex"),
    ("bedrock-runtime", "bedrock"),
    ("bedrock-agent-runtime", "bedrock"),
    ("bedrock-agent", "bedrock"),
    ("aps-workspaces", "aps"),
    ("iot-data", "iotdata"),
    ("lambda-url", "lambda"),
    ("appsync-api", "appsync"),
    ("appsync-realtime-api", "appsync"),
    ("sync-states", "states"),
    ("s3-accesspoint", "s3"),
    ("s3-control", "s3"),
    ("aos", "es"),
    ("data-servicediscovery", "servicediscovery"),
    ("transcribestreaming", "transcribe"),
    ("pinpoint", "mobiletargeting"),
    ("git-codecommit", "codecommit"),
    ("s3express-control", "s3express"),
    ("elasticfilesystem", "elasticfilesystem"),
    ("efs", "elasticfilesystem"),
    ("ddb", "dynamodb"),
    ("streams-dynamodb", "dynamodb"),
    ("data-kinesis", "kinesis"),
    ("control-kinesis", "kinesis"),
    ("appconfigdata", "appconfig"),
    ("stream-logs", "logs"),
    ("kafka-api", "kafka"),
    ("timestream-query", "timestream"),
    ("timestream-ingest", "timestream"),
    ("bedrock-agentcore-control", "bedrock-agentcore"),
    ("bedrock-data-automation", "bedrock"),
    ("bedrock-data-automation-runtime", "bedrock"),
    ("oidc", "sso-oauth"),
    ("personalize-runtime", "personalize"),
    ("personalize-events", "personalize"),
    ("appstream2", "appstream"),
    ("cloudhsmv2", "cloudhsm"),
    ("memory-db", "memorydb"),
    ("ivsrealtime", "ivs"),
    ("mail-manager", "ses"),
    ("identity-chime", "chime"),
    ("messaging-chime", "chime"),
    ("meetings-chime", "chime"),
    ("media-pipelines-chime", "chime"),
    ("voice-chime", "chime"),
    ("forecastquery", "forecast"),
    ("servicecatalog-appregistry", "servicecatalog"),
    ("data-signer", "signer"),
    ("migrationhub-config", "mgh"),
    ("contact-lens", "connect"),
    ("query-lakeformation", "lakeformation"),
    ("workflows-omics", "omics"),
    ("analytics-omics", "omics"),
    ("control-storage-omics", "omics"),
    ("cassandra-streams", "cassandra"),
    ("agreement-marketplace", "aws-marketplace"),
    ("discovery-marketplace", "aws-marketplace"),
    ("reporting-marketplace", "aws-marketplace"),
    ("catalog-marketplace", "aws-marketplace"),
    ("entitlement-marketplace", "aws-marketplace"),
    ("metering-marketplace", "aws-marketplace"),
    ("arc-region-switch-control-plane", "arc-region-switch"),
    (
        "arc-recovery-control-config",
        "route53-recovery-control-config",
    ),
];

/// Multi-label endpoint prefixes whose signing name differs from the last label.
const MULTI_LABEL_NAMES: &[(&[&str], &str)] = &[
    (&["data", "jobs", "iot"], "iot-jobs-data"),
    (&["data-jobs", "iot"], "iot-jobs-data"),
    (&["api", "tunneling", "iot"], "iotsecuredtunneling"),
    (&["credentials", "iot"], "iot"),
    (&["data", "iotevents"], "ioteventsdata"),
    (&["catalog", "marketplace"], "aws-marketplace"),
    (&["entitlement", "marketplace"], "aws-marketplace"),
    (&["metering", "marketplace"], "aws-marketplace"),
    (&["sms-voice", "pinpoint"], "sms-voice"),
    (&["portal", "sso"], "awsssoportal"),
    (&["places", "geo"], "geo-places"),
    (&["routes", "geo"], "geo-routes"),
    (&["maps", "geo"], "geo-maps"),
    (&["participant", "connect"], "execute-api"),
];

/// Global endpoints (no region in the host) and the region they sign with.
/// `None` means the partition's home region.
const GLOBAL_ENDPOINTS: &[(Partition, &str, Option<&str>)] = &[
    (Partition::Aws, "iam", None),
    (Partition::Aws, "sts", None),
    (Partition::Aws, "route53", None),
    (Partition::Aws, "cloudfront", None),
    (Partition::Aws, "organizations", None),
    (Partition::Aws, "shield", None),
    (Partition::Aws, "waf", None),
    (Partition::Aws, "budgets", None),
    (Partition::Aws, "sdb", None),
    (Partition::Aws, "importexport", None),
    (Partition::Aws, "globalaccelerator", Some("us-west-2")),
    (Partition::Aws, "networkmanager", Some("us-west-2")),
    (Partition::Aws, "savingsplans", None),
    (Partition::AwsCn, "iam", None),
    (Partition::AwsCn, "budgets", Some("cn-northwest-1")),
    (Partition::AwsCn, "route53", Some("cn-northwest-1")),
    (Partition::AwsCn, "organizations", Some("cn-northwest-1")),
    (Partition::AwsUsGov, "iam", None),
    (Partition::AwsUsGov, "route53", None),
    (Partition::AwsUsGov, "organizations", None),
    (Partition::AwsIso, "iam", None),
    (Partition::AwsIso, "route53", None),
    (Partition::AwsIsoB, "iam", None),
    (Partition::AwsIsoB, "route53", None),
    (Partition::AwsIsoE, "iam", None),
    (Partition::AwsIsoE, "route53", None),
    (Partition::AwsIsoF, "iam", None),
    (Partition::AwsIsoF, "route53", None),
];

/// Labels that qualify an endpoint without naming its service.
const QUALIFIERS: &[&str] = &["dualstack", "fips"];

/// Derives the signing service and region from an AWS endpoint host (an
/// optional `:port` is ignored). Deterministic and offline.
///
/// Shapes understood: `<svc>.<region>.amazonaws.com` and its `.amazonaws.com.cn`,
/// `.api.aws`, iso-partition and European Sovereign Cloud (`amazonaws.eu`) forms; virtual-hosted and path-style S3
/// including `dualstack`, FIPS (`s3-fips`, `sqs-fips`), the legacy
/// `s3-<region>` and `s3-external-1` forms and the global `s3.amazonaws.com`;
/// OpenSearch domains (`search-d.<region>.es.amazonaws.com`,
/// `*.aos.<region>.on.aws`) and serverless collections (`*.<region>.aoss...`);
/// `*.execute-api.<region>...`; Lambda function URLs
/// (`*.lambda-url.<region>.on.aws`); interface VPC endpoints (`*.vpce...`);
/// and global endpoints (IAM, STS, Route 53, CloudFront, Organizations, Shield,
/// WAF classic), which sign with their partition's home region.
///
/// All of these sign with SigV4 ([`Algorithm::V4`]). Two shapes, only under
/// amazonaws.com, take SigV4a ([`Algorithm::V4a`]) and sign for the region set
/// `*` ([`ALL_REGIONS`], in [`AwsEndpoint::region`]): S3 Multi-Region Access
/// Points (`<alias>.mrap.accesspoint.s3-global.amazonaws.com`, service `s3`)
/// and EventBridge global endpoints (`<endpoint-id>.endpoint.events.amazonaws.com`
/// and the dual-stack `<endpoint-id>.endpoint.events.api.aws`, service `events`).
///
/// Hosts of customer resources under AWS domains (EC2 instances, load
/// balancers, RDS, ElastiCache) give [`EndpointError::Unrecognized`]: they
/// are not AWS APIs and must not receive signed requests.
pub fn parse_host(host: &str) -> Result<AwsEndpoint, EndpointError> {
    let unrecognized = |reason| EndpointError::Unrecognized {
        host: host.to_string(),
        reason,
    };
    let normalized = normalize_host(host).ok_or_else(|| EndpointError::NotAws(host.to_string()))?;
    let (prefix, domain) =
        split_domain(&normalized).ok_or_else(|| EndpointError::NotAws(host.to_string()))?;
    let labels: Vec<&str> = prefix.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Err(unrecognized("empty label"));
    }

    // Before the region search: an endpoint id may hold a region-shaped label.
    if let Some(ep) = sigv4a_endpoint(domain, &labels) {
        return Ok(ep);
    }

    if let Some(at) = labels.iter().rposition(|l| is_region_name(l)) {
        let region = labels[at];
        let partition = Partition::of_region(region).ok_or_else(|| unrecognized("bad region"))?;
        if !domain.admits(partition) {
            return Err(unrecognized(
                "the region does not belong to the host's domain",
            ));
        }
        let before = &labels[..at];
        let after = &labels[at + 1..];
        let service = match after {
            [] => service_before_region(before),
            ["vpce"] => service_before_region(before),
            ["es"] => Some("es".to_string()),
            ["aoss"] => Some("aoss".to_string()),
            ["neptune"] => Some("neptune-db".to_string()),
            ["neptune-graph"] => Some("neptune-graph".to_string()),
            ["osis"] => Some("osis".to_string()),
            ["cloudsearch"] => Some("cloudsearch".to_string()),
            _ => None,
        }
        .ok_or_else(|| unrecognized("not an AWS API endpoint shape"))?;
        return Ok(AwsEndpoint {
            service,
            region: region.to_string(),
            partition,
            algorithm: Algorithm::V4,
        });
    }

    // Legacy S3 forms with the region inside the label: s3-us-west-2, s3-fips-us-gov-west-1.
    if matches!(domain, Domain::AmazonAws | Domain::AmazonAwsCn) {
        if let Some(label) = labels.last() {
            if let Some(rest) = label.strip_prefix("s3-") {
                let rest = rest.strip_prefix("fips-").unwrap_or(rest);
                let region = if rest == "external-1" {
                    Some("us-east-1")
                } else if is_region_name(rest) {
                    Some(rest)
                } else {
                    None
                };
                if let Some(region) = region {
                    let partition =
                        Partition::of_region(region).ok_or_else(|| unrecognized("bad region"))?;
                    if !domain.admits(partition) {
                        return Err(unrecognized(
                            "the region does not belong to the host's domain",
                        ));
                    }
                    return Ok(AwsEndpoint {
                        service: "s3".into(),
                        region: region.into(),
                        partition,
                        algorithm: Algorithm::V4,
                    });
                }
            }
        }
    }

    // Global endpoints: iam.amazonaws.com, iam.us-gov.amazonaws.com, s3.amazonaws.com,
    // and the dual-stack iam.global.api.aws, iam.us-gov.api.aws.
    let (labels, partition) = match (domain, labels.as_slice()) {
        (Domain::AmazonAws | Domain::ApiAws, [rest @ .., "us-gov"]) if !rest.is_empty() => {
            (rest, Partition::AwsUsGov)
        }
        (_, [rest @ .., "global"]) if !rest.is_empty() => (rest, domain.partition()),
        (_, all) => (all, domain.partition()),
    };
    let last = labels
        .last()
        .map(|l| l.strip_suffix("-fips").unwrap_or(l))
        .ok_or_else(|| unrecognized("no service label"))?;
    if labels.len() == 1 {
        if let Some((_, _, region)) = GLOBAL_ENDPOINTS
            .iter()
            .find(|(p, name, _)| *p == partition && *name == last)
        {
            return Ok(AwsEndpoint {
                service: last.to_string(),
                region: region.unwrap_or(partition.home_region()).to_string(),
                partition,
                algorithm: Algorithm::V4,
            });
        }
    }
    if partition == Partition::Aws && domain == Domain::AmazonAws && last == "s3" {
        return Ok(AwsEndpoint {
            service: "s3".into(),
            region: "us-east-1".into(),
            partition,
            algorithm: Algorithm::V4,
        });
    }
    Err(unrecognized(
        "no region in the host and not a known global endpoint",
    ))
}

/// The hosts that take only SigV4a, all in the `aws` partition: S3
/// Multi-Region Access Points (`<alias>.mrap.accesspoint.s3-global.amazonaws.com`,
/// the alias one label) and EventBridge global endpoints
/// (`<endpoint-id>.endpoint.events.amazonaws.com`, or `.api.aws` for dual-stack;
/// the id one or more labels, such as `abcde.veo`). Both sign for every region
/// (`*`).
fn sigv4a_endpoint(domain: Domain, labels: &[&str]) -> Option<AwsEndpoint> {
    let service = match (domain, labels) {
        (Domain::AmazonAws, [alias, "mrap", "accesspoint", "s3-global"])
            if is_host_label(alias) =>
        {
            "s3"
        }
        (Domain::AmazonAws | Domain::ApiAws, [id @ .., "endpoint", "events"])
            if !id.is_empty() && id.iter().all(|l| is_host_label(l)) =>
        {
            "events"
        }
        _ => return None,
    };
    Some(AwsEndpoint {
        service: service.into(),
        region: ALL_REGIONS.into(),
        partition: Partition::Aws,
        algorithm: Algorithm::V4a,
    })
}

/// Whether `label` is one DNS label: 1 to 63 letters, digits and hyphens, not
/// starting or ending with a hyphen.
fn is_host_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// The signing name implied by the labels before the region
/// (`bucket.s3`, `runtime.sagemaker`, `abc.execute-api`, `s3.dualstack`).
fn service_before_region(before: &[&str]) -> Option<String> {
    let mut end = before.len();
    while end > 0 && QUALIFIERS.contains(&before[end - 1]) {
        end -= 1;
    }
    let before = &before[..end];
    let last = *before.last()?;
    let last = last.strip_suffix("-fips").unwrap_or(last);
    if last.is_empty() {
        return None;
    }
    // Compare multi-label forms on the labels with the last one's -fips removed.
    let matches_tail = |pattern: &[&str]| {
        pattern.len() <= before.len()
            && pattern.last() == Some(&last)
            && before[before.len() - pattern.len()..before.len() - 1]
                == pattern[..pattern.len() - 1]
    };
    if let Some((_, name)) = MULTI_LABEL_NAMES.iter().find(|(p, _)| matches_tail(p)) {
        return Some((*name).to_string());
    }
    // <anything>.iot: the account's data-plane endpoint (data-ats.iot, abc123-ats.iot).
    if last == "iot" && before.len() >= 2 {
        return Some("iotdata".into());
    }
    // S3 Express One Zone zonal endpoints: bucket--usw2-az1--x-s3.s3express-usw2-az1.
    if last.starts_with("s3express-") && last != "s3express-control" {
        return Some("s3express".into());
    }
    if let Some((_, name)) = SIGNING_NAMES.iter().find(|(prefix, _)| *prefix == last) {
        return Some((*name).to_string());
    }
    Some(last.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected outcome: Ok((service, region)) or Err("not-aws" / "unrecognized").
    /// A region of `*` (a region set) means the host takes SigV4a; any other, SigV4.
    type Expected = Result<(&'static str, &'static str), &'static str>;

    const HOSTS: &[(&str, Expected)] = &[
        // Plain regional endpoints, commercial partition.
        ("sqs.eu-west-1.amazonaws.com", Ok(("sqs", "eu-west-1"))),
        ("sqs.us-east-1.amazonaws.com:443", Ok(("sqs", "us-east-1"))),
        ("SQS.US-EAST-1.AMAZONAWS.COM", Ok(("sqs", "us-east-1"))),
        ("sqs.us-east-1.amazonaws.com.", Ok(("sqs", "us-east-1"))),
        (
            "dynamodb.ap-northeast-1.amazonaws.com",
            Ok(("dynamodb", "ap-northeast-1")),
        ),
        ("sts.us-west-2.amazonaws.com", Ok(("sts", "us-west-2"))),
        (
            "kms.ca-central-1.amazonaws.com",
            Ok(("kms", "ca-central-1")),
        ),
        ("logs.me-south-1.amazonaws.com", Ok(("logs", "me-south-1"))),
        (
            "lambda.af-south-1.amazonaws.com",
            Ok(("lambda", "af-south-1")),
        ),
        (
            "secretsmanager.il-central-1.amazonaws.com",
            Ok(("secretsmanager", "il-central-1")),
        ),
        (
            "ssm.mx-central-1.amazonaws.com",
            Ok(("ssm", "mx-central-1")),
        ),
        (
            "states.sa-east-1.amazonaws.com",
            Ok(("states", "sa-east-1")),
        ),
        (
            "monitoring.eu-central-2.amazonaws.com",
            Ok(("monitoring", "eu-central-2")),
        ),
        (
            "ec2.ap-southeast-5.amazonaws.com",
            Ok(("ec2", "ap-southeast-5")),
        ),
        (
            "elasticmapreduce.eu-north-1.amazonaws.com",
            Ok(("elasticmapreduce", "eu-north-1")),
        ),
        ("aoss.us-east-1.amazonaws.com", Ok(("aoss", "us-east-1"))),
        ("es.us-east-1.amazonaws.com", Ok(("es", "us-east-1"))),
        // Regions that do not exist yet still route.
        (
            "sqs.ap-southeast-9.amazonaws.com",
            Ok(("sqs", "ap-southeast-9")),
        ),
        (
            "dynamodb.eu-southwest-3.amazonaws.com",
            Ok(("dynamodb", "eu-southwest-3")),
        ),
        ("s3.af-north-1.amazonaws.com", Ok(("s3", "af-north-1"))),
        (
            "sqs.us-gov-central-1.amazonaws.com",
            Ok(("sqs", "us-gov-central-1")),
        ),
        // Signing names that differ from the endpoint prefix.
        ("email.us-east-1.amazonaws.com", Ok(("ses", "us-east-1"))),
        (
            "runtime.sagemaker.us-west-2.amazonaws.com",
            Ok(("sagemaker", "us-west-2")),
        ),
        (
            "api.sagemaker.eu-west-1.amazonaws.com",
            Ok(("sagemaker", "eu-west-1")),
        ),
        (
            "a2i-runtime.sagemaker.us-east-1.amazonaws.com",
            Ok(("sagemaker", "us-east-1")),
        ),
        (
            "runtime-v2-lex.us-east-1.amazonaws.com",
            Ok(("lex", "us-east-1")),
        ),
        (
            "runtime.lex.us-east-1.amazonaws.com",
            Ok(("lex", "us-east-1")),
        ),
        (
            "models-v2-lex.eu-west-2.amazonaws.com",
            Ok(("lex", "eu-west-2")),
        ),
        (
            "bedrock-runtime.us-west-2.amazonaws.com",
            Ok(("bedrock", "us-west-2")),
        ),
        (
            "bedrock-agent-runtime.us-east-1.amazonaws.com",
            Ok(("bedrock", "us-east-1")),
        ),
        (
            "bedrock-agent.us-east-1.amazonaws.com",
            Ok(("bedrock", "us-east-1")),
        ),
        (
            "bedrock-runtime-fips.us-east-1.amazonaws.com",
            Ok(("bedrock", "us-east-1")),
        ),
        (
            "data.iot.us-east-1.amazonaws.com",
            Ok(("iotdata", "us-east-1")),
        ),
        (
            "data-ats.iot.eu-west-1.amazonaws.com",
            Ok(("iotdata", "eu-west-1")),
        ),
        (
            "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",
            Ok(("iotdata", "us-east-1")),
        ),
        ("iot.us-east-1.amazonaws.com", Ok(("iot", "us-east-1"))),
        (
            "data.jobs.iot.us-east-1.amazonaws.com",
            Ok(("iot-jobs-data", "us-east-1")),
        ),
        (
            "data-jobs.iot.us-east-1.amazonaws.com",
            Ok(("iot-jobs-data", "us-east-1")),
        ),
        (
            "api.tunneling.iot.us-east-1.amazonaws.com",
            Ok(("iotsecuredtunneling", "us-east-1")),
        ),
        (
            "data.iotevents.us-east-1.amazonaws.com",
            Ok(("ioteventsdata", "us-east-1")),
        ),
        (
            "aps-workspaces.us-east-1.amazonaws.com",
            Ok(("aps", "us-east-1")),
        ),
        ("aps.us-east-1.amazonaws.com", Ok(("aps", "us-east-1"))),
        (
            "streams.dynamodb.us-east-1.amazonaws.com",
            Ok(("dynamodb", "us-east-1")),
        ),
        ("api.ecr.us-east-1.amazonaws.com", Ok(("ecr", "us-east-1"))),
        (
            "api.pricing.us-east-1.amazonaws.com",
            Ok(("pricing", "us-east-1")),
        ),
        (
            "sync-states.us-east-1.amazonaws.com",
            Ok(("states", "us-east-1")),
        ),
        (
            "metering.marketplace.us-east-1.amazonaws.com",
            Ok(("aws-marketplace", "us-east-1")),
        ),
        (
            "abcdefghij.appsync-api.eu-west-1.amazonaws.com",
            Ok(("appsync", "eu-west-1")),
        ),
        (
            "pinpoint.us-east-1.amazonaws.com",
            Ok(("mobiletargeting", "us-east-1")),
        ),
        (
            "sms-voice.pinpoint.us-east-1.amazonaws.com",
            Ok(("sms-voice", "us-east-1")),
        ),
        (
            "portal.sso.eu-west-1.amazonaws.com",
            Ok(("awsssoportal", "eu-west-1")),
        ),
        (
            "git-codecommit.us-east-2.amazonaws.com",
            Ok(("codecommit", "us-east-2")),
        ),
        (
            "b--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com",
            Ok(("s3express", "us-west-2")),
        ),
        (
            "s3express-control.us-west-2.amazonaws.com",
            Ok(("s3express", "us-west-2")),
        ),
        (
            "search-d-abc.us-east-1.cloudsearch.amazonaws.com",
            Ok(("cloudsearch", "us-east-1")),
        ),
        (
            "ingest-cell2.timestream.us-east-1.amazonaws.com",
            Ok(("timestream", "us-east-1")),
        ),
        (
            "mycluster.gr7.us-west-2.eks.amazonaws.com",
            Err("unrecognized"),
        ),
        // S3 shapes.
        ("s3.us-east-2.amazonaws.com", Ok(("s3", "us-east-2"))),
        ("bucket.s3.us-east-2.amazonaws.com", Ok(("s3", "us-east-2"))),
        (
            "my.dotted.bucket.s3.eu-west-3.amazonaws.com",
            Ok(("s3", "eu-west-3")),
        ),
        (
            "us-west-1.s3.us-east-2.amazonaws.com",
            Ok(("s3", "us-east-2")),
        ),
        (
            "s3.dualstack.eu-west-1.amazonaws.com",
            Ok(("s3", "eu-west-1")),
        ),
        (
            "bucket.s3.dualstack.ap-south-1.amazonaws.com",
            Ok(("s3", "ap-south-1")),
        ),
        ("s3-fips.us-east-1.amazonaws.com", Ok(("s3", "us-east-1"))),
        (
            "s3-fips.dualstack.us-east-2.amazonaws.com",
            Ok(("s3", "us-east-2")),
        ),
        (
            "bucket.s3-fips.dualstack.us-gov-west-1.amazonaws.com",
            Ok(("s3", "us-gov-west-1")),
        ),
        ("s3.amazonaws.com", Ok(("s3", "us-east-1"))),
        ("bucket.s3.amazonaws.com", Ok(("s3", "us-east-1"))),
        ("s3-us-west-2.amazonaws.com", Ok(("s3", "us-west-2"))),
        ("bucket.s3-eu-west-1.amazonaws.com", Ok(("s3", "eu-west-1"))),
        (
            "s3-fips-us-gov-west-1.amazonaws.com",
            Ok(("s3", "us-gov-west-1")),
        ),
        ("s3-external-1.amazonaws.com", Ok(("s3", "us-east-1"))),
        (
            "ap-111122223333.s3-accesspoint.us-west-2.amazonaws.com",
            Ok(("s3", "us-west-2")),
        ),
        (
            "111122223333.s3-control.us-west-2.amazonaws.com",
            Ok(("s3", "us-west-2")),
        ),
        (
            "bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",
            Ok(("s3", "us-east-1")),
        ),
        ("s3.cn-north-1.amazonaws.com.cn", Ok(("s3", "cn-north-1"))),
        // FIPS.
        ("sqs-fips.us-east-1.amazonaws.com", Ok(("sqs", "us-east-1"))),
        ("kms-fips.us-west-2.amazonaws.com", Ok(("kms", "us-west-2"))),
        (
            "dynamodb-fips.us-gov-west-1.amazonaws.com",
            Ok(("dynamodb", "us-gov-west-1")),
        ),
        (
            "fips.dynamodb.us-east-1.amazonaws.com",
            Ok(("dynamodb", "us-east-1")),
        ),
        // OpenSearch.
        (
            "search-logs-abc123.us-west-2.es.amazonaws.com",
            Ok(("es", "us-west-2")),
        ),
        (
            "vpc-logs-abc123.eu-west-1.es.amazonaws.com",
            Ok(("es", "eu-west-1")),
        ),
        (
            "search-d.cn-northwest-1.es.amazonaws.com.cn",
            Ok(("es", "cn-northwest-1")),
        ),
        (
            "search-logs-abc.aos.us-east-1.on.aws",
            Ok(("es", "us-east-1")),
        ),
        (
            "abc123xyz.us-east-1.aoss.amazonaws.com",
            Ok(("aoss", "us-east-1")),
        ),
        // API Gateway, Lambda URLs, Neptune, interface endpoints.
        (
            "a1b2c3.execute-api.eu-central-1.amazonaws.com",
            Ok(("execute-api", "eu-central-1")),
        ),
        (
            "vpce-0abc-123.execute-api.us-east-1.vpce.amazonaws.com",
            Ok(("execute-api", "us-east-1")),
        ),
        (
            "vpce-0abc-123-xyz.sqs.us-east-1.vpce.amazonaws.com",
            Ok(("sqs", "us-east-1")),
        ),
        (
            "abcdefghijklmnop.lambda-url.us-east-2.on.aws",
            Ok(("lambda", "us-east-2")),
        ),
        (
            "abcdefghijklmnop.lambda-url.ap-southeast-7.on.aws",
            Ok(("lambda", "ap-southeast-7")),
        ),
        (
            "db.cluster-abc.us-east-1.neptune.amazonaws.com",
            Ok(("neptune-db", "us-east-1")),
        ),
        // Dual-stack api.aws.
        ("sqs.us-east-1.api.aws", Ok(("sqs", "us-east-1"))),
        (
            "bedrock-runtime.eu-west-1.api.aws",
            Ok(("bedrock", "eu-west-1")),
        ),
        ("sqs.us-gov-west-1.api.aws", Ok(("sqs", "us-gov-west-1"))),
        // China.
        ("sqs.cn-north-1.amazonaws.com.cn", Ok(("sqs", "cn-north-1"))),
        (
            "dynamodb.cn-northwest-1.amazonaws.com.cn",
            Ok(("dynamodb", "cn-northwest-1")),
        ),
        (
            "sqs.cn-north-1.api.amazonwebservices.com.cn",
            Ok(("sqs", "cn-north-1")),
        ),
        ("iam.cn-north-1.amazonaws.com.cn", Ok(("iam", "cn-north-1"))),
        ("iam.amazonaws.com.cn", Ok(("iam", "cn-north-1"))),
        (
            "route53.amazonaws.com.cn",
            Ok(("route53", "cn-northwest-1")),
        ),
        // GovCloud.
        (
            "sqs.us-gov-west-1.amazonaws.com",
            Ok(("sqs", "us-gov-west-1")),
        ),
        (
            "sts.us-gov-east-1.amazonaws.com",
            Ok(("sts", "us-gov-east-1")),
        ),
        ("iam.us-gov.amazonaws.com", Ok(("iam", "us-gov-west-1"))),
        (
            "route53.us-gov.amazonaws.com",
            Ok(("route53", "us-gov-west-1")),
        ),
        // ISO partitions.
        ("sqs.us-iso-east-1.c2s.ic.gov", Ok(("sqs", "us-iso-east-1"))),
        ("s3.us-iso-west-1.c2s.ic.gov", Ok(("s3", "us-iso-west-1"))),
        ("iam.c2s.ic.gov", Ok(("iam", "us-iso-east-1"))),
        (
            "sqs.us-isob-east-1.sc2s.sgov.gov",
            Ok(("sqs", "us-isob-east-1")),
        ),
        ("iam.sc2s.sgov.gov", Ok(("iam", "us-isob-east-1"))),
        (
            "sqs.eu-isoe-west-1.cloud.adc-e.uk",
            Ok(("sqs", "eu-isoe-west-1")),
        ),
        (
            "sqs.us-isof-south-1.csp.hci.ic.gov",
            Ok(("sqs", "us-isof-south-1")),
        ),
        ("iam.csp.hci.ic.gov", Ok(("iam", "us-isof-south-1"))),
        // ISO dual-stack domains.
        (
            "sqs.us-iso-east-1.api.aws.ic.gov",
            Ok(("sqs", "us-iso-east-1")),
        ),
        (
            "sqs.us-isob-east-1.api.aws.scloud",
            Ok(("sqs", "us-isob-east-1")),
        ),
        (
            "sqs.eu-isoe-west-1.api.cloud-aws.adc-e.uk",
            Ok(("sqs", "eu-isoe-west-1")),
        ),
        (
            "sqs.us-isof-south-1.api.aws.hci.ic.gov",
            Ok(("sqs", "us-isof-south-1")),
        ),
        ("sqs.us-iso-east-1.api.aws.hci.ic.gov", Err("unrecognized")),
        // AWS European Sovereign Cloud.
        (
            "sqs.eusc-de-east-1.amazonaws.eu",
            Ok(("sqs", "eusc-de-east-1")),
        ),
        (
            "bucket.s3.eusc-de-east-1.amazonaws.eu",
            Ok(("s3", "eusc-de-east-1")),
        ),
        (
            "s3.dualstack.eusc-de-east-1.amazonaws.eu",
            Ok(("s3", "eusc-de-east-1")),
        ),
        (
            "sqs.eusc-de-east-1.api.amazonwebservices.eu",
            Ok(("sqs", "eusc-de-east-1")),
        ),
        (
            "bedrock-runtime.eusc-de-east-1.amazonaws.eu",
            Ok(("bedrock", "eusc-de-east-1")),
        ),
        ("sqs.eu-central-1.amazonaws.eu", Err("unrecognized")),
        ("sqs.eusc-de-east-1.amazonaws.com", Err("unrecognized")),
        // Global endpoints sign with the partition's home region.
        ("iam.amazonaws.com", Ok(("iam", "us-east-1"))),
        ("iam-fips.amazonaws.com", Ok(("iam", "us-east-1"))),
        ("sts.amazonaws.com", Ok(("sts", "us-east-1"))),
        ("route53.amazonaws.com", Ok(("route53", "us-east-1"))),
        ("cloudfront.amazonaws.com", Ok(("cloudfront", "us-east-1"))),
        (
            "organizations.us-east-1.amazonaws.com",
            Ok(("organizations", "us-east-1")),
        ),
        (
            "organizations.amazonaws.com",
            Ok(("organizations", "us-east-1")),
        ),
        ("shield.amazonaws.com", Ok(("shield", "us-east-1"))),
        ("waf.amazonaws.com", Ok(("waf", "us-east-1"))),
        (
            "globalaccelerator.amazonaws.com",
            Ok(("globalaccelerator", "us-west-2")),
        ),
        (
            "savingsplans.amazonaws.com",
            Ok(("savingsplans", "us-east-1")),
        ),
        (
            "budgets.amazonaws.com.cn",
            Ok(("budgets", "cn-northwest-1")),
        ),
        // Dual-stack global endpoints.
        ("iam.global.api.aws", Ok(("iam", "us-east-1"))),
        ("route53.global.api.aws", Ok(("route53", "us-east-1"))),
        ("iam.us-gov.api.aws", Ok(("iam", "us-gov-west-1"))),
        (
            "iam.global.api.amazonwebservices.com.cn",
            Ok(("iam", "cn-north-1")),
        ),
        // Hosts whose signing name differs from their endpoint prefix.
        (
            "111122223333.ddb.us-east-1.amazonaws.com",
            Ok(("dynamodb", "us-east-1")),
        ),
        (
            "111122223333.ddb.eu-west-1.api.aws",
            Ok(("dynamodb", "eu-west-1")),
        ),
        (
            "streams-dynamodb.us-west-2.api.aws",
            Ok(("dynamodb", "us-west-2")),
        ),
        (
            "111122223333.data-kinesis.us-east-1.amazonaws.com",
            Ok(("kinesis", "us-east-1")),
        ),
        (
            "111122223333.control-kinesis-fips.us-east-1.amazonaws.com",
            Ok(("kinesis", "us-east-1")),
        ),
        (
            "appconfigdata.eu-west-1.amazonaws.com",
            Ok(("appconfig", "eu-west-1")),
        ),
        (
            "stream-logs.us-east-1.amazonaws.com",
            Ok(("logs", "us-east-1")),
        ),
        (
            "efs.us-east-1.api.aws",
            Ok(("elasticfilesystem", "us-east-1")),
        ),
        ("kafka-api.us-east-1.api.aws", Ok(("kafka", "us-east-1"))),
        (
            "timestream-query.us-east-1.api.aws",
            Ok(("timestream", "us-east-1")),
        ),
        (
            "oidc.us-east-1.amazonaws.com",
            Ok(("sso-oauth", "us-east-1")),
        ),
        (
            "personalize-runtime.us-east-1.amazonaws.com",
            Ok(("personalize", "us-east-1")),
        ),
        (
            "bedrock-data-automation-runtime.us-west-2.amazonaws.com",
            Ok(("bedrock", "us-west-2")),
        ),
        (
            "bedrock-agentcore-control.us-east-1.amazonaws.com",
            Ok(("bedrock-agentcore", "us-east-1")),
        ),
        (
            "places.geo.us-east-1.amazonaws.com",
            Ok(("geo-places", "us-east-1")),
        ),
        (
            "routes.geo.eu-central-1.amazonaws.com",
            Ok(("geo-routes", "eu-central-1")),
        ),
        (
            "participant.connect.us-east-1.amazonaws.com",
            Ok(("execute-api", "us-east-1")),
        ),
        (
            "appstream2.us-east-1.amazonaws.com",
            Ok(("appstream", "us-east-1")),
        ),
        (
            "memory-db.us-east-1.amazonaws.com",
            Ok(("memorydb", "us-east-1")),
        ),
        (
            "messaging-chime.us-east-1.amazonaws.com",
            Ok(("chime", "us-east-1")),
        ),
        (
            "g-abc123.us-east-1.neptune-graph.amazonaws.com",
            Ok(("neptune-graph", "us-east-1")),
        ),
        (
            "my-pipeline.us-west-2.osis.amazonaws.com",
            Ok(("osis", "us-west-2")),
        ),
        // Hosts that take only SigV4a sign for the region set `*`.
        (
            "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com",
            Ok(("s3", "*")),
        ),
        (
            "MFZWI23GNJVGW.MRAP.ACCESSPOINT.S3-GLOBAL.AMAZONAWS.COM:443",
            Ok(("s3", "*")),
        ),
        (
            "us-east-1.mrap.accesspoint.s3-global.amazonaws.com",
            Ok(("s3", "*")),
        ),
        (
            "abcde.veo.endpoint.events.amazonaws.com",
            Ok(("events", "*")),
        ),
        ("abcde.endpoint.events.amazonaws.com", Ok(("events", "*"))),
        ("abcde.veo.endpoint.events.api.aws", Ok(("events", "*"))),
        (
            "us-west-2.endpoint.events.amazonaws.com.",
            Ok(("events", "*")),
        ),
        // Refused: not AWS domains.
        ("example.com", Err("not-aws")),
        ("127.0.0.1:9000", Err("not-aws")),
        ("[::1]:8080", Err("not-aws")),
        ("localhost", Err("not-aws")),
        ("amazonaws.com.evil.example", Err("not-aws")),
        ("sqs.us-east-1.amazonaws.com.attacker.net", Err("not-aws")),
        ("notamazonaws.com", Err("not-aws")),
        ("bucket.s3.us-east-1.amazonaws.co", Err("not-aws")),
        ("d111111abcdef8.cloudfront.net", Err("not-aws")),
        ("", Err("not-aws")),
        // Refused: AWS domains that are customer resources or no API shape.
        ("amazonaws.com", Err("not-aws")),
        ("ec2-54-1-2-3.compute-1.amazonaws.com", Err("unrecognized")),
        (
            "ec2-54-1-2-3.us-west-2.compute.amazonaws.com",
            Err("unrecognized"),
        ),
        (
            "my-lb-1234.us-east-1.elb.amazonaws.com",
            Err("unrecognized"),
        ),
        (
            "mydb.abc123.us-east-1.rds.amazonaws.com",
            Err("unrecognized"),
        ),
        ("sqs.us-est-1.amazonaws.com", Err("unrecognized")),
        ("sqs.cn-north-1.amazonaws.com", Err("unrecognized")),
        ("sqs.us-east-1.amazonaws.com.cn", Err("unrecognized")),
        ("sqs.us-iso-east-1.amazonaws.com", Err("unrecognized")),
        ("us-east-1.amazonaws.com", Err("unrecognized")),
        ("sqs..us-east-1.amazonaws.com", Err("unrecognized")),
        ("unknownglobal.amazonaws.com", Err("unrecognized")),
        // Refused: near misses of the SigV4a shapes.
        (
            "x.mrap.accesspoint.s3-global.amazonaws.com.cn",
            Err("unrecognized"),
        ),
        (
            "mrap.accesspoint.s3-global.amazonaws.com",
            Err("unrecognized"),
        ),
        (
            "a.b.mrap.accesspoint.s3-global.amazonaws.com",
            Err("unrecognized"),
        ),
        (
            "-x.mrap.accesspoint.s3-global.amazonaws.com",
            Err("unrecognized"),
        ),
        (
            "mfzwi23gnjvgw.accesspoint.s3-global.amazonaws.com",
            Err("unrecognized"),
        ),
        ("x.mrap.accesspoint.s3-global.api.aws", Err("unrecognized")),
        (
            "x.mrap.accesspoint.s3-global.us-gov.amazonaws.com",
            Err("unrecognized"),
        ),
        (
            "x.mrap.accesspoint.s3-global.amazonaws.com.evil.example",
            Err("not-aws"),
        ),
        ("endpoint.events.amazonaws.com", Err("unrecognized")),
        (
            "abcde.veo.endpoint.events.amazonaws.com.cn",
            Err("unrecognized"),
        ),
        (
            "abcde.veo.endpoint.events.us-gov.amazonaws.com",
            Err("unrecognized"),
        ),
        (
            "abcde.veo.endpoints.event.amazonaws.com",
            Err("unrecognized"),
        ),
        ("abcde.veo.endpoint.events.c2s.ic.gov", Err("unrecognized")),
        (
            "abcde.veo.endpoint.events.us-gov.api.aws",
            Err("unrecognized"),
        ),
        ("endpoint.events.api.aws", Err("unrecognized")),
    ];

    #[test]
    fn derives_service_and_region_from_a_large_table_of_hosts() {
        assert!(HOSTS.len() >= 80, "{} rows", HOSTS.len());
        let mut failures = Vec::new();
        for (host, want) in HOSTS {
            let got = match parse_host(host) {
                Ok(ep) => Ok((ep.service, ep.region, ep.algorithm)),
                Err(EndpointError::NotAws(_)) => Err("not-aws"),
                Err(EndpointError::Unrecognized { .. }) => Err("unrecognized"),
            };
            let want = want.map(|(s, r)| {
                let algorithm = if r == ALL_REGIONS {
                    Algorithm::V4a
                } else {
                    Algorithm::V4
                };
                (s.to_string(), r.to_string(), algorithm)
            });
            if got != want {
                failures.push(format!("{host}: got {got:?}, want {want:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn knows_each_partition_of_a_parsed_host() {
        for (host, partition) in [
            ("sqs.us-east-1.amazonaws.com", Partition::Aws),
            ("sqs.cn-north-1.amazonaws.com.cn", Partition::AwsCn),
            ("sqs.us-gov-west-1.amazonaws.com", Partition::AwsUsGov),
            ("iam.us-gov.amazonaws.com", Partition::AwsUsGov),
            ("sqs.us-iso-east-1.c2s.ic.gov", Partition::AwsIso),
            ("sqs.us-isob-east-1.sc2s.sgov.gov", Partition::AwsIsoB),
            ("sqs.eu-isoe-west-1.cloud.adc-e.uk", Partition::AwsIsoE),
            ("sqs.us-isof-south-1.csp.hci.ic.gov", Partition::AwsIsoF),
            ("sqs.us-isof-south-1.api.aws.hci.ic.gov", Partition::AwsIsoF),
            ("sqs.eusc-de-east-1.amazonaws.eu", Partition::AwsEusc),
            ("x.mrap.accesspoint.s3-global.amazonaws.com", Partition::Aws),
            ("abcde.veo.endpoint.events.amazonaws.com", Partition::Aws),
        ] {
            assert_eq!(parse_host(host).unwrap().partition, partition, "{host}");
        }
    }

    #[test]
    fn checks_region_names_by_shape() {
        for good in [
            "us-east-1",
            "eu-central-2",
            "ap-southeast-9",
            "ca-west-1",
            "mx-central-1",
            "il-central-1",
            "cn-northwest-1",
            "us-gov-west-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "us-isof-south-1",
            "sa-east-12",
        ] {
            assert!(is_region_name(good), "{good}");
        }
        for bad in [
            "us-est-1",
            "us-east",
            "us-east-01",
            "us-east-123",
            "xx-east-1",
            "US-EAST-1",
            "useast1",
            "us-east-1a",
            "aws-global",
            "",
            "-east-1",
            "us--east-1",
        ] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    #[test]
    fn multi_region_access_points_and_eventbridge_global_endpoints_take_sigv4a() {
        for (host, service) in [
            (
                "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com",
                "s3",
            ),
            ("abcde.veo.endpoint.events.amazonaws.com", "events"),
        ] {
            assert_eq!(
                parse_host(host),
                Ok(AwsEndpoint {
                    service: service.into(),
                    region: "*".into(),
                    partition: Partition::Aws,
                    algorithm: Algorithm::V4a,
                }),
                "{host}"
            );
        }
        // Every other shape keeps SigV4, the S3 access point forms included.
        for host in [
            "ap-111122223333.s3-accesspoint.us-west-2.amazonaws.com",
            "events.us-east-1.amazonaws.com",
            "bucket.s3.amazonaws.com",
            "iam.amazonaws.com",
        ] {
            assert_eq!(parse_host(host).unwrap().algorithm, Algorithm::V4, "{host}");
        }
    }

    #[test]
    fn checks_region_sets() {
        for good in [
            "*",
            "us-east-1",
            "us-east-1,us-west-2",
            "eu-central-2,ap-southeast-9,il-central-1",
            "us-gov-west-1,us-gov-east-1",
            "cn-north-1,cn-northwest-1",
        ] {
            assert_eq!(check_region_set(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "give '*'"),
            ("us-east-1, us-west-2", "it has spaces"),
            (" *", "it has spaces"),
            ("us-east-1\tus-west-2", "it has spaces"),
            ("us-east-1,", "empty element"),
            (",us-east-1", "empty element"),
            ("us-east-1,,us-west-2", "empty element"),
            ("*,us-east-1", "'*' (every region) must stand alone"),
            ("us-east-1,*", "'*' (every region) must stand alone"),
            ("*,*", "'*' (every region) must stand alone"),
            ("us-est-1", "'us-est-1' is not a region name or '*'"),
            ("us-east-1,US-WEST-2", "'US-WEST-2' is not a region name"),
            ("us-*", "'us-*' is not a region name"),
            ("us-east-1;us-west-2", "is not a region name"),
            ("us-east-1,us-west-2,us-east-1", "it names us-east-1 twice"),
            (
                "us-east-1,cn-north-1",
                "cn-north-1 is in the aws-cn partition and us-east-1 in aws",
            ),
            (
                "us-gov-west-1,us-west-2",
                "us-west-2 is in the aws partition and us-gov-west-1 in aws-us-gov",
            ),
        ] {
            let e = check_region_set(bad).unwrap_err();
            assert!(
                e.starts_with(&format!("'{bad}' is not a region set: ")),
                "{bad:?}: {e}"
            );
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn recognizes_only_aws_endpoint_domains() {
        for host in [
            "sqs.us-east-1.amazonaws.com",
            "x.amazonaws.com.cn",
            "x.api.aws",
            "x.lambda-url.us-east-1.on.aws:443",
            "x.c2s.ic.gov",
            "x.sc2s.sgov.gov",
            "x.cloud.adc-e.uk",
            "x.csp.hci.ic.gov",
            "x.amazonaws.eu",
            "x.api.amazonwebservices.eu",
            "x.api.aws.ic.gov",
            "x.api.aws.scloud",
            "x.api.cloud-aws.adc-e.uk",
            "x.api.aws.hci.ic.gov",
        ] {
            assert!(is_aws_domain(host), "{host}");
        }
        for host in [
            "example.com",
            "amazonaws.com.example.com",
            "fakeamazonaws.com",
            "api.aws.evil",
            "amazonaws.eu.example.com",
            "scloud",
            "127.0.0.1",
        ] {
            assert!(!is_aws_domain(host), "{host}");
        }
    }

    #[test]
    fn tells_s3express_zonal_hosts_from_other_s3express_and_s3_hosts() {
        for host in [
            "b--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com",
            "B--USE1-AZ4--X-S3.S3EXPRESS-USE1-AZ4.US-EAST-1.AMAZONAWS.COM:443",
            "logs--usw2-lax1-az1--x-s3.s3express-usw2-lax1-az1.us-west-2.amazonaws.com.",
            "b--usw2-az1--x-s3.s3express-fips-usw2-az1.us-west-2.amazonaws.com",
        ] {
            assert!(is_s3express_zonal_host(host), "{host}");
        }
        for host in [
            "s3express-control.us-west-2.amazonaws.com",
            "b--usw2-az1--x-s3.s3express-control.us-west-2.amazonaws.com",
            "b--usw2-az1--x-s3.s3express-control-fips.us-west-2.amazonaws.com",
            "b--usw2-az1.s3express-usw2-az1.us-west-2.amazonaws.com",
            "--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com",
            "b--usw2-az1--x-s3.s3express-.us-west-2.amazonaws.com",
            "b--usw2-az1--x-s3.s3.us-west-2.amazonaws.com",
            "b--usw2-az1--x-s3.s3express-usw2-az1",
            "bucket.s3.us-west-2.amazonaws.com",
            "127.0.0.1:9000",
            "[::1]:9000",
            "",
        ] {
            assert!(!is_s3express_zonal_host(host), "{host}");
        }
    }

    #[test]
    fn gives_each_partition_its_home_region() {
        for (partition, home) in [
            (Partition::Aws, "us-east-1"),
            (Partition::AwsCn, "cn-north-1"),
            (Partition::AwsUsGov, "us-gov-west-1"),
        ] {
            assert_eq!(partition.home_region(), home);
            assert_eq!(Partition::of_region(home), Some(partition));
        }
    }
}
