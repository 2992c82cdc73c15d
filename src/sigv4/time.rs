//! The signing time in SigV4's compact ISO 8601 form (`20150830T123600Z`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SigningError;

/// A signing time, held pre-formatted as `YYYYMMDDTHHMMSSZ` (UTC).
///
/// ```
/// use signet::sigv4::AmzDate;
/// let t = AmzDate::parse("2015-08-30T12:36:00Z").unwrap();
/// assert_eq!(t.as_str(), "20150830T123600Z");
/// assert_eq!(t.date(), "20150830");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AmzDate {
    text: [u8; 16],
}

fn days_to_civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-from-civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn civil_to_days(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl AmzDate {
    /// Formats `time` (truncated to whole seconds, UTC).
    ///
    /// Fails for times before 1970 or after year 9999.
    pub fn from_system_time(time: SystemTime) -> Result<Self, SigningError> {
        let secs = time
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SigningError::InvalidTime)?
            .as_secs();
        let days = i64::try_from(secs / 86_400).map_err(|_| SigningError::InvalidTime)?;
        let rem = secs % 86_400;
        let (y, m, d) = days_to_civil(days);
        if !(0..=9999).contains(&y) {
            return Err(SigningError::InvalidTime);
        }
        let mut text = *b"00000000T000000Z";
        put_digits(&mut text[0..4], y as u64);
        put_digits(&mut text[4..6], u64::from(m));
        put_digits(&mut text[6..8], u64::from(d));
        put_digits(&mut text[9..11], rem / 3600);
        put_digits(&mut text[11..13], (rem / 60) % 60);
        put_digits(&mut text[13..15], rem % 60);
        Ok(Self { text })
    }

    /// The current time.
    pub fn now() -> Result<Self, SigningError> {
        Self::from_system_time(SystemTime::now())
    }

    /// Parses `20150830T123600Z` or `2015-08-30T12:36:00Z`.
    pub fn parse(s: &str) -> Result<Self, SigningError> {
        let b = s.as_bytes();
        let compact: [u8; 16] = match b.len() {
            16 => {
                let mut t = [0u8; 16];
                t.copy_from_slice(b);
                t
            }
            20 if b[4] == b'-' && b[7] == b'-' && b[13] == b':' && b[16] == b':' => {
                let mut t = *b"00000000T000000Z";
                t[0..4].copy_from_slice(&b[0..4]);
                t[4..6].copy_from_slice(&b[5..7]);
                t[6..8].copy_from_slice(&b[8..10]);
                t[8] = b[10];
                t[9..11].copy_from_slice(&b[11..13]);
                t[11..13].copy_from_slice(&b[14..16]);
                t[13..15].copy_from_slice(&b[17..19]);
                t[15] = b[19];
                t
            }
            _ => return Err(SigningError::InvalidTime),
        };
        let digits_ok = compact[0..8]
            .iter()
            .chain(&compact[9..15])
            .all(u8::is_ascii_digit);
        if !digits_ok || compact[8] != b'T' || compact[15] != b'Z' {
            return Err(SigningError::InvalidTime);
        }
        let num = |r: std::ops::Range<usize>| {
            compact[r]
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
        };
        let (y, m, d) = (num(0..4), num(4..6), num(6..8));
        let (hh, mm, ss) = (num(9..11), num(11..13), num(13..15));
        let days_in_month = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            _ => 0,
        };
        if y < 1970 || d == 0 || d > days_in_month || hh > 23 || mm > 59 || ss > 59 {
            return Err(SigningError::InvalidTime);
        }
        Ok(Self { text: compact })
    }

    /// The full timestamp, `YYYYMMDDTHHMMSSZ` (the `X-Amz-Date` value).
    pub fn as_str(&self) -> &str {
        // Built only from ASCII digits, 'T' and 'Z'.
        std::str::from_utf8(&self.text).unwrap_or("19700101T000000Z")
    }

    /// The date part, `YYYYMMDD` (used in the credential scope).
    pub fn date(&self) -> &str {
        &self.as_str()[..8]
    }

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(&self) -> SystemTime {
        let num = |r: std::ops::Range<usize>| {
            self.text[r]
                .iter()
                .fold(0u32, |acc, d| acc * 10 + u32::from(d.wrapping_sub(b'0')))
        };
        let days = civil_to_days(i64::from(num(0..4)), num(4..6), num(6..8));
        let secs = days.max(0) as u64 * 86_400
            + u64::from(num(9..11)) * 3600
            + u64::from(num(11..13)) * 60
            + u64::from(num(13..15));
        UNIX_EPOCH + Duration::from_secs(secs)
    }
}

impl fmt::Display for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AmzDate({})", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        let t = AmzDate::from_system_time(UNIX_EPOCH + Duration::from_secs(1_440_938_160)).unwrap();
        assert_eq!(t.as_str(), "20150830T123600Z");
        assert_eq!(t.date(), "20150830");
        let leap =
            AmzDate::from_system_time(UNIX_EPOCH + Duration::from_secs(951_825_599)).unwrap();
        assert_eq!(leap.as_str(), "20000229T115959Z");
        let epoch = AmzDate::from_system_time(UNIX_EPOCH).unwrap();
        assert_eq!(epoch.as_str(), "19700101T000000Z");
    }

    #[test]
    fn round_trips_through_system_time_for_many_days() {
        for day in (0..40_000u64).step_by(7) {
            let st = UNIX_EPOCH + Duration::from_secs(day * 86_400 + 3_723);
            let t = AmzDate::from_system_time(st).unwrap();
            assert_eq!(t.to_system_time(), st);
            assert_eq!(AmzDate::parse(t.as_str()).unwrap(), t);
        }
    }

    #[test]
    fn parses_both_iso_forms() {
        let a = AmzDate::parse("20130524T000000Z").unwrap();
        let b = AmzDate::parse("2013-05-24T00:00:00Z").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn rejects_malformed_times() {
        for bad in [
            "",
            "2015-08-30",
            "20150830T123600",
            "20150830X123600Z",
            "20151330T123600Z",
            "20150230T123600Z",
            "20150830T243600Z",
            "2015083OT123600Z",
            "19690101T000000Z",
            "2015-08-30 12:36:00Z",
            "ሴሴሴሴሴ1",
        ] {
            assert!(AmzDate::parse(bad).is_err(), "{bad}");
        }
    }
}
