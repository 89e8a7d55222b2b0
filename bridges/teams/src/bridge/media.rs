//! Files and images, both ways.
//!
//! - **Inbound**: a chatMessage's inline images are `<img
//!   src="…/hostedContents/{id}/$value">` in its body; [`crate::graph`]
//!   reports each as an [`Attachment`] whose `url` is that Graph URL, and
//!   [`TeamsBridge::fetch_hosted`] downloads it with the application token
//!   (`GET …/messages/{id}/hostedContents/{id}/$value`,
//!   <https://learn.microsoft.com/graph/api/chatmessagehostedcontent-get>;
//!   `ChannelMessage.Read.All` / `Chat.Read.All`), at most
//!   [`FETCH_MAX_BYTES`]. Files (`reference` attachments) live in SharePoint
//!   or OneDrive, which this app has no permission to read, so the parser
//!   turns them into links in the text instead of attachments other
//!   platforms would fail to download.
//! - **Outbound**: Graph can only *refer* to a file already in SharePoint
//!   (protocols/teams.md §5), but it takes images inline: each one goes into
//!   the POST's `hostedContents` with a `@microsoft.graph.temporaryId` that
//!   the body names as `<img src="../hostedContents/{id}/$value">`
//!   (<https://learn.microsoft.com/graph/api/chatmessage-post>, example
//!   "Send inline images along with the message"). PNG, JPEG and GIF images
//!   (recognised by their bytes, not by the name) up to
//!   [`INLINE_IMAGE_MAX_BYTES`] are sent so. Everything else becomes a line
//!   of text: `📎 name (size)` linking to the origin's URL when it is a web
//!   address, else `📎 name (size) — not transferable`.

use super::TeamsBridge;
use crate::html;
use switchboard_model::{
    Attachment, BridgeError, BridgeId, Inline, MediaSource, Message, OutboundOp,
};

/// The largest image sent inline. protocols/teams.md gives no size for
/// `hostedContents`; Graph refuses request bodies over 4 MB, and base64
/// makes 3 MB of image 4,000,000 bytes of JSON, so 3,000,000 bytes (Graph's
/// own rule of thumb for single-request attachments) is the cap.
pub const INLINE_IMAGE_MAX_BYTES: u64 = 3_000_000;

/// The most base64 one POST carries (Graph's 4 MiB request limit minus room
/// for the message itself).
pub const POST_HOSTED_BUDGET: usize = 4 * 1024 * 1024 - 64 * 1024;

/// The largest hosted content [`TeamsBridge::fetch_hosted`] downloads.
pub const FETCH_MAX_BYTES: usize = 25 * 1024 * 1024;

/// An image to send as a `hostedContents` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InlineImage {
    /// The file name (the `alt` text).
    pub name: String,
    /// `image/png`, `image/jpeg` or `image/gif`, from the bytes.
    pub mime: &'static str,
    /// The bytes, base64.
    pub base64: String,
}

impl InlineImage {
    /// The `<img>` naming temporary id `n`.
    pub fn img(&self, n: usize) -> String {
        format!(
            "<img src=\"../hostedContents/{n}/$value\" alt=\"{}\">",
            super::escape(&self.name)
        )
    }

    /// The `hostedContents[]` entry with temporary id `n`.
    pub fn hosted(&self, n: usize) -> serde_json::Value {
        serde_json::json!({
            "@microsoft.graph.temporaryId": n.to_string(),
            "contentBytes": self.base64,
            "contentType": self.mime,
        })
    }
}

/// What becomes of a message's attachments in Teams.
#[derive(Debug, Default)]
pub(super) struct Prepared {
    /// Images sent inline, in order.
    pub images: Vec<InlineImage>,
    /// One line per attachment shown as text (a link or a note).
    pub lines: Vec<Vec<Inline>>,
}

/// The image type of `bytes` by their signature.
pub(super) fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]) {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else {
        None
    }
}

/// Whether an attachment may become an inline image (it is an image and not
/// known to be too large); only its bytes decide in the end.
pub(super) fn inline_candidate(a: &Attachment) -> bool {
    a.mime.to_ascii_lowercase().starts_with("image/")
        && a.size.is_none_or(|s| s <= INLINE_IMAGE_MAX_BYTES)
}

