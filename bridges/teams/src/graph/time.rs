//! ISO 8601 date-times and durations as Graph writes them
//! (`2021-02-02T18:19:52.105Z`, `2021-02-02T10:30:34.9097561-08:00`,
//! `PT59S`, `PT40M19.26S`). Malformed input reads as `None`; nothing panics.

use std::time::Duration;

/// Milliseconds since the Unix epoch of an ISO 8601 date-time with a `Z` or
/// `±HH:MM` offset (no offset reads as UTC).
pub(crate) fn parse_datetime(s: &str) -> Option<u64> {
    let b = s.trim().as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0, 4)?;
    if b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
    {
        return None;
    }
    let (month, day) = (num(5, 2)?, num(8, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = std::str::from_utf8(b.get(start..i)?).ok()?;
        let ms: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = ms.parse().ok()?;
    }
    let offset_minutes = match b.get(i) {
        None | Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let h = num(i + 1, 2)?;
            let m = if b.get(i + 3) == Some(&b':') {
                num(i + 4, 2)?
            } else {
                num(i + 3, 2)?
            };
            let total = h * 60 + m;
            if *sign == b'+' { total } else { -total }
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    let ms = secs.checked_mul(1000)?.checked_add(millis)?;
    u64::try_from(ms).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An ISO 8601 duration (`P1DT2H3M4.5S`); years and months are not accepted.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let rest = s.trim().strip_prefix(['P', 'p'])?;
    let mut millis: u128 = 0;
    let mut in_time = false;
    let mut number = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c {
            'T' | 't' => in_time = true,
            '0'..='9' | '.' | ',' => number.push(if c == ',' { '.' } else { c }),
            unit => {
                let value: f64 = number.parse().ok()?;
                number.clear();
                let factor: f64 = match (unit.to_ascii_uppercase(), in_time) {
                    ('W', false) => 604_800_000.0,
                    ('D', false) => 86_400_000.0,
                    ('H', true) => 3_600_000.0,
                    ('M', true) => 60_000.0,
                    ('S', true) => 1000.0,
                    _ => return None,
                };
                let part = value * factor;
                if !part.is_finite() || !(0.0..=1e15).contains(&part) {
                    return None;
                }
                // Bounded above, so the cast is exact enough and cannot wrap.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let part = part.round() as u128;
                millis += part;
                any = true;
            }
        }
    }
    if !number.is_empty() || !any {
        return None;
    }
    Some(Duration::from_millis(u64::try_from(millis).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_datetime("2021-02-02T18:19:52.105Z"),
            Some(1_612_289_992_105)
        );
        assert_eq!(
            parse_datetime("2021-02-02T10:30:34.9097561-08:00"),
            parse_datetime("2021-02-02T18:30:34.909Z")
        );
        assert_eq!(parse_datetime("2021-03-1706:47:05.123Z"), None);
        assert_eq!(parse_datetime("nonsense"), None);
        assert_eq!(parse_datetime("0001-01-01T00:00:00Z"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT59S"), Some(Duration::from_secs(59)));
        assert_eq!(
            parse_duration("PT40M19.26S"),
            Some(Duration::from_millis(2_419_260))
        );
        assert_eq!(parse_duration("P1DT1H"), Some(Duration::from_secs(90_000)));
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(parse_duration("P1Y"), None);
        assert_eq!(parse_duration("PT1e400S"), None);
    }
}
