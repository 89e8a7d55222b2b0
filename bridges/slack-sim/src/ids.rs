//! Identifiers the way Slack mints them: prefixed upper-case ids (`C…`, `U…`, `B…`), message
//! timestamps (`"1663966382.046509"`), tokens (`xoxb-…`, `xoxp-…`, `xapp-…`), envelope uuids.
//!
//! Slack documents `ts` as "a string of the form seconds.microseconds" that is unique per
//! channel (<https://docs.slack.dev/reference/events/message>), and the 2021 OpenAPI spec pins
//! ids to patterns such as `^[CGD][A-Z0-9]{8,}$`; every id minted here satisfies those patterns.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn pick(alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[fastrand::usize(..alphabet.len())]))
        .collect()
}

/// A Slack-style object id: `prefix` followed by ten upper-case letters or digits
/// (e.g. `C07KH38CR5E`).
pub fn slack_id(prefix: &str) -> String {
    format!("{prefix}{}", pick(UPPER_ALNUM, 10))
}

/// A random lower-case alphanumeric string (token bodies, secrets, tickets).
pub fn random_lower(len: usize) -> String {
    pick(LOWER_ALNUM, len)
}

/// A random hex string of `len` characters.
pub fn random_hex(len: usize) -> String {
    pick(b"0123456789abcdef", len)
}

/// A `block_id` like the ones Slack attaches to generated rich_text blocks (`"6r5Zo"`).
pub fn block_id() -> String {
    pick(BASE62, 5)
}

/// A random (version 4) UUID in its canonical lower-case form, as used for `envelope_id`
/// and `client_msg_id`.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    for byte in &mut b {
        *byte = fastrand::u8(..);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn digits(len: usize) -> String {
    pick(b"0123456789", len)
}

/// A bot token: `xoxb-<team digits>-<bot digits>-<24 alphanumerics>`.
pub fn bot_token() -> String {
    format!("xoxb-{}-{}-{}", digits(12), digits(13), pick(BASE62, 24))
}

/// A user token: `xoxp-<digits>-<digits>-<digits>-<32 hex>`.
pub fn user_token() -> String {
    format!(
        "xoxp-{}-{}-{}-{}",
        digits(12),
        digits(12),
        digits(13),
        random_hex(32)
    )
}

/// An app-level token: `xapp-1-<app id>-<digits>-<64 hex>`.
pub fn app_token(app_id: &str) -> String {
    format!("xapp-1-{app_id}-{}-{}", digits(13), random_hex(64))
}

/// Seconds since the Unix epoch, by the wall clock.
pub fn now_secs() -> i64 {
    i64::try_from(now_micros() / 1_000_000).unwrap_or(i64::MAX)
}

/// Microseconds since the Unix epoch, by the wall clock.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A message timestamp, held as microseconds since the epoch.
///
/// Displays as Slack's `"seconds.micros"` string with exactly six fractional digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ts(pub u64);

impl Ts {
    /// Parses `"1663966382.046509"`; also accepts Slack's lenient forms with fewer fractional
    /// digits (`"1663966382.0465"`) or none (`"1663966382"`), as `oldest`/`latest` allow.
    pub fn parse(s: &str) -> Option<Ts> {
        let s = s.trim();
        let (secs, frac) = match s.split_once('.') {
            Some((a, b)) => (a, b),
            None => (s, ""),
        };
        if secs.is_empty()
            || secs.len() > 12
            || !secs.bytes().all(|c| c.is_ascii_digit())
            || frac.len() > 6
            || !frac.bytes().all(|c| c.is_ascii_digit())
        {
            return None;
        }
        let secs: u64 = secs.parse().ok()?;
        let mut micros: u64 = 0;
        for (i, c) in frac.bytes().enumerate() {
            micros += u64::from(c - b'0') * 10u64.pow(5 - u32::try_from(i).ok()?);
        }
        secs.checked_mul(1_000_000)?.checked_add(micros).map(Ts)
    }

    /// Whole seconds.
    pub fn secs(self) -> i64 {
        i64::try_from(self.0 / 1_000_000).unwrap_or(i64::MAX)
    }

    /// The `p…` form used in permalinks (`ts` without the dot).
    pub fn permalink_form(self) -> String {
        format!("{}{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }

    /// The timestamp rounded down to its second, rendered like `edited.ts`
    /// (`"1668721589.000000"` in real captures).
    pub fn whole_second(self) -> Ts {
        Ts(self.0 - self.0 % 1_000_000)
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Hands out strictly increasing timestamps: the wall clock, bumped by one microsecond when
/// two events fall in the same microsecond. One clock serves the whole workspace, so `ts`
/// values are strictly increasing in every channel.
#[derive(Debug, Default)]
pub struct Clock {
    last: AtomicU64,
}

impl Clock {
    /// The next timestamp.
    pub fn next(&self) -> Ts {
        let now = now_micros();
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let candidate = now.max(prev + 1);
            match self
                .last
                .compare_exchange(prev, candidate, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ts(candidate),
                Err(actual) => prev = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_round_trips_and_orders() {
        let t = Ts::parse("1663966382.046509").expect("valid ts");
        assert_eq!(t.to_string(), "1663966382.046509");
        assert_eq!(t.permalink_form(), "1663966382046509");
        assert_eq!(
            Ts::parse("1663966382").map(|t| t.0),
            Some(1_663_966_382_000_000)
        );
        assert_eq!(Ts::parse("1.5").map(|t| t.0), Some(1_500_000));
        for bad in ["", "abc", "1.1234567", "-1.0", "1.x", ".5"] {
            assert!(Ts::parse(bad).is_none(), "{bad}");
        }
        let c = Clock::default();
        let a = c.next();
        let b = c.next();
        assert!(b > a);
    }

    #[test]
    fn ids_match_slack_patterns() {
        let id = slack_id("C");
        assert_eq!(id.len(), 11);
        assert!(
            id[1..]
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        let u = uuid_v4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
    }
}
