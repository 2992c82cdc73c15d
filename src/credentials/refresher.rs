//! The background task that keeps one source's snapshot fresh.
//!
//! It is the only code that fetches: readers never trigger a fetch, so a
//! burst of requests cannot cause a burst of calls to IMDS or STS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::time::Instant;

use super::resolve::{Fetched, Resolver};
use super::settings::RefreshSettings;
use super::snapshot::{access_key_hint, SnapshotCell};

/// When to refresh credentials fetched at `fetched_at` that expire at `expires_at`.
///
/// The margin kept before expiry is `max(min_remaining, fraction × lifetime)`,
/// moved earlier by a random part (`jitter ∈ [0, 1]`) of `jitter_fraction × margin`.
/// The margin, jitter included, never exceeds half the lifetime, and the delay is at least
/// `backoff_base`, so very short-lived credentials cannot cause a busy loop.
pub(crate) fn refresh_delay(
    settings: &RefreshSettings,
    fetched_at: SystemTime,
    expires_at: SystemTime,
    jitter: f64,
) -> Duration {
    let lifetime = expires_at
        .duration_since(fetched_at)
        .unwrap_or_default()
        .as_secs_f64();
    let margin = settings
        .min_remaining_secs
        .max(settings.lifetime_fraction * lifetime);
    let margin = margin + jitter.clamp(0.0, 1.0) * settings.jitter_fraction * margin;
    let margin = margin.min(lifetime / 2.0);
    let delay = (lifetime - margin).max(settings.backoff_base_secs);
    Duration::from_secs_f64(delay)
}

/// Delay before retry number `failures` (1 for the first failure): capped
/// exponential growth from `backoff_base`, scaled by `jitter ∈ [0.5, 1]`.
pub(crate) fn backoff_delay(settings: &RefreshSettings, failures: u32, jitter: f64) -> Duration {
    let exp = settings.backoff_base_secs * 2f64.powi(failures.saturating_sub(1).min(30) as i32);
    let capped = exp.min(settings.backoff_cap_secs);
    Duration::from_secs_f64(capped * jitter.clamp(0.5, 1.0))
}

type FileStamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(files: &[PathBuf]) -> FileStamp {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

/// [`stamp`] on a blocking thread: a slow or hung file system must not stall
/// the runtime's threads. `None` only if that thread failed.
async fn stamp_off_thread(files: &[PathBuf]) -> Option<FileStamp> {
    if files.is_empty() {
        return Some(FileStamp::new());
    }
    let paths = files.to_vec();
    tokio::task::spawn_blocking(move || stamp(&paths))
        .await
        .ok()
}

/// Runs the refresh loop for one source until the task is aborted.
pub(crate) async fn run(cell: Arc<SnapshotCell>, resolver: Resolver, settings: RefreshSettings) {
    let files = resolver.watched_files();
    let poll = Duration::from_secs_f64(settings.file_poll_secs);
    let fetch_timeout = Duration::from_secs_f64(settings.fetch_timeout_secs);
    let mut failures: u32 = 0;
    loop {
        let before = stamp_off_thread(&files).await.unwrap_or_default();
        let result = match tokio::time::timeout(fetch_timeout, resolver.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "fetch timed out after {:.1}s",
                fetch_timeout.as_secs_f64()
            )),
        };
        let result = result.and_then(|fetched| unexpired(fetched, SystemTime::now()));
        let next: Option<Instant> = match result {
            Ok(Fetched {
                credentials,
                expires_at,
            }) => {
                failures = 0;
                let fetched_at = SystemTime::now();
                let hint = access_key_hint(&credentials.access_key_id);
                cell.publish(credentials, expires_at);
                match expires_at {
                    Some(expires_at) => {
                        let delay = refresh_delay(
                            &settings,
                            fetched_at,
                            expires_at,
                            rand::rng().random::<f64>(),
                        );
                        tracing::info!(
                            source = %cell.name,
                            kind = cell.kind,
                            key = %hint,
                            expires_in_secs = expires_at
                                .duration_since(fetched_at)
                                .unwrap_or_default()
                                .as_secs_f64(),
                            refresh_in_secs = delay.as_secs_f64(),
                            "credentials refreshed"
                        );
                        Some(Instant::now() + delay)
                    }
                    None => {
                        tracing::info!(
                            source = %cell.name,
                            kind = cell.kind,
                            key = %hint,
                            "long-term credentials loaded"
                        );
                        None
                    }
                }
            }
            Err(reason) => {
                failures = failures.saturating_add(1);
                let delay = backoff_delay(&settings, failures, rand::rng().random_range(0.5..=1.0));
                let snapshot = cell.load();
                tracing::warn!(
                    source = %cell.name,
                    kind = cell.kind,
                    failures,
                    retry_in_secs = delay.as_secs_f64(),
                    cached_key = snapshot
                        .credentials
                        .as_ref()
                        .map(|c| access_key_hint(&c.access_key_id))
                        .unwrap_or_default(),
                    reason = %reason,
                    "credentials refresh failed"
                );
                cell.record_failure(reason);
                Some(Instant::now() + delay)
            }
        };
        let next = next.map(|at| Due {
            at,
            wall: SystemTime::now() + at.saturating_duration_since(Instant::now()),
        });
        wait(next, &files, before, poll, SystemTime::now).await;
    }
}

