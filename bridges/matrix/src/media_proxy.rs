//! Matrix users' avatars for Slack and Teams: a signed media endpoint
//! ([`MediaEndpoint`]) on the daemon's listener.
//!
//! Homeservers with authenticated media (MSC3916) refuse unauthenticated
//! downloads, so a plain thumbnail URL of the homeserver shows nothing on
//! the other platforms. When the bridge has a `public_url`, an avatar
//! `mxc://{server}/{media_id}` becomes
//! `{public_url}{prefix}{server}/{media_id}?sig={signature}` instead, where
//! `{prefix}` is `{registration url path}/_matrix/app/media/`:
//!
//! - The signature is HMAC-SHA256 over `{server}/{media_id}` with a key
//!   derived from the `hs_token` ([`MediaSigner`]), so the endpoint serves
//!   only the media the bridge itself handed out. A missing or wrong
//!   signature, a malformed id or an unknown path is `404` with no detail.
//! - The endpoint fetches a 96×96 thumbnail with the `as_token` through the
//!   authenticated media API
//!   (`GET /_matrix/client/v1/media/thumbnail/{server}/{media_id}`), falling
//!   back to the legacy one (`/_matrix/media/v3/thumbnail/…`) when the
//!   homeserver does not know the former (`404 M_UNRECOGNIZED`, `400`,
//!   `405`).
//! - It answers the bytes with the homeserver's `Content-Type` and
//!   `Cache-Control: public, max-age=86400`. The homeserver's `404` is
//!   `404`; any other failure, and a thumbnail over [`MAX_MEDIA_BYTES`], is
//!   `502` (nothing beyond the cap is kept).
//! - Answers are kept in a small in-memory cache ([`MediaCache`]: at most
//!   [`CACHE_ENTRIES`] entries and [`CACHE_BYTES`] bytes, least recently
//!   used first out), so repeated fetches do not reach the homeserver.
//! - Only `GET` and `HEAD` (`405` otherwise).
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1mediathumbnailservernamemediaid>.

use crate::appservice::constant_time_eq;
use crate::client::{dec, enc};
use crate::config::Token;
use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_model::{HttpEndpoint, HttpRequest, HttpResponse};

/// The largest thumbnail served, in bytes.
pub const MAX_MEDIA_BYTES: usize = 1024 * 1024;
/// How many thumbnails the cache holds at most.
pub const CACHE_ENTRIES: usize = 128;
/// How many bytes of thumbnails the cache holds at most.
pub const CACHE_BYTES: usize = 8 * 1024 * 1024;
/// How long a cached thumbnail is served before it is fetched again.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// The thumbnail asked for.
const THUMBNAIL_QUERY: &str = "width=96&height=96&method=crop";
/// What the key of the signatures is derived with.
const KEY_LABEL: &[u8] = b"switchboard media v1";
/// How long one fetch from the homeserver may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How much of an error body is read (for its `errcode`).
const ERROR_BODY_CAP: usize = 4 * 1024;
/// The longest server name or media id accepted.
const MAX_ID_LEN: usize = 255;

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks media URLs with a key derived from the `hs_token`:
/// `HMAC-SHA256(hs_token, "switchboard media v1")`.
#[derive(Clone)]
pub struct MediaSigner {
    key: [u8; 32],
}

impl fmt::Debug for MediaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MediaSigner([redacted])")
    }
}

