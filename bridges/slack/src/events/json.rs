//! Small, panic-free accessors for Slack's JSON.
//!
//! Required fields (`req_*`) fail with a named [`Rejected`] reason. Optional
//! fields (`opt_*`) read absent, null and wrongly typed values alike as
//! absent: a decorative field in an unexpected shape (Slack sends
//! `"previous_message": []` in places) must not cost a message.

use super::Rejected;
use serde_json::{Map, Value};

/// A JSON object.
pub(super) type Obj = Map<String, Value>;

/// A present, non-null field.
fn present<'a>(obj: &'a Obj, key: &'static str) -> Result<&'a Value, Rejected> {
    match obj.get(key) {
        None | Some(Value::Null) => Err(Rejected::MissingField(key)),
        Some(v) => Ok(v),
    }
}

/// A required string field.
pub(super) fn req_str<'a>(obj: &'a Obj, key: &'static str) -> Result<&'a str, Rejected> {
    present(obj, key)?.as_str().ok_or(Rejected::WrongType {
        field: key,
        expected: "a string",
    })
}

/// A required string field that must not be empty.
pub(super) fn req_nonempty<'a>(obj: &'a Obj, key: &'static str) -> Result<&'a str, Rejected> {
    let s = req_str(obj, key)?;
    if s.is_empty() {
        Err(Rejected::MissingField(key))
    } else {
        Ok(s)
    }
}

/// A required object field.
pub(super) fn req_obj<'a>(obj: &'a Obj, key: &'static str) -> Result<&'a Obj, Rejected> {
    present(obj, key)?.as_object().ok_or(Rejected::WrongType {
        field: key,
        expected: "an object",
    })
}

/// A required integer field.
pub(super) fn req_i64(obj: &Obj, key: &'static str) -> Result<i64, Rejected> {
    present(obj, key)?.as_i64().ok_or(Rejected::WrongType {
        field: key,
        expected: "an integer",
    })
}

/// An optional string field.
pub(super) fn opt_str<'a>(obj: &'a Obj, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// An optional string field, absent when empty.
pub(super) fn opt_nonempty<'a>(obj: &'a Obj, key: &str) -> Option<&'a str> {
    opt_str(obj, key).filter(|s| !s.is_empty())
}

/// An optional object field.
pub(super) fn opt_obj<'a>(obj: &'a Obj, key: &str) -> Option<&'a Obj> {
    obj.get(key).and_then(Value::as_object)
}

/// An optional array field, empty when absent.
pub(super) fn opt_array<'a>(obj: &'a Obj, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// An optional integer field.
pub(super) fn opt_i64(obj: &Obj, key: &str) -> Option<i64> {
    obj.get(key).and_then(Value::as_i64)
}

/// An optional boolean field, false when absent.
pub(super) fn flag(obj: &Obj, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The strings of an array field (other elements skipped).
pub(super) fn strings<'a>(obj: &'a Obj, key: &str) -> impl Iterator<Item = &'a str> {
    opt_array(obj, key).iter().filter_map(Value::as_str)
}

/// The objects of an array field (other elements skipped).
pub(super) fn objects<'a>(obj: &'a Obj, key: &str) -> impl Iterator<Item = &'a Obj> {
    opt_array(obj, key).iter().filter_map(Value::as_object)
}

/// A Slack timestamp (`"1355517523.000005"`, seconds with a microsecond
/// fraction) in milliseconds since the epoch; None when malformed.
pub(crate) fn ts_millis(ts: &str) -> Option<u64> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (secs, frac) = match ts.split_once('.') {
        Some((secs, frac)) if digits(frac) => (secs, frac),
        Some(_) => return None,
        None => (ts, ""),
    };
    if !digits(secs) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    // The first three fraction digits are milliseconds; pad "5" to "500".
    let millis = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    secs.checked_mul(1000)?.checked_add(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_millis_reads_slack_timestamps() {
        assert_eq!(ts_millis("1355517523.000005"), Some(1_355_517_523_000));
        assert_eq!(ts_millis("1670625739.704049"), Some(1_670_625_739_704));
        assert_eq!(ts_millis("123.4"), Some(123_400));
        assert_eq!(ts_millis("17"), Some(17_000));
        for bad in [
            "",
            ".",
            "1.",
            "a.1",
            "1.a",
            "-1.0",
            "1.2.3",
            "99999999999999999999.0",
        ] {
            assert_eq!(ts_millis(bad), None, "{bad:?}");
        }
        assert_eq!(ts_millis("18446744073709551.615"), Some(u64::MAX));
        assert_eq!(ts_millis("18446744073709552.000"), None);
    }

    #[test]
    fn required_fields_name_what_is_wrong() {
        let obj: Obj = serde_json::from_str(r#"{"a":1,"n":null,"s":"x","e":""}"#).expect("json");
        assert_eq!(req_str(&obj, "s"), Ok("x"));
        assert_eq!(req_str(&obj, "zz"), Err(Rejected::MissingField("zz")));
        assert_eq!(req_str(&obj, "n"), Err(Rejected::MissingField("n")));
        assert_eq!(
            req_str(&obj, "a"),
            Err(Rejected::WrongType {
                field: "a",
                expected: "a string"
            })
        );
        assert_eq!(req_nonempty(&obj, "e"), Err(Rejected::MissingField("e")));
        assert_eq!(req_i64(&obj, "a"), Ok(1));
        assert!(req_obj(&obj, "a").is_err());
        assert_eq!(opt_str(&obj, "a"), None);
        assert!(opt_array(&obj, "s").is_empty());
    }
}
