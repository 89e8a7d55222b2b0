//! `v0` request signatures of the HTTP Events API.
//!
//! Slack signs every request it sends to a Request URL (events, slash
//! commands, interactivity) with the app's signing secret
//! (<https://docs.slack.dev/authentication/verifying-requests-from-slack>):
//!
//! ```text
//! X-Slack-Request-Timestamp: 1531420618
//! X-Slack-Signature:         v0=hex(HMAC-SHA256(signing_secret, "v0:1531420618:" + raw_body))
//! ```
//!
//! The signature covers the raw body bytes exactly as received, so verify
//! before parsing anything. A timestamp more than five minutes away from our
//! clock (in either direction) is refused, which bounds replays; the
//! signatures are compared in constant time.
//!
//! Nothing here stores, logs or formats the secret: it is borrowed for one
//! call and only the computed MAC leaves [`sign`].

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header carrying the request's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "X-Slack-Request-Timestamp";
/// The header carrying the `v0=` signature.
pub const SIGNATURE_HEADER: &str = "X-Slack-Signature";
/// The largest accepted distance between the request's timestamp and our
/// clock, in seconds (Slack's recommendation: five minutes).
pub const MAX_SKEW_SECS: u64 = 5 * 60;

/// Why a request's signature was refused. None of the variants carries the
/// secret or the expected signature, so they are safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A required header was absent.
    #[error("missing {0} header")]
    MissingHeader(&'static str),
    /// The timestamp header is not a whole number of seconds.
    #[error("malformed {TIMESTAMP_HEADER} header")]
    MalformedTimestamp,
    /// The timestamp is too far from our clock: positive `skew_secs` means
    /// the request is old (a possible replay), negative that it is from the
    /// future.
    #[error("request timestamp is {skew_secs}s away from now (at most {MAX_SKEW_SECS}s allowed)")]
    Stale {
        /// Our time minus the request's time, in seconds.
        skew_secs: i64,
    },
    /// The signature is malformed or does not match the body.
    #[error("signature does not match the request")]
    BadSignature,
}

/// Computes the `v0=` signature of `body` sent at `timestamp` (the header's
/// text, as received).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length (long ones are hashed first), so this
    // constructor has no error case in practice.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a request's signature headers against its raw body, with `now_unix`
/// as our clock in seconds.
///
/// The checks run cheapest first: both headers present, the timestamp a
/// number, within [`MAX_SKEW_SECS`] of `now_unix`, and only then the HMAC,
/// compared in constant time.
pub fn verify(
    secret: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let timestamp = timestamp_header.ok_or(SignatureError::MissingHeader(TIMESTAMP_HEADER))?;
    let signature = signature_header.ok_or(SignatureError::MissingHeader(SIGNATURE_HEADER))?;
    check_freshness(timestamp, now_unix)?;
    let expected = sign(secret, timestamp, body);
    // `ct_eq` on slices of different lengths is false without comparing the
    // contents; the length of a valid signature is public anyway.
    if bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::BadSignature)
    }
}