/// `1.2 MB`, `340 KB`, `12 bytes`.
pub(super) fn human_size(bytes: u64) -> String {
    const KB: u64 = 1000;
    const MB: u64 = 1000 * KB;
    const GB: u64 = 1000 * MB;
    let tenth = |n: u64, unit: u64| {
        let t = (n * 10 + unit / 2) / unit;
        format!("{}.{}", t / 10, t % 10)
    };
    match bytes {
        b if b >= GB => format!("{} GB", tenth(b, GB)),
        b if b >= MB => format!("{} MB", tenth(b, MB)),
        b if b >= KB => format!("{} KB", (b + KB / 2) / KB),
        1 => "1 byte".to_owned(),
        b => format!("{b} bytes"),
    }
}

/// The text line standing for an attachment: a link to the origin's URL
/// when it is a web address, else a note that it cannot be brought over.
pub(super) fn attachment_line(a: &Attachment, size: Option<u64>) -> Vec<Inline> {
    let name = if a.name.trim().is_empty() {
        "file"
    } else {
        a.name.trim()
    };
    let size = size.or(a.size).map(human_size);
    let url = a.url.trim();
    let web = (url.starts_with("https://") || url.starts_with("http://")) && html::safe_url(url);
    let mut line = vec![Inline::text("📎 ")];
    if web {
        line.push(Inline::Link {
            url: url.to_owned(),
            content: vec![Inline::text(name)],
        });
        if let Some(size) = size {
            line.push(Inline::text(format!(" ({size})")));
        }
    } else {
        line.push(Inline::text(match size {
            Some(size) => format!("{name} ({size}) — not transferable"),
            None => format!("{name} — not transferable"),
        }));
    }
    line
}

/// Appends attachment lines to a body, one paragraph each.
pub(super) fn with_lines(
    mut body: switchboard_model::RichText,
    lines: &[Vec<Inline>],
) -> switchboard_model::RichText {
    for line in lines {
        body.blocks.push(switchboard_model::Block::Paragraph {
            content: line.clone(),
        });
    }
    body
}