impl MediaSigner {
    /// The signer whose key is derived from `hs_token`.
    pub fn new(hs_token: &Token) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(&hmac(hs_token.expose().as_bytes(), KEY_LABEL));
        MediaSigner { key }
    }

    /// The signature of `mxc://{server}/{media}`: lower-case hex of
    /// HMAC-SHA256 over `{server}/{media}`.
    pub fn sign(&self, server: &str, media: &str) -> String {
        let message = format!("{server}/{media}");
        hex(&hmac(&self.key, message.as_bytes()))
    }

    /// Whether `signature` is the one of `mxc://{server}/{media}`
    /// (compared in constant time).
    pub fn verify(&self, server: &str, media: &str, signature: &str) -> bool {
        constant_time_eq(self.sign(server, media).as_bytes(), signature.as_bytes())
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return Vec::new(),
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `server` is a server name as Matrix allows one: a host name,
/// IPv4 or bracketed IPv6 address, optionally with `:port`.
pub fn valid_server_name(server: &str) -> bool {
    !server.is_empty()
        && server.len() <= MAX_ID_LEN
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Whether `media` is a media id as Matrix allows one (`[A-Za-z0-9_-]+`).
pub fn valid_media_id(media: &str) -> bool {
    !media.is_empty()
        && media.len() <= MAX_ID_LEN
        && media
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The server name and media id of an `mxc://` URI, when both are valid.
pub fn parse_mxc(mxc: &str) -> Option<(&str, &str)> {
    let (server, media) = mxc.strip_prefix("mxc://")?.split_once('/')?;
    (valid_server_name(server) && valid_media_id(media)).then_some((server, media))
}

/// The server name and media id of the path after the endpoint's prefix
/// (`{server}/{media_id}`, percent-encoded), when both are valid.
pub fn parse_media_path(rest: &str) -> Option<(String, String)> {
    let (server, media) = rest.split_once('/')?;
    if media.contains('/') {
        return None;
    }
    let (server, media) = (dec(server), dec(media));
    (valid_server_name(&server) && valid_media_id(&media)).then_some((server, media))
}

/// The `sig` parameter of a query string.
fn signature_of(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("sig="))
        .filter(|sig| !sig.is_empty())
}

/// A thumbnail: its MIME type and bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// The homeserver's `Content-Type`.
    pub content_type: String,
    /// The bytes.
    pub bytes: Arc<[u8]>,
}

#[derive(Debug)]
struct Cached {
    thumbnail: Thumbnail,
    at: Instant,
}

/// A bounded in-memory cache of thumbnails by `{server}/{media_id}`: at most
/// `max_entries` entries and `max_bytes` bytes; the least recently used
/// leave first, and entries expire after an hour.
#[derive(Debug)]
pub struct MediaCache {
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    entries: HashMap<String, Cached>,
    /// Keys, least recently used first.
    order: VecDeque<String>,
}

impl MediaCache {
    /// An empty cache with these bounds.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        MediaCache {
            max_entries,
            max_bytes,
            bytes: 0,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// How many thumbnails are held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many bytes of thumbnails are held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The thumbnail under `key`, if held and fresh.
    pub fn get(&mut self, key: &str) -> Option<Thumbnail> {
        let fresh = self.entries.get(key)?.at.elapsed() < CACHE_TTL;
        if !fresh {
            self.remove(key);
            return None;
        }
        self.touch(key);
        self.entries.get(key).map(|c| c.thumbnail.clone())
    }

    /// Keeps `thumbnail` under `key`, dropping the least recently used
    /// entries to stay within the bounds (one larger than the whole byte
    /// budget is not kept).
    pub fn insert(&mut self, key: &str, thumbnail: Thumbnail) {
        self.remove(key);
        let size = thumbnail.bytes.len();
        if size > self.max_bytes || self.max_entries == 0 {
            return;
        }
        while self.entries.len() >= self.max_entries || self.bytes + size > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.entries.remove(&oldest) {
                self.bytes -= old.thumbnail.bytes.len();
            }
        }
        self.bytes += size;
        self.order.push_back(key.to_owned());
        self.entries.insert(
            key.to_owned(),
            Cached {
                thumbnail,
                at: Instant::now(),
            },
        );
    }

    fn touch(&mut self, key: &str) {
        if let Some(i) = self.order.iter().position(|k| k == key)
            && let Some(k) = self.order.remove(i)
        {
            self.order.push_back(k);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= old.thumbnail.bytes.len();
            self.order.retain(|k| k != key);
        }
    }
}

