//! The refresher against a rotating, slow and then failing IMDSv2 stand-in:
//! refreshes land before expiry, readers never wait on the metadata server,
//! cached credentials carry an outage until they expire, and the source
//! recovers by itself.

mod standins;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use signet::credentials::{CredentialsSet, RefreshSettings, SourceSettings};

fn imds_source(url: &str) -> BTreeMap<String, SourceSettings> {
    BTreeMap::from([(
        "ec2".to_owned(),
        SourceSettings::Imds {
            endpoint: Some(url.to_owned()),
            assume_role: None,
            refresh: RefreshSettings {
                min_remaining_secs: 1.0,
                lifetime_fraction: 0.2,
                jitter_fraction: 0.1,
                backoff_base_secs: 0.2,
                backoff_cap_secs: 0.5,
                file_poll_secs: 5.0,
                fetch_timeout_secs: 10.0,
            },
        },
    )])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_rotating_credentials_before_expiry_without_readers_waiting() {
    let imds = standins::imds(Duration::from_secs(3));
    // Every answer from the metadata server takes 300 ms: a reader that
    // waited on it would take at least that long.
    imds.control.set_delay(Duration::from_millis(300));
    let set = Arc::new(CredentialsSet::start(&imds_source(&imds.url()), &[]).unwrap());
    assert!(set.wait_ready(Duration::from_secs(10)).await);

    let run_for = Duration::from_secs(9);
    let mut readers = Vec::new();
    for _ in 0..4 {
        let handle = set.handle("ec2", None).unwrap();
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let start = Instant::now();
            while start.elapsed() < run_for {
                let t0 = Instant::now();
                let result = handle.current();
                let waited = t0.elapsed();
                let at = SystemTime::now();
                seen.push((at, waited, result.map(|c| c.access_key_id.clone())));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            seen
        }));
    }
    let mut observations = Vec::new();
    for reader in readers {
        observations.extend(reader.await.unwrap());
    }
    observations.sort_by_key(|o| o.0);

    let issued = imds.control.issued();
    assert!(
        issued.len() >= 4,
        "expected several rotations, got {}",
        issued.len()
    );
    // Only the refresher fetches: ~one fetch per 2 s, whatever the readers do.
    assert!(
        issued.len() <= 8,
        "readers caused fetches: {}",
        issued.len()
    );
    for (at, waited, key) in &observations {
        let key = key.as_ref().expect("no reader may ever see unavailable");
        assert!(
            *waited < Duration::from_millis(100),
            "a reader waited {waited:?}"
        );
        let issue = imds.control.find(key).expect("key was issued by IMDS");
        assert!(
            issue.issued_at <= *at && *at < issue.expires_at,
            "key {key} used outside its validity"
        );
    }
    // Each refresh happened before the previous credentials expired.
    for pair in issued.windows(2) {
        assert!(
            pair[1].issued_at < pair[0].expires_at,
            "refresh after expiry: {:?} >= {:?}",
            pair[1].issued_at,
            pair[0].expires_at
        );
    }
    // And readers switched to each new key before the old one expired (the
    // last key may have arrived after the readers stopped).
    for pair in issued.windows(2).take(issued.len() - 2) {
        let first_use = observations
            .iter()
            .find(|o| o.2.as_deref() == Ok(pair[1].access_key_id.as_str()))
            .unwrap_or_else(|| panic!("key {} was never used", pair[1].access_key_id));
        assert!(first_use.0 < pair[0].expires_at + Duration::from_millis(50));
    }
    let status = set.status();
    assert_eq!(status[0].refresh_failures, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_cached_credentials_until_expiry_then_recovers() {
    let imds = standins::imds(Duration::from_secs(4));
    let set = CredentialsSet::start(&imds_source(&imds.url()), &[]).unwrap();
    assert!(set.wait_ready(Duration::from_secs(10)).await);
    let handle = set.handle("ec2", None).unwrap();
    // The metadata server goes away for longer than a refresh interval.
    imds.control.set_available(false);
    let first = imds.control.issued()[0].clone();

    // Until expiry: the cached key keeps signing, although refreshes fail.
    let mut saw_failures_while_valid = false;
    while SystemTime::now() + Duration::from_millis(150) < first.expires_at {
        let creds = handle.current().expect("cached credentials still valid");
        assert_eq!(creds.access_key_id, first.access_key_id);
        let status = &set.status()[0];
        if status.refresh_failures > 0 {
            saw_failures_while_valid = true;
            assert!(status.valid);
            assert!(status.last_error.is_some());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        saw_failures_while_valid,
        "refresh was not attempted before expiry"
    );

    // After expiry: unavailable, with the reason.
    let wait = first
        .expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    let err = handle.current().unwrap_err();
    assert!(err.reason.contains("expired"), "{}", err.reason);
    assert!(err.reason.contains("ec2 (imds)"), "{}", err.reason);
    assert!(err.to_string().starts_with("credentials unavailable: "));
    assert!(!err.to_string().contains(&first.secret_access_key));
    assert!(!set.status()[0].valid);
    assert_eq!(imds.control.issued().len(), 1);

    // The source returns: signet recovers without help.
    imds.control.set_available(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    let recovered = loop {
        if let Ok(creds) = handle.current() {
            break creds;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(recovered.access_key_id, first.access_key_id);
    assert!(imds.control.find(&recovered.access_key_id).is_some());
    let status = &set.status()[0];
    assert!(status.valid);
    assert!(status.last_error.is_none());
    assert!(status.refresh_failures > 0);
}
