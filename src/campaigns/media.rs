//! Checking a campaign's media URLs before anything is sent (issue 11, "Media"): each URL
//! must answer, with a content type of its declared kind's family and a size under
//! WhatsApp's limit for that kind. Checked when a campaign is created or edited and again
//! when it is started (422 naming `messages[i].media.url`), and when a media send fails
//! (the worker then tells a missing file from a refused recipient).
//!
//! # How a URL is asked
//!
//! One `GET` with `Range: bytes=0-0` (redirects followed, at most 5): a server that honours
//! ranges answers 206 with the total size in `Content-Range`, one that does not answers 200
//! with `Content-Length`; only the headers are read. The content type is the answer's
//! `Content-Type`, or the one the URL's extension implies when the answer gives none or
//! `application/octet-stream` (common on object stores). A size the answer does not give is
//! not held against the URL.

use futures_util::future::join_all;
use std::time::Duration;

use super::domain::{Media, MediaKind, Message};
use crate::config::MediaSettings;
use crate::error::FieldError;

/// The pause reason when a campaign's media keeps failing at send time.
pub const MEDIA_UNAVAILABLE: &str = "media_unavailable";

const MIB: u64 = 1024 * 1024;

/// WhatsApp's size limit for a kind of media, in bytes.
///
/// Source: Meta, WhatsApp Cloud API reference, "Media — Supported media types"
/// (<https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media#supported-media-types>):
/// audio 16 MB, document 100 MB, image 5 MB, video 16 MB (MB read as MiB). The Baileys
/// connection Evolution uses goes through the same WhatsApp servers.
pub fn max_bytes(kind: MediaKind) -> u64 {
    match kind {
        MediaKind::Image => 5 * MIB,
        MediaKind::Video => 16 * MIB,
        MediaKind::Audio => 16 * MIB,
        MediaKind::Document => 100 * MIB,
    }
}

/// Whether a MIME type (`image/png`, parameters ignored) belongs to `kind`'s family:
/// `image/*`, `video/*`, `audio/*` (and `application/ogg`), and for documents
/// `application/*` or `text/*`.
pub fn family_matches(kind: MediaKind, mime: &str) -> bool {
    let essence = essence(mime);
    let top = essence.split('/').next().unwrap_or("");
    match kind {
        MediaKind::Image => top == "image",
        MediaKind::Video => top == "video",
        MediaKind::Audio => top == "audio" || essence == "application/ogg",
        MediaKind::Document => top == "application" || top == "text",
    }
}

/// `image/png; charset=x` → `image/png`, lower case.
fn essence(mime: &str) -> String {
    mime.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// The MIME type a URL's extension implies (`…/promo.PDF?x=1` → `application/pdf`).
pub fn guess_from_url(url: &str) -> Option<String> {
    let path = reqwest::Url::parse(url).ok()?.path().to_owned();
    mime_guess::from_path(path).first().map(|m| m.essence_str().to_owned())
}

/// The last path segment of a URL, percent-decoded (`…/Tabela%20de%20pre%C3%A7os.pdf` →
/// `Tabela de preços.pdf`); `None` for a URL ending in `/`.
pub fn file_name_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let last = parsed.path_segments()?.next_back().filter(|s| !s.is_empty())?;
    let decoded = percent_encoding::percent_decode_str(last).decode_utf8().ok()?;
    Some(decoded.into_owned()).filter(|s| !s.trim().is_empty())
}

/// What a media URL answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probed {
    /// The content type's essence (`image/png`), from the answer or the extension.
    pub content_type: Option<String>,
    /// The file's size in bytes, when the answer says it.
    pub size: Option<u64>,
}