/// Parses the timestamp header and refuses it when it is further than
/// [`MAX_SKEW_SECS`] from `now_unix`.
fn check_freshness(timestamp: &str, now_unix: i64) -> Result<(), SignatureError> {
    let text = timestamp.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedTimestamp);
    }
    let sent: i64 = text
        .parse()
        .map_err(|_| SignatureError::MalformedTimestamp)?;
    let skew_secs = now_unix.saturating_sub(sent);
    if skew_secs.unsigned_abs() > MAX_SKEW_SECS {
        return Err(SignatureError::Stale { skew_secs });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::path::PathBuf;

    /// The shape of `conformance/slack/signing/*.json`.
    #[derive(Debug, Deserialize)]
    struct Vector {
        signing_secret: String,
        headers: Headers,
        raw_body: String,
        basestring: String,
        expected_signature: String,
    }

    #[derive(Debug, Deserialize)]
    struct Headers {
        #[serde(rename = "X-Slack-Request-Timestamp")]
        timestamp: String,
        #[serde(rename = "X-Slack-Signature")]
        signature: String,
    }

    /// `$SWITCHBOARD_CONFORMANCE_DIR/slack/signing`, or None (with a note)
    /// when the variable is unset. A set variable naming a missing folder is
    /// a test failure.
    fn signing_dir() -> Option<PathBuf> {
        let Some(root) = std::env::var_os("SWITCHBOARD_CONFORMANCE_DIR") else {
            println!("note: SWITCHBOARD_CONFORMANCE_DIR is unset; skipping Slack signing vectors");
            return None;
        };
        let dir = PathBuf::from(root).join("slack").join("signing");
        assert!(
            dir.is_dir(),
            "SWITCHBOARD_CONFORMANCE_DIR is set but {} does not exist",
            dir.display()
        );
        Some(dir)
    }

    fn load(name: &str) -> Option<Vector> {
        let path = signing_dir()?.join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        Some(serde_json::from_str(&text).expect("a signing vector"))
    }

    fn ts(v: &Vector) -> i64 {
        v.headers.timestamp.parse().expect("numeric timestamp")
    }

    fn check_vector(v: &Vector) {
        let secret = v.signing_secret.as_bytes();
        let body = v.raw_body.as_bytes();
        let now = ts(v);
        // The vector's own description of the base string agrees with ours.
        assert_eq!(
            v.basestring,
            format!("v0:{}:{}", v.headers.timestamp, v.raw_body)
        );
        assert_eq!(
            sign(secret, &v.headers.timestamp, body),
            v.expected_signature
        );
        assert_eq!(v.headers.signature, v.expected_signature);
        let header = Some(v.headers.timestamp.as_str());
        let good = Some(v.headers.signature.as_str());
        assert_eq!(verify(secret, header, good, body, now), Ok(()));
        assert_eq!(verify(secret, header, good, body, now + 299), Ok(()));

        // Negative cases: tampered body, timestamp, signature, secret.
        let tampered = [body, b"------"].concat();
        assert_eq!(
            verify(secret, header, good, &tampered, now),
            Err(SignatureError::BadSignature)
        );
        let other_ts = (now + 1).to_string();
        assert_eq!(
            verify(secret, Some(&other_ts), good, body, now),
            Err(SignatureError::BadSignature)
        );
        let mut flipped = v.headers.signature.clone();
        let last = if flipped.ends_with('0') { "1" } else { "0" };
        flipped.replace_range(flipped.len() - 1.., last);
        assert_eq!(
            verify(secret, header, Some(&flipped), body, now),
            Err(SignatureError::BadSignature)
        );
        assert_eq!(
            verify(b"another secret", header, good, body, now),
            Err(SignatureError::BadSignature)
        );
        // Stale and future timestamps, even with a valid signature.
        assert_eq!(
            verify(secret, header, good, body, now + 301),
            Err(SignatureError::Stale { skew_secs: 301 })
        );
        assert_eq!(
            verify(secret, header, good, body, now - 301),
            Err(SignatureError::Stale { skew_secs: -301 })
        );
    }

    #[test]
    fn slack_docs_vector_verifies_and_tampering_does_not() {
        if let Some(v) = load("slack_docs_test_vector.json") {
            check_vector(&v);
        }
    }

    #[test]
    fn derived_json_body_vector_verifies() {
        if let Some(v) = load("derived_json_body_vector.json") {
            check_vector(&v);
        }
    }

    #[test]
    fn round_trip_without_the_corpus() {
        let body = br#"{"type":"url_verification","challenge":"x"}"#;
        let sig = sign(b"secret", "1700000000", body);
        assert!(sig.starts_with("v0=") && sig.len() == 3 + 64);
        assert_eq!(
            verify(
                b"secret",
                Some("1700000000"),
                Some(&sig),
                body,
                1_700_000_000
            ),
            Ok(())
        );
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let sig = sign(b"s", "100", b"");
        assert_eq!(
            verify(b"s", None, Some(&sig), b"", 100),
            Err(SignatureError::MissingHeader(TIMESTAMP_HEADER))
        );
        assert_eq!(
            verify(b"s", Some("100"), None, b"", 100),
            Err(SignatureError::MissingHeader(SIGNATURE_HEADER))
        );
        for bad in ["", "abc", "-100", "1e3", "100.5", "99999999999999999999999"] {
            assert_eq!(
                verify(b"s", Some(bad), Some(&sig), b"", 100),
                Err(SignatureError::MalformedTimestamp),
                "{bad:?}"
            );
        }
        for bad in ["", "v0=", "v1=abc", "deadbeef", &sig.to_uppercase()] {
            assert_eq!(
                verify(b"s", Some("100"), Some(bad), b"", 100),
                Err(SignatureError::BadSignature),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn extreme_clocks_do_not_overflow() {
        let sig = sign(b"s", "0", b"");
        assert!(matches!(
            verify(b"s", Some("0"), Some(&sig), b"", i64::MIN),
            Err(SignatureError::Stale { .. })
        ));
        let max = i64::MAX.to_string();
        let sig = sign(b"s", &max, b"");
        assert!(matches!(
            verify(b"s", Some(&max), Some(&sig), b"", i64::MIN),
            Err(SignatureError::Stale { .. })
        ));
    }

    #[test]
    fn errors_do_not_reveal_the_expected_signature() {
        let err = verify(b"secret", Some("1"), Some("v0=00"), b"body", 1).expect_err("mismatch");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&sign(b"secret", "1", b"body")[3..]));
        assert!(!shown.contains("secret"));
    }
}
