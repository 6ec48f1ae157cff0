use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Daily limit warm-up: the day's limit starts at `start` and grows by `increase_percent`
/// each day the instance sent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    pub start: u32,
    pub increase_percent: u32,
}

impl Warmup {
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.start == 0 || self.start > 100_000 {
            Err("start must be between 1 and 100000")
        } else if self.increase_percent > 1000 {
            Err("increase_percent must be between 0 and 1000")
        } else {
            Ok(())
        }
    }
}

/// Where a new instance's api key comes from.
pub enum KeySource {
    /// An instance that exists on the gateway: its key, in clear (encrypted before it is
    /// stored).
    Given(String),
    /// Arauto creates the instance on the gateway with its global key (this one, else
    /// `gateway.global_api_key`; used once, never stored) and stores the key the gateway
    /// issues for it.
    Create { global_api_key: Option<String> },
}

/// A new instance, parsed: `daily_limit` sends per local day.
pub struct InstanceInput {
    pub name: String,
    pub api_url: String,
    pub key: KeySource,
    pub instance_name: String,
    pub daily_limit: Option<i32>,
    pub warmup: Option<Warmup>,
}

/// The events an instance Arauto creates posts to its webhook (`EVOLUTION.md`, "Webhooks").
pub const WEBHOOK_EVENTS: [&str; 3] = ["MESSAGES_UPDATE", "MESSAGES_UPSERT", "CONNECTION_UPDATE"];

/// The path of an instance's webhook, relative to the API's base URL.
pub fn webhook_path(token: &str) -> String {
    format!("/api/v1/webhooks/evolution/{token}")
}

/// The URL the gateway posts an instance's events to: `server.public_url` (`public_url`),
/// else `base_url` (the scheme and host a request to this API reached), + its
/// [`webhook_path`].
pub fn webhook_url(public_url: Option<&str>, base_url: &str, token: &str) -> String {
    let public = public_url.unwrap_or(base_url);
    format!("{}{}", public.trim_end_matches('/'), webhook_path(token))
}

/// A parsed change of an instance: `None` keeps a field, `Some(None)` clears a nullable one.
#[derive(Default)]
pub struct InstancePatch {
    pub name: Option<String>,
    pub api_url: Option<String>,
    pub api_key: Option<String>,
    pub instance_name: Option<String>,
    pub daily_limit: Option<Option<i32>>,
    pub warmup: Option<Option<Warmup>>,
}

impl InstancePatch {
    /// It points at another number or gateway: what was heard of the old one is void.
    pub fn changes_target(&self) -> bool {
        self.api_url.is_some() || self.api_key.is_some() || self.instance_name.is_some()
    }

    /// It changes the sending limits: waiting campaigns are planned again.
    pub fn changes_limits(&self) -> bool {
        self.daily_limit.is_some() || self.warmup.is_some()
    }
}

/// An http(s) base URL without query or fragment, stored without a trailing slash.
pub fn parse_api_url(raw: &str) -> Result<String, &'static str> {
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| "must be an absolute http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an absolute http(s) URL");
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment");
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The gateway's instance name: used in URL paths, so no slashes or spaces.
pub fn parse_instance_name(raw: &str) -> Result<String, &'static str> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 100 {
        return Err("must have 1 to 100 characters");
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err("may contain only letters, digits, '-', '_' and '.'");
    }
    Ok(s.to_owned())
}

pub fn parse_api_key(raw: &str) -> Result<String, &'static str> {
    let s = raw.trim();
    if s.is_empty() || s.len() > 512 {
        Err("must have 1 to 512 characters")
    } else {
        Ok(s.to_owned())
    }
}

pub fn parse_daily_limit(n: i64) -> Result<i32, &'static str> {
    if (1..=100_000).contains(&n) {
        Ok(n as i32)
    } else {
        Err("must be between 1 and 100000")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_must_be_http_and_lose_their_trailing_slash() {
        assert_eq!(
            parse_api_url("http://evolution:8080/").unwrap(),
            "http://evolution:8080"
        );
        assert!(parse_api_url("ftp://x").is_err());
        assert!(parse_api_url("evolution:8080").is_err());
        assert!(parse_api_url("http://x/?a=1").is_err());
    }

    #[test]
    fn instance_names_are_url_safe() {
        assert!(parse_instance_name("loja-1").is_ok());
        assert!(parse_instance_name("loja 1").is_err());
        assert!(parse_instance_name("a/b").is_err());
    }
}