/// Standard base64 with padding (RFC 4648 §4), as `contentBytes` wants.
pub(super) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl TeamsBridge {
    /// Decides, for each of `message`'s attachments, whether it goes inline
    /// (fetching its bytes from the origin through `media`) or becomes a
    /// line of text. A file that is gone, refused or not an image becomes a
    /// line; any other failure to fetch is returned, so that the op is
    /// retried before anything is posted.
    pub(super) async fn prepare_attachments(
        &self,
        op: &OutboundOp,
        message: &Message,
        media: &dyn MediaSource,
    ) -> Result<Prepared, BridgeError> {
        let mut out = Prepared::default();
        let origin: BridgeId = op
            .origin
            .as_ref()
            .map_or_else(|| self.id.clone(), |o| o.bridge.clone());
        for a in &message.attachments {
            if !inline_candidate(a) {
                out.lines.push(attachment_line(a, None));
                continue;
            }
            let bytes = match media.fetch(&origin, a).await {
                Ok(bytes) => bytes,
                Err(e @ (BridgeError::NotFound { .. } | BridgeError::Permanent { .. })) => {
                    tracing::warn!(bridge = %self.id, op = %op.id, error = %e, "An image could not be fetched from its origin; posting a note instead.");
                    out.lines.push(attachment_line(a, None));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let size = bytes.len() as u64;
            match sniff_image(&bytes) {
                Some(mime) if size <= INLINE_IMAGE_MAX_BYTES => out.images.push(InlineImage {
                    name: a.name.clone(),
                    mime,
                    base64: base64(&bytes),
                }),
                _ => out.lines.push(attachment_line(a, Some(size))),
            }
        }
        Ok(out)
    }

    /// Downloads an inline image this bridge reported
    /// (`GET …/hostedContents/{id}/$value` with the application token), at
    /// most [`FETCH_MAX_BYTES`]. Only URLs under the Graph base are fetched,
    /// so the token never goes elsewhere.
    pub(super) async fn fetch_hosted(
        &self,
        attachment: &Attachment,
    ) -> Result<Vec<u8>, BridgeError> {
        let url = attachment.url.trim();
        let base = self.graph.base();
        let under_base = url
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'));
        if !under_base || !url.contains("/hostedContents/") || !url.ends_with("/$value") {
            return Err(BridgeError::permanent(format!(
                "{} is not a Teams inline image this connector can download",
                attachment.name
            )));
        }
        let path = url.get(base.len()..).unwrap_or_default().to_owned();
        let token = self.app.token().await?;
        let mut response = self
            .graph
            .http()
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| BridgeError::transient(format!("GET {path}: {}", e.without_url())))?;
        let status = response.status().as_u16();
        tracing::debug!(method = "GET", %path, status, "Graph call.");
        match status {
            200..=299 => {}
            401 => return Err(BridgeError::auth(format!("GET {path}: HTTP 401"))),
            404 => return Err(BridgeError::not_found(format!("GET {path}"))),
            429 | 503 => {
                let after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .map_or(std::time::Duration::from_secs(1), |v| {
                        std::time::Duration::from_secs_f64(v.min(3600.0))
                    });
                return Err(BridgeError::rate_limited(after));
            }
            s if s >= 500 => {
                return Err(BridgeError::transient(format!("GET {path}: HTTP {s}")));
            }
            s => return Err(BridgeError::permanent(format!("GET {path}: HTTP {s}"))),
        }
        let too_large = || {
            BridgeError::permanent(format!(
                "{} is larger than {FETCH_MAX_BYTES} bytes",
                attachment.name
            ))
        };
        if response
            .content_length()
            .is_some_and(|n| n > FETCH_MAX_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| BridgeError::transient(format!("GET {path}: {}", e.without_url())))?
        {
            if bytes.len() + chunk.len() > FETCH_MAX_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0xfd]), "//79");
    }

    #[test]
    fn images_are_recognised_by_their_bytes() {
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\n rest"), Some("image/png"));
        assert_eq!(sniff_image(&[0xff, 0xd8, 0xff, 0xe0]), Some("image/jpeg"));
        assert_eq!(sniff_image(b"GIF89a..."), Some("image/gif"));
        assert_eq!(sniff_image(b"<svg xmlns=..."), None);
        assert_eq!(sniff_image(b""), None);
    }

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(1_500), "2 KB");
        assert_eq!(human_size(340_000), "340 KB");
        assert_eq!(human_size(1_250_000), "1.3 MB");
        assert_eq!(human_size(12_000_000_000), "12.0 GB");
    }

    #[test]
    fn attachment_lines_link_web_urls_and_note_the_rest() {
        let web = Attachment::new(
            "F1",
            "report.pdf",
            "application/pdf",
            "https://files.example/F1",
        )
        .with_size(2_400_000);
        let line = attachment_line(&web, None);
        assert_eq!(
            line,
            vec![
                Inline::text("📎 "),
                Inline::Link {
                    url: "https://files.example/F1".into(),
                    content: vec![Inline::text("report.pdf")],
                },
                Inline::text(" (2.4 MB)"),
            ]
        );
        let mxc = Attachment::new("m", "cat.png", "image/png", "mxc://example.org/abc");
        assert_eq!(
            attachment_line(&mxc, Some(5_000_000)),
            vec![
                Inline::text("📎 "),
                Inline::text("cat.png (5.0 MB) — not transferable")
            ]
        );
        let js = Attachment::new("j", "x", "text/plain", "javascript:alert(1)");
        assert_eq!(
            attachment_line(&js, None)[1],
            Inline::text("x — not transferable")
        );
    }

    #[test]
    fn only_small_images_are_inline_candidates() {
        let a = |mime: &str, size: Option<u64>| {
            let a = Attachment::new("i", "n", mime, "u");
            match size {
                Some(s) => a.with_size(s),
                None => a,
            }
        };
        assert!(inline_candidate(&a("image/png", None)));
        assert!(inline_candidate(&a(
            "IMAGE/JPEG",
            Some(INLINE_IMAGE_MAX_BYTES)
        )));
        assert!(!inline_candidate(&a(
            "image/png",
            Some(INLINE_IMAGE_MAX_BYTES + 1)
        )));
        assert!(!inline_candidate(&a("application/pdf", Some(10))));
    }
}