/// Why a thumbnail could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FetchError {
    /// The homeserver does not have it (404).
    NotFound,
    /// The API is not there (404 `M_UNRECOGNIZED`, 400, 405).
    Unrecognized,
    /// Anything else: another status, a network error, too large.
    Failed(String),
}

/// The signed media endpoint of one Matrix bridge (see the module docs).
pub struct MediaEndpoint {
    prefix: String,
    signer: MediaSigner,
    homeserver: String,
    as_token: Token,
    http: reqwest::Client,
    cache: Mutex<MediaCache>,
}

impl fmt::Debug for MediaEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaEndpoint")
            .field("prefix", &self.prefix)
            .field("homeserver", &self.homeserver)
            .finish_non_exhaustive()
    }
}

impl MediaEndpoint {
    /// The endpoint served under `prefix` (ending in `/`), signing with a
    /// key derived from `hs_token` and fetching from `homeserver` with
    /// `as_token`.
    pub fn new(prefix: String, homeserver: &str, as_token: Token, hs_token: &Token) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("switchboard-matrix/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only fails when the TLS backend cannot start; the default
            // client reports that itself.
            .unwrap_or_default();
        MediaEndpoint {
            prefix,
            signer: MediaSigner::new(hs_token),
            homeserver: homeserver.trim_end_matches('/').to_owned(),
            as_token,
            http,
            cache: Mutex::new(MediaCache::new(CACHE_ENTRIES, CACHE_BYTES)),
        }
    }