/// Why a media URL cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaProblem {
    #[error("cannot be reached: {0}")]
    Unreachable(String),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("has no content type (neither in the answer nor from its extension)")]
    NoContentType,
    #[error("is {found}, not {expected}")]
    WrongType { found: String, expected: &'static str },
    #[error("is {size} bytes, over WhatsApp's {max} bytes for {kind}")]
    TooLarge { size: u64, max: u64, kind: &'static str },
}

impl MediaProblem {
    /// The URL itself is unusable (nothing to do with the content).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unreachable(_) | Self::Status(_))
    }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "an image",
        MediaKind::Video => "a video",
        MediaKind::Document => "a document",
        MediaKind::Audio => "audio",
    }
}

/// Whether what `url` answered fits `kind` (type family, size limit).
pub fn verdict(kind: MediaKind, probed: &Probed) -> Result<(), MediaProblem> {
    let Some(found) = &probed.content_type else {
        return Err(MediaProblem::NoContentType);
    };
    if !family_matches(kind, found) {
        return Err(MediaProblem::WrongType {
            found: found.clone(),
            expected: kind_name(kind),
        });
    }
    let max = max_bytes(kind);
    match probed.size {
        Some(size) if size > max => Err(MediaProblem::TooLarge {
            size,
            max,
            kind: kind_name(kind),
        }),
        _ => Ok(()),
    }
}

/// Asks media URLs what they serve; cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct MediaChecker {
    http: reqwest::Client,
    enabled: bool,
    /// `egress.allow_private_networks`.
    allow_private: bool,
}

impl MediaChecker {
    /// A checker with its own HTTP client; unless `allow_private` it reaches only public
    /// addresses, redirects included ([`crate::egress`]).
    pub fn new(settings: &MediaSettings, allow_private: bool) -> anyhow::Result<Self> {
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .connect_timeout(Duration::from_millis(settings.timeout_ms.min(5_000)))
            .redirect(if allow_private {
                reqwest::redirect::Policy::limited(5)
            } else {
                crate::egress::redirect_policy(5)
            })
            .user_agent(concat!("arauto/", env!("CARGO_PKG_VERSION"), " (media check)"));
        let http = crate::egress::guard(builder, allow_private)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the media HTTP client: {e}"))?;
        Ok(Self {
            http,
            enabled: settings.check,
            allow_private,
        })
    }

