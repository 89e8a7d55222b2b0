//! Durations as they are written in the config file: a whole number and a
//! unit, `"250ms"`, `"20s"`, `"5m"`, `"2h"`, `"7d"`.
//!
//! Deliberately small: no fractions, no compound forms (`"1h30m"`), no
//! spaces. One way to write a value means one way to read it in a review.

use std::time::Duration;

/// The units, with how many milliseconds each is worth. Longest suffix
/// first, so that `ms` is not read as `m` followed by garbage.
const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];

/// Parses `"20s"` and friends. The error says what is accepted and never
/// guesses: `"20"` (no unit) is as wrong as `"20 seconds"`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {text:?}; expected a whole number followed by ms, s, m, h or d, \
             e.g. \"20s\""
        )
    };
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid());
    }
    let per_unit = UNITS
        .iter()
        .find(|(suffix, _)| *suffix == unit)
        .map(|(_, millis)| *millis)
        .ok_or_else(invalid)?;
    let millis = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(per_unit))
        .ok_or_else(|| format!("duration {text:?} is too large"))?;
    Ok(Duration::from_millis(millis))
}

/// Writes a duration back in the file's syntax, in the largest unit that
/// represents it exactly (`300s` is written `5m`). Used in error messages.
pub(crate) fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    UNITS
        .iter()
        .rev()
        .find(|(_, per_unit)| millis != 0 && millis.is_multiple_of(u128::from(*per_unit)))
        .map_or_else(
            || format!("{millis}ms"),
            |(suffix, per_unit)| format!("{}{suffix}", millis / u128::from(*per_unit)),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("20s"), Ok(Duration::from_secs(20)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_everything_else_with_a_useful_message() {
        for bad in [
            "", "20", "s", "1.5s", "-1s", "20 s", " 20s", "20S", "20sec", "1h30m", "20µs", "ms",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("ms, s, m, h or d"), "{bad:?}: {err}");
        }
        let err = parse_duration("99999999999999999999d").expect_err("too large");
        assert!(err.contains("too large"), "{err}");
        let err = parse_duration("999999999999999999d").expect_err("overflows millis");
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn formats_in_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_millis(1_500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(20)), "20s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(90_000)), "25h");
        assert_eq!(format_duration(Duration::from_secs(604_800)), "7d");
        assert_eq!(format_duration(Duration::ZERO), "0ms");
        assert_eq!(format_duration(Duration::from_nanos(1)), "0ms");
    }

    #[test]
    fn format_then_parse_round_trips() {
        for text in [
            "1ms", "999ms", "1s", "59s", "1m", "90m", "1h", "25h", "1d", "365d",
        ] {
            let parsed = parse_duration(text).expect(text);
            assert_eq!(format_duration(parsed), text);
        }
    }
}
