//! Small helpers: clocks, ISO 8601 timestamps as Graph writes them, id generators, and
//! Graph's error body.
//!
//! Graph errors: <https://learn.microsoft.com/graph/errors> — `{"error":{"code","message",
//! "innerError":{"date","request-id","client-request-id"}}}`. Identity-platform errors:
//! <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow#error-response>.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Locks a mutex, recovering the data if a previous holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2021-02-02T18:19:52.105Z` — the form Graph uses for chatMessage timestamps.
pub fn iso_ms(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX / 2);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// `2021-02-02T18:19:52` — the form of `innerError.date`.
pub fn iso_secs(ms: u64) -> String {
    let s = iso_ms(ms);
    s.get(..19).unwrap_or(&s).to_string()
}

/// Parses an ISO 8601 / RFC 3339 date-time (`…Z`, `…+01:00`, 0–7 fraction digits) to
/// milliseconds since the epoch. `None` for anything else.
pub fn parse_iso(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        let digits = s.get(start..i)?;
        let three: String = digits.chars().chain("000".chars()).take(3).collect();
        frac_ms = three.parse().ok()?;
    }
    let offset_min = match s.get(i..)? {
        "Z" | "z" => 0,
        rest if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh = num(i + 1..i + 3)?;
            let om = num(i + 4..i + 6)?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    u64::try_from(secs * 1000 + frac_ms).ok()
}

/// A random lower-case GUID (`8ea0e38b-efb3-4757-924a-5f94061cf8c2`).
pub fn guid() -> String {
    let h = |n: usize| -> String {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect()
    };
    format!(
        "{}-{}-4{}-{}{}-{}",
        h(8),
        h(4),
        h(3),
        ["8", "9", "a", "b"][fastrand::usize(0..4)],
        h(3),
        h(12)
    )
}

/// `n` random lower-case hex digits.
pub fn hex(n: usize) -> String {
    (0..n)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect()
}

/// An opaque random token of URL-safe characters.
pub fn opaque(n: usize) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..n)
        .map(|_| char::from(A[fastrand::usize(0..A.len())]))
        .collect()
}

/// Percent-encodes everything outside RFC 3986's unreserved set (for ids in URLs).
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A Graph error answer: status, `error.code`, `error.message`, and extra headers.
#[derive(Debug, Clone)]
pub struct GraphError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// Extra response headers (`Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(&'static str, String)>,
    /// Extra `innerError` members (the 429 body carries some).
    pub inner: Option<Value>,
}

impl GraphError {
    /// An error with Graph's body shape.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code: code.to_string(),
            message: message.into(),
            headers: Vec::new(),
            inner: None,
        }
    }

    /// 400 `BadRequest`.
    pub fn bad_request(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404 `NotFound`.
    pub fn not_found(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    /// 403 `Forbidden` / "Forbidden" — what Graph answers when the caller lost access.
    pub fn forbidden() -> GraphError {
        GraphError::new(StatusCode::FORBIDDEN, "Forbidden", "Forbidden")
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &'static str, value: String) -> GraphError {
        self.headers.push((name, value));
        self
    }

    /// The JSON body Graph sends.
    pub fn body(&self, request_id: &str) -> Value {
        let mut inner = json!({
            "date": iso_secs(now_ms()),
            "request-id": request_id,
            "client-request-id": request_id,
        });
        if let (Some(Value::Object(extra)), Some(obj)) = (&self.inner, inner.as_object_mut()) {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        json!({"error": {"code": self.code, "message": self.message, "innerError": inner}})
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let rid = guid();
        let mut r = (self.status, axum::Json(self.body(&rid))).into_response();
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&rid) {
            h.insert("request-id", v.clone());
            h.insert("client-request-id", v);
        }
        for (k, v) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.insert(*k, v);
            }
        }
        r
    }
}

/// A JSON response with a status.
pub fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// A bare status (204 No Content and friends).
pub fn empty(status: StatusCode) -> Response {
    status.into_response()
}

/// The bearer token in `Authorization`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, tok) = v.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(tok.trim())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        assert_eq!(iso_ms(1_612_289_992_105), "2021-02-02T18:19:52.105Z");
        assert_eq!(
            parse_iso("2021-02-02T18:19:52.105Z"),
            Some(1_612_289_992_105)
        );
        assert_eq!(
            parse_iso("2016-11-20T18:23:45.9356913Z"),
            parse_iso("2016-11-20T19:23:45.935+01:00")
        );
        assert_eq!(parse_iso("2021-02-02"), None);
        assert_eq!(parse_iso("2021-02-02T18:19:52.Z"), None);
        assert_eq!(parse_iso("ü021-02-02T18:19:52Z"), None);
    }

    #[test]
    fn parse_iso_never_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet: Vec<char> = "0123456789-T:Z.+zé%".chars().collect();
        for _ in 0..20_000 {
            let n = rng.usize(0..32);
            let s: String = (0..n)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let _ = parse_iso(&s);
        }
        // Mutations of a valid stamp.
        let base = "2021-02-02T18:19:52.105+01:00";
        for i in 0..base.len() {
            for c in ['é', '9', 'x', '-'] {
                let mut t: Vec<char> = base.chars().collect();
                if let Some(x) = t.get_mut(i) {
                    *x = c;
                }
                let _ = parse_iso(&t.iter().collect::<String>());
            }
        }
    }

    #[test]
    fn guid_shape() {
        let g = guid();
        assert_eq!(g.len(), 36);
        assert_eq!(g.matches('-').count(), 4);
    }
}