    /// The path prefix the endpoint is served under.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The URL of the thumbnail of `mxc://{server}/{media}` under
    /// `public_url` (the listener's public base URL), signed; `None` for an
    /// invalid `mxc` URI.
    pub fn url_for(&self, public_url: &str, mxc: &str) -> Option<String> {
        let (server, media) = parse_mxc(mxc)?;
        Some(format!(
            "{}{}{}/{}?sig={}",
            public_url.trim_end_matches('/'),
            self.prefix,
            enc(server),
            enc(media),
            self.signer.sign(server, media)
        ))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, MediaCache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The thumbnail, from the authenticated media API or, when the
    /// homeserver does not know it, the legacy one.
    async fn thumbnail(&self, server: &str, media: &str) -> Result<Thumbnail, FetchError> {
        let tail = format!("{}/{}?{THUMBNAIL_QUERY}", enc(server), enc(media));
        let v1 = format!("/_matrix/client/v1/media/thumbnail/{tail}");
        match self.fetch(&v1).await {
            Err(FetchError::Unrecognized) => {
                let legacy = format!("/_matrix/media/v3/thumbnail/{tail}");
                match self.fetch(&legacy).await {
                    Err(FetchError::Unrecognized) => {
                        Err(FetchError::Failed("no media API answered".into()))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    async fn fetch(&self, path: &str) -> Result<Thumbnail, FetchError> {
        let mut response = self
            .http
            .get(format!("{}{path}", self.homeserver))
            .bearer_auth(self.as_token.expose())
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| FetchError::Failed(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            let body = read_capped(&mut response, ERROR_BODY_CAP)
                .await
                .unwrap_or_default();
            let errcode = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("errcode").and_then(Value::as_str).map(str::to_owned));
            return Err(match (status, errcode.as_deref()) {
                (_, Some("M_UNRECOGNIZED")) | (400 | 405, _) => FetchError::Unrecognized,
                (404, _) | (_, Some("M_NOT_FOUND")) => FetchError::NotFound,
                _ => FetchError::Failed(format!("HTTP {status}")),
            });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let bytes = read_capped(&mut response, MAX_MEDIA_BYTES).await?;
        Ok(Thumbnail {
            content_type,
            bytes: bytes.into(),
        })
    }

    fn answer(method: &str, thumbnail: &Thumbnail) -> HttpResponse {
        let mut response = HttpResponse::empty(200)
            .with_header("content-type", thumbnail.content_type.clone())
            .with_header("cache-control", "public, max-age=86400")
            .with_header("x-content-type-options", "nosniff")
            .with_header("content-security-policy", "default-src 'none'; sandbox");
        if method == "GET" {
            response.body = thumbnail.bytes.to_vec();
        } else {
            response = response.with_header("content-length", thumbnail.bytes.len().to_string());
        }
        response
    }
}

/// Reads a body of at most `cap` bytes; a longer one is an error, and no
/// more than `cap` bytes are kept.
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, FetchError> {
    let too_big = || FetchError::Failed(format!("larger than {cap} bytes"));
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(too_big());
    }
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError::Failed(e.without_url().to_string()))?
    {
        if out.len() + chunk.len() > cap {
            return Err(too_big());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn not_found() -> HttpResponse {
    HttpResponse::empty(404)
}

#[async_trait]
impl HttpEndpoint for MediaEndpoint {
    async fn handle(&self, request: HttpRequest) -> HttpResponse {
        let method = request.method.as_str();
        if method != "GET" && method != "HEAD" {
            return HttpResponse::empty(405).with_header("allow", "GET, HEAD");
        }
        let Some((server, media)) = request
            .path
            .strip_prefix(self.prefix.as_str())
            .and_then(parse_media_path)
        else {
            return not_found();
        };
        let Some(signature) = signature_of(&request.query) else {
            return not_found();
        };
        if !self.signer.verify(&server, &media, signature) {
            return not_found();
        }
        let key = format!("{server}/{media}");
        if let Some(thumbnail) = self.cache().get(&key) {
            return Self::answer(method, &thumbnail);
        }
        match self.thumbnail(&server, &media).await {
            Ok(thumbnail) => {
                self.cache().insert(&key, thumbnail.clone());
                Self::answer(method, &thumbnail)
            }
            Err(FetchError::NotFound) => not_found(),
            Err(e) => {
                let reason = match e {
                    FetchError::Failed(reason) => reason,
                    _ => "no media API answered".to_owned(),
                };
                tracing::warn!(
                    homeserver = %self.homeserver,
                    media = %key,
                    error = %reason,
                    "Could not fetch an avatar thumbnail from the homeserver."
                );
                HttpResponse::empty(502)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const PREFIX: &str = "/_matrix/app/media/";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really";

    fn signer() -> MediaSigner {
        MediaSigner::new(&Token::new("hs-secret"))
    }

    #[test]
    fn signatures_depend_on_the_key_and_the_media() {
        let s = signer();
        let sig = s.sign("example.org", "AbC");
        assert_eq!(sig.len(), 64);
        assert!(
            sig.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(s.verify("example.org", "AbC", &sig));
        assert!(!s.verify("example.org", "AbD", &sig), "another media id");
        assert!(!s.verify("example.com", "AbC", &sig), "another server");
        assert!(!s.verify("example.org", "AbC", &sig[..63]), "truncated");
        assert!(!s.verify("example.org", "AbC", &sig.to_uppercase()));
        assert!(!s.verify("example.org", "AbC", ""));
        let other = MediaSigner::new(&Token::new("hs-secret-other"));
        assert_ne!(other.sign("example.org", "AbC"), sig, "another hs_token");
        // The separator keeps (server, id) pairs apart.
        assert_ne!(s.sign("a.org", "bc"), s.sign("a.or", "gbc"));
        // The key is derived, not the token itself.
        assert_ne!(
            hex(&hmac(b"hs-secret", b"example.org/AbC")),
            sig,
            "signed with the derived key"
        );
        assert!(!format!("{s:?}").contains("hs-secret"));
    }

    #[test]
    fn paths_and_mxc_uris_are_parsed_strictly() {
        assert_eq!(
            parse_media_path("example.org/AbC_1-2"),
            Some(("example.org".into(), "AbC_1-2".into()))
        );
        assert_eq!(
            parse_media_path("example.org%3A8448/AbC"),
            Some(("example.org:8448".into(), "AbC".into()))
        );
        assert_eq!(
            parse_media_path("%5B::1%5D:8448/x"),
            Some(("[::1]:8448".into(), "x".into()))
        );
        for bad in [
            "",
            "example.org",
            "example.org/",
            "/AbC",
            "example.org/AbC/more",
            "example.org/..",
            "example.org/a%2Fb",
            "example.org/a%00b",
            "ex ample.org/AbC",
            "example.org%2Fx/AbC",
            "example.org/A%3FbC",
        ] {
            assert_eq!(parse_media_path(bad), None, "{bad:?}");
        }
        let long = format!("example.org/{}", "a".repeat(MAX_ID_LEN + 1));
        assert_eq!(parse_media_path(&long), None);
        assert_eq!(
            parse_mxc("mxc://example.org/AbC"),
            Some(("example.org", "AbC"))
        );
        assert_eq!(parse_mxc("mxc://example.org/a/b"), None);
        assert_eq!(parse_mxc("mxc:///AbC"), None);
        assert_eq!(parse_mxc("https://example.org/AbC"), None);
        assert_eq!(signature_of("a=1&sig=abc&b=2"), Some("abc"));
        assert_eq!(signature_of("sig="), None);
        assert_eq!(signature_of("xsig=abc"), None);
    }

    fn thumb(size: usize) -> Thumbnail {
        Thumbnail {
            content_type: "image/png".into(),
            bytes: vec![7u8; size].into(),
        }
    }

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let mut cache = MediaCache::new(3, 100);
        for key in ["a", "b", "c"] {
            cache.insert(key, thumb(10));
        }
        assert_eq!((cache.len(), cache.bytes()), (3, 30));
        assert!(cache.get("a").is_some(), "a is now the most recent");
        cache.insert("d", thumb(10));
        assert_eq!(cache.len(), 3, "entry bound");
        assert!(cache.get("b").is_none(), "the least recently used left");
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        cache.insert("big", thumb(85));
        assert!(cache.bytes() <= 100, "byte bound: {}", cache.bytes());
        assert!(cache.get("big").is_some());
        assert_eq!(
            (cache.len(), cache.bytes()),
            (2, 95),
            "the two least recently used made room"
        );
        assert!(cache.get("c").is_some(), "the most recently used stayed");
        cache.insert("huge", thumb(101));
        assert!(cache.get("huge").is_none(), "larger than the whole budget");
        assert!(cache.get("big").is_some());
        cache.insert("big", thumb(5));
        assert_eq!((cache.len(), cache.bytes()), (2, 15), "replaced in place");

        let mut cache = MediaCache::new(CACHE_ENTRIES, CACHE_BYTES);
        for i in 0..CACHE_ENTRIES * 3 {
            cache.insert(&i.to_string(), thumb(MAX_MEDIA_BYTES / 4));
        }
        assert!(cache.len() <= CACHE_ENTRIES);
        assert!(cache.bytes() <= CACHE_BYTES);
        assert_eq!(cache.bytes(), cache.len() * (MAX_MEDIA_BYTES / 4));
    }

    /// One canned answer of the stand-in homeserver.
    #[derive(Clone)]
    struct Canned {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    }

    /// A stand-in homeserver: `answer` decides by path; every request's
    /// path (with query) and `Authorization` header are recorded.
    async fn homeserver(
        answer: impl Fn(&str) -> Canned + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let target = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    let auth = head
                        .split("\r\n")
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                        .map(|(_, v)| v.trim().to_owned())
                        .unwrap_or_default();
                    log.lock().expect("log").push((target.clone(), auth));
                    let canned = answer(target.split('?').next().unwrap_or_default());
                    let head = format!(
                        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        canned.status,
                        canned.content_type,
                        canned.body.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(&canned.body).await;
                });
            }
        });
        (base, seen)
    }

    fn ok_png() -> Canned {
        Canned {
            status: 200,
            content_type: "image/png",
            body: PNG.to_vec(),
        }
    }

    fn matrix_error(status: u16, errcode: &str) -> Canned {
        Canned {
            status,
            content_type: "application/json",
            body: format!(r#"{{"errcode":"{errcode}","error":"x"}}"#).into_bytes(),
        }
    }

    fn endpoint(base: &str) -> MediaEndpoint {
        MediaEndpoint::new(
            PREFIX.into(),
            base,
            Token::new("as-secret"),
            &Token::new("hs-secret"),
        )
    }

    fn get(endpoint: &MediaEndpoint, server: &str, media: &str) -> HttpRequest {
        let url = endpoint
            .url_for("https://public.example", &format!("mxc://{server}/{media}"))
            .expect("a url");
        let path_and_query = url.strip_prefix("https://public.example").expect("base");
        let (path, query) = path_and_query.split_once('?').expect("query");
        HttpRequest::new("GET", path, query, Vec::new(), Vec::new())
    }

    fn header<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
        response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[tokio::test]
    async fn serves_signed_thumbnails_through_the_authenticated_api_and_caches_them() {
        let (base, seen) = homeserver(|path| {
            if path.starts_with("/_matrix/client/v1/media/thumbnail/example.org/AbC") {
                ok_png()
            } else {
                matrix_error(404, "M_NOT_FOUND")
            }
        })
        .await;
        let endpoint = endpoint(&base);
        let response = endpoint.handle(get(&endpoint, "example.org", "AbC")).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body, PNG);
        assert_eq!(header(&response, "content-type"), Some("image/png"));
        assert_eq!(
            header(&response, "cache-control"),
            Some("public, max-age=86400")
        );
        {
            let seen = seen.lock().expect("log");
            assert_eq!(seen.len(), 1);
            assert_eq!(
                seen[0].0,
                "/_matrix/client/v1/media/thumbnail/example.org/AbC?width=96&height=96&method=crop"
            );
            assert_eq!(seen[0].1, "Bearer as-secret");
        }
        // Again, and as HEAD: from the cache.
        let again = endpoint.handle(get(&endpoint, "example.org", "AbC")).await;
        assert_eq!((again.status, again.body.as_slice()), (200, PNG));
        let mut head = get(&endpoint, "example.org", "AbC");
        head.method = "HEAD".into();
        let head = endpoint.handle(head).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(header(&head, "content-type"), Some("image/png"));
        assert_eq!(seen.lock().expect("log").len(), 1, "served from the cache");

        // Unknown media: the homeserver's 404.
        let missing = endpoint.handle(get(&endpoint, "example.org", "Nope")).await;
        assert_eq!(missing.status, 404);
        // Other methods.
        let mut post = get(&endpoint, "example.org", "AbC");
        post.method = "POST".into();
        assert_eq!(endpoint.handle(post).await.status, 405);
    }

    #[tokio::test]
    async fn bad_signatures_and_malformed_paths_are_404_without_a_fetch() {
        let (base, seen) = homeserver(|_| ok_png()).await;
        let endpoint = endpoint(&base);
        let good = get(&endpoint, "example.org", "AbC");
        let sig = good.query.strip_prefix("sig=").expect("sig").to_owned();
        let other_sig = endpoint.signer.sign("example.org", "Other");
        let mut tampered = sig.clone().into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).expect("hex");
        let cases = [
            (good.path.clone(), String::new()),
            (good.path.clone(), "sig=".to_owned()),
            (good.path.clone(), format!("sig={tampered}")),
            (good.path.clone(), format!("sig={other_sig}")),
            (good.path.clone(), format!("sig={}", &sig[..32])),
            (format!("{PREFIX}example.org/AbC/x"), format!("sig={sig}")),
            (format!("{PREFIX}example.org"), format!("sig={sig}")),
            (format!("{PREFIX}example.org/../AbC"), format!("sig={sig}")),
            (
                "/elsewhere/example.org/AbC".to_owned(),
                format!("sig={sig}"),
            ),
        ];
        for (path, query) in cases {
            let response = endpoint
                .handle(HttpRequest::new(
                    "GET",
                    &path,
                    &query,
                    Vec::new(),
                    Vec::new(),
                ))
                .await;
            assert_eq!(response.status, 404, "{path}?{query}");
            assert!(response.body.is_empty(), "no detail");
        }
        assert!(seen.lock().expect("log").is_empty(), "nothing fetched");
        let response = endpoint.handle(good).await;
        assert_eq!(response.status, 200, "the untampered one works");
    }

    #[tokio::test]
    async fn falls_back_to_the_legacy_api_only_when_the_new_one_is_unknown() {
        for v1 in [
            matrix_error(404, "M_UNRECOGNIZED"),
            matrix_error(400, "M_UNRECOGNIZED"),
            Canned {
                status: 405,
                content_type: "text/plain",
                body: b"method not allowed".to_vec(),
            },
        ] {
            let (base, seen) = homeserver(move |path| {
                if path.starts_with("/_matrix/client/v1/") {
                    v1.clone()
                } else if path.starts_with("/_matrix/media/v3/thumbnail/example.org/AbC") {
                    ok_png()
                } else {
                    matrix_error(404, "M_NOT_FOUND")
                }
            })
            .await;
            let endpoint = endpoint(&base);
            let response = endpoint.handle(get(&endpoint, "example.org", "AbC")).await;
            assert_eq!((response.status, response.body.as_slice()), (200, PNG));
            let seen = seen.lock().expect("log");
            assert_eq!(seen.len(), 2);
            assert!(seen[1].0.starts_with("/_matrix/media/v3/thumbnail/"));
            assert_eq!(seen[1].1, "Bearer as-secret");
        }
        // A plain 404 on the new API is the answer: no fallback.
        let (base, seen) = homeserver(|path| {
            if path.starts_with("/_matrix/client/v1/") {
                matrix_error(404, "M_NOT_FOUND")
            } else {
                ok_png()
            }
        })
        .await;
        let endpoint = endpoint(&base);
        let response = endpoint.handle(get(&endpoint, "example.org", "AbC")).await;
        assert_eq!(response.status, 404);
        assert_eq!(seen.lock().expect("log").len(), 1);
    }

    #[tokio::test]
    async fn upstream_failures_and_oversized_thumbnails_are_502_and_not_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let (base, _) = homeserver(move |path| {
            counter.fetch_add(1, Ordering::SeqCst);
            if path.ends_with("/Big") {
                Canned {
                    status: 200,
                    content_type: "image/png",
                    body: vec![0u8; MAX_MEDIA_BYTES + 1],
                }
            } else if path.ends_with("/Exact") {
                Canned {
                    status: 200,
                    content_type: "image/png",
                    body: vec![1u8; MAX_MEDIA_BYTES],
                }
            } else {
                matrix_error(500, "M_UNKNOWN")
            }
        })
        .await;
        let endpoint = endpoint(&base);
        let big = endpoint.handle(get(&endpoint, "example.org", "Big")).await;
        assert_eq!(big.status, 502);
        assert!(big.body.is_empty());
        let exact = endpoint
            .handle(get(&endpoint, "example.org", "Exact"))
            .await;
        assert_eq!(exact.status, 200, "the cap itself is allowed");
        assert_eq!(exact.body.len(), MAX_MEDIA_BYTES);
        let broken = endpoint
            .handle(get(&endpoint, "example.org", "Broken"))
            .await;
        assert_eq!(broken.status, 502);
        let before = calls.load(Ordering::SeqCst);
        let again = endpoint
            .handle(get(&endpoint, "example.org", "Broken"))
            .await;
        assert_eq!(again.status, 502);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before + 1,
            "failures are not cached"
        );
        assert_eq!(endpoint.cache().len(), 1, "only the good one");

        // A homeserver that does not answer at all.
        let endpoint = MediaEndpoint::new(
            PREFIX.into(),
            "http://127.0.0.1:9",
            Token::new("as-secret"),
            &Token::new("hs-secret"),
        );
        let down = endpoint.handle(get(&endpoint, "example.org", "AbC")).await;
        assert_eq!(down.status, 502);
    }
}