/// Credentials that had already run out when fetched are a failed fetch:
/// retried with backoff, never published.
fn unexpired(fetched: Fetched, now: SystemTime) -> Result<Fetched, String> {
    match fetched.expires_at {
        Some(at) if at <= now => Err(format!(
            "the credentials fetched had already expired at {}",
            httpdate::fmt_http_date(at)
        )),
        _ => Ok(fetched),
    }
}

/// When the next fetch is due, on both clocks: the monotonic one stops while
/// the machine sleeps (a laptop's lid closed, a paused VM), the wall clock
/// that credentials expire by does not.
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    wall: SystemTime,
}

/// Sleeps until `next` is due on either clock (forever when `None`) or until
/// a watched file changes. While a fetch is due it wakes at least every
/// `poll` to look at the wall clock (`wall_now`).
async fn wait(
    next: Option<Due>,
    files: &[PathBuf],
    before: FileStamp,
    poll: Duration,
    wall_now: impl Fn() -> SystemTime,
) {
    loop {
        let now = Instant::now();
        if next.is_some_and(|due| due.at <= now || due.wall <= wall_now()) {
            return;
        }
        let wake = match (next, files.is_empty()) {
            (Some(due), _) => due.at.min(now + poll),
            (None, false) => now + poll,
            (None, true) => {
                std::future::pending::<()>().await;
                return;
            }
        };
        tokio::time::sleep_until(wake).await;
        if !files.is_empty()
            && stamp_off_thread(files)
                .await
                .is_some_and(|now| now != before)
        {
            tracing::info!(files = ?files, "credential file changed, fetching again");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn refreshes_hour_long_credentials_when_twenty_percent_remains() {
        let s = RefreshSettings::default();
        // 1 h lifetime: margin max(300, 720) = 720 s, refresh after 2880 s.
        let d = refresh_delay(&s, at(0), at(3600), 0.0);
        assert_eq!(d, Duration::from_secs(2880));
        // With full jitter the margin grows by 10 %.
        let d = refresh_delay(&s, at(0), at(3600), 1.0);
        assert_eq!(d, Duration::from_secs_f64(3600.0 - 792.0));
    }

    #[test]
    fn keeps_at_least_five_minutes_for_fifteen_minute_credentials() {
        let s = RefreshSettings::default();
        let d = refresh_delay(&s, at(0), at(900), 0.0);
        assert_eq!(d, Duration::from_secs(600));
    }

    #[test]
    fn short_lived_credentials_refresh_at_half_life_not_in_a_loop() {
        let s = RefreshSettings::default();
        let d = refresh_delay(&s, at(0), at(4), 0.0);
        assert_eq!(d, Duration::from_secs(2));
        // Jitter does not push the margin past half the lifetime either.
        let d = refresh_delay(&s, at(0), at(600), 1.0);
        assert_eq!(d, Duration::from_secs(300));
        // Already expired: wait the backoff base rather than spinning.
        let d = refresh_delay(&s, at(10), at(5), 0.5);
        assert_eq!(d, Duration::from_secs(1));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let s = RefreshSettings::default();
        assert_eq!(backoff_delay(&s, 1, 1.0), Duration::from_secs(1));
        assert_eq!(backoff_delay(&s, 2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff_delay(&s, 4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff_delay(&s, 10, 1.0), Duration::from_secs(60));
        assert_eq!(backoff_delay(&s, u32::MAX, 1.0), Duration::from_secs(60));
        assert_eq!(backoff_delay(&s, 4, 0.5), Duration::from_secs(4));
    }

    #[test]
    fn credentials_expired_when_fetched_are_a_failure() {
        let fetched = |expires_at| Fetched {
            credentials: crate::sigv4::Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "secret".into(),
                session_token: Some("token".into()),
            },
            expires_at,
        };
        let reason = unexpired(fetched(Some(at(100))), at(100)).unwrap_err();
        assert!(reason.contains("already expired"), "{reason}");
        assert!(unexpired(fetched(Some(at(101))), at(100)).is_ok());
        assert!(unexpired(fetched(None), at(100)).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_due_by_the_wall_clock_is_not_waited_out_on_the_monotonic_one() {
        let start = Instant::now();
        let wall_start = SystemTime::now();
        // Due in 60 s on both clocks.
        let due = Due {
            at: start + Duration::from_secs(60),
            wall: wall_start + Duration::from_secs(60),
        };
        let poll = Duration::from_secs(5);
        // Awake all along: due at 60 s.
        let awake = move || wall_start + start.elapsed();
        wait(Some(due), &[], Vec::new(), poll, awake).await;
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        // The machine slept an hour after 10 s: the wall clock jumped, the
        // monotonic one did not; the next look at the wall clock sees it due.
        let start = Instant::now();
        let due = Due {
            at: start + Duration::from_secs(60),
            wall: wall_start + Duration::from_secs(60),
        };
        let slept = move || {
            let jump = if start.elapsed() >= Duration::from_secs(10) {
                Duration::from_secs(3600)
            } else {
                Duration::ZERO
            };
            wall_start + start.elapsed() + jump
        };
        wait(Some(due), &[], Vec::new(), poll, slept).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[test]
    fn file_stamp_changes_when_a_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let files = vec![path.clone()];
        let missing = stamp(&files);
        std::fs::write(&path, "a").unwrap();
        let first = stamp(&files);
        assert_ne!(missing, first);
        std::fs::write(&path, "bb").unwrap();
        let second = stamp(&files);
        assert_ne!(first, second);
        // A rewrite of the same length is told apart by its modification time.
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, "cc").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified + Duration::from_secs(1))
            .unwrap();
        assert_ne!(second, stamp(&files));
    }
}