    /// Whether checks run at all (`media.check`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// One ranged `GET` of `url` (see the module documentation).
    pub async fn probe(&self, url: &str) -> Result<Probed, MediaProblem> {
        if !self.allow_private {
            let parsed = reqwest::Url::parse(url).map_err(|e| MediaProblem::Unreachable(e.to_string()))?;
            crate::egress::check_url(&parsed).map_err(MediaProblem::Unreachable)?;
        }
        let answer = self
            .http
            .get(url)
            .header(reqwest::header::RANGE, "bytes=0-0")
            .send()
            .await
            .map_err(|e| MediaProblem::Unreachable(root_cause(&e)))?;
        let status = answer.status();
        if !status.is_success() {
            return Err(MediaProblem::Status(status.as_u16()));
        }
        let header = |name: reqwest::header::HeaderName| {
            answer
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let size = if status == reqwest::StatusCode::PARTIAL_CONTENT {
            header(reqwest::header::CONTENT_RANGE)
                .and_then(|r| r.rsplit('/').next().and_then(|total| total.trim().parse().ok()))
        } else {
            header(reqwest::header::CONTENT_LENGTH).and_then(|l| l.trim().parse().ok())
        };
        let content_type = header(reqwest::header::CONTENT_TYPE)
            .map(|t| essence(&t))
            .filter(|t| !t.is_empty() && t != "application/octet-stream")
            .or_else(|| guess_from_url(url));
        // Only the headers were wanted: dropping the answer closes its body unread.
        drop(answer);
        Ok(Probed { content_type, size })
    }

    /// Probes `media` and judges it; `Ok` with the content type found.
    pub async fn check(&self, media: &Media) -> Result<Option<String>, MediaProblem> {
        let probed = self.probe(&media.url).await?;
        verdict(media.kind, &probed)?;
        Ok(probed.content_type)
    }

    /// Checks every variant's media at once; errors name `messages[i].media.url`. On
    /// success each media's `mimetype` is set to what its URL serves (sent to the gateway
    /// with it). Does nothing when checks are off.
    pub async fn check_messages(&self, messages: &mut [Message]) -> Vec<FieldError> {
        if !self.enabled {
            return vec![];
        }
        let checks = messages.iter().enumerate().filter_map(|(i, m)| {
            m.media.as_ref().map(|media| {
                let media = media.clone();
                async move { (i, self.check(&media).await) }
            })
        });
        let mut errors = vec![];
        for (i, result) in join_all(checks).await {
            match result {
                Ok(mimetype) => {
                    if let Some(media) = messages[i].media.as_mut() {
                        media.mimetype = mimetype.or_else(|| media.mimetype.take());
                    }
                }
                Err(problem) => errors.push(FieldError::new(
                    format!("messages[{i}].media.url"),
                    format!("the media {problem}"),
                )),
            }
        }
        errors
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {

    #[tokio::test]
    async fn with_private_networks_off_no_private_address_is_asked() {
        let settings = crate::config::MediaSettings::default();
        let checker = super::MediaChecker::new(&settings, false).unwrap();
        for url in [
            "http://169.254.169.254/latest/meta-data/x.png",
            "http://127.0.0.1:9/a.png",
            "http://[::1]:9/a.png",
            "http://localhost:9/a.png",
        ] {
            match checker.probe(url).await {
                Err(super::MediaProblem::Unreachable(why)) => {
                    assert!(why.contains("public"), "{url}: {why}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }

    use super::*;

    #[test]
    fn families_follow_the_declared_kind() {
        assert!(family_matches(MediaKind::Image, "image/png"));
        assert!(family_matches(MediaKind::Image, "IMAGE/JPEG; charset=binary"));
        assert!(!family_matches(MediaKind::Image, "video/mp4"));
        assert!(family_matches(MediaKind::Video, "video/mp4"));
        assert!(family_matches(MediaKind::Audio, "audio/ogg"));
        assert!(family_matches(MediaKind::Audio, "application/ogg"));
        assert!(family_matches(MediaKind::Document, "application/pdf"));
        assert!(family_matches(MediaKind::Document, "text/csv"));
        assert!(!family_matches(MediaKind::Document, "image/png"));
    }

    #[test]
    fn sizes_over_whatsapps_limits_are_refused() {
        let probed = |t: &str, size| Probed {
            content_type: Some(t.into()),
            size: Some(size),
        };
        assert_eq!(verdict(MediaKind::Image, &probed("image/png", 5 * MIB)), Ok(()));
        assert!(matches!(
            verdict(MediaKind::Image, &probed("image/png", 5 * MIB + 1)),
            Err(MediaProblem::TooLarge { .. })
        ));
        assert_eq!(
            verdict(MediaKind::Document, &probed("application/pdf", 100 * MIB)),
            Ok(())
        );
        assert!(verdict(MediaKind::Video, &probed("video/mp4", 17 * MIB)).is_err());
        let unknown_size = Probed {
            content_type: Some("image/png".into()),
            size: None,
        };
        assert_eq!(verdict(MediaKind::Image, &unknown_size), Ok(()));
    }

    #[test]
    fn extensions_and_file_names_come_from_the_url() {
        assert_eq!(
            guess_from_url("https://cdn.example.com/a/Promo.PDF?v=2").as_deref(),
            Some("application/pdf")
        );
        assert_eq!(guess_from_url("https://cdn.example.com/a/b").as_deref(), None);
        assert_eq!(
            file_name_of("https://cdn.example.com/x/Tabela%20de%20pre%C3%A7os.pdf?v=1").as_deref(),
            Some("Tabela de preços.pdf")
        );
        assert_eq!(file_name_of("https://cdn.example.com/x/"), None);
    }
}
