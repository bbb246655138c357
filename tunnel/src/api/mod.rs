//! A small typed client for the Cloudflare v4 API.
//!
//! Why not the `cloudflare` crate: see the crate README. In short, its error
//! type drops the response headers (no `Retry-After`), it covers only tunnels,
//! DNS and Workers secrets of the calls we need, and its custom-environment
//! URL handling panics on a bad URL. This client keeps the same shape (one
//! type per call implementing [`Endpoint`]) in a few hundred lines.

pub mod endpoints;

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use crate::secret::SecretString;

pub use reqwest::Method;

/// The production API base.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4/";

/// One API call: a typed description of the request and its `result`.
pub trait Endpoint {
    /// The type of the envelope's `result`.
    type Result: DeserializeOwned;
    /// HTTP method.
    fn method(&self) -> Method;
    /// Path relative to the base URL, without a leading slash.
    fn path(&self) -> String;
    /// Query parameters.
    fn query(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// JSON body.
    fn body(&self) -> Option<serde_json::Value> {
        None
    }
    /// Short description for messages ("list tunnels").
    fn describe(&self) -> String;
    /// The token permission this call needs, as the dashboard names it.
    fn permission(&self) -> &'static str;
}

/// One entry of the envelope's `errors` or `messages`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ApiMessage {
    /// Numeric code.
    pub code: i64,
    /// Human text.
    #[serde(default)]
    pub message: String,
}

/// Pagination info of list responses.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ResultInfo {
    /// Current page (1-based).
    #[serde(default)]
    pub page: u32,
    /// Page size.
    #[serde(default)]
    pub per_page: u32,
    /// Items on this page.
    #[serde(default)]
    pub count: u32,
    /// Total items.
    #[serde(default)]
    pub total_count: u32,
    /// Total pages.
    #[serde(default)]
    pub total_pages: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    result: Option<T>,
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

/// An API failure.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request did not get an HTTP response.
    #[error("{what}: could not reach the Cloudflare API: {source}")]
    Transport {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with `success: false` or an error status.
    #[error("{what}: Cloudflare API error (HTTP {status}): {}", fmt_errors(.errors))]
    Api {
        what: String,
        status: u16,
        errors: Vec<ApiMessage>,
        permission: &'static str,
    },
    /// The response was not the documented shape.
    #[error("{what}: unexpected response from the Cloudflare API: {detail}")]
    Decode { what: String, detail: String },
    /// 429/5xx persisted through every retry.
    #[error("{what}: gave up after {attempts} attempts (last HTTP {status}); try again later")]
    Exhausted {
        what: String,
        status: u16,
        attempts: u32,
    },
}

fn fmt_errors(errors: &[ApiMessage]) -> String {
    if errors.is_empty() {
        return "no error detail".into();
    }
    errors
        .iter()
        .map(|e| format!("{} ({})", e.message, e.code))
        .collect::<Vec<_>>()
        .join("; ")
}

impl ApiError {
    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Api { status, .. } | ApiError::Exhausted { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the API reported this error code.
    pub fn has_code(&self, code: i64) -> bool {
        matches!(self, ApiError::Api { errors, .. } if errors.iter().any(|e| e.code == code))
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// API base URL (ends with `/`).
    pub base_url: Url,
    /// Bearer token.
    pub token: SecretString,
    /// Attempts per call for retryable failures.
    pub max_attempts: u32,
    /// Upper bound on one wait between attempts.
    pub max_backoff: Duration,
}

impl ClientConfig {
    /// Settings with defaults for retries.
    pub fn new(base_url: Url, token: SecretString) -> Self {
        Self {
            base_url,
            token,
            max_attempts: 5,
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The API client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    config: ClientConfig,
}

enum Body {
    None,
    Json(serde_json::Value),
    Raw(Vec<u8>),
}

struct RawResponse {
    status: u16,
    body: Vec<u8>,
}

impl Client {
    /// A client with the given settings.
    pub fn new(mut config: ClientConfig) -> Result<Self, ApiError> {
        if !config.base_url.path().ends_with('/') {
            let p = format!("{}/", config.base_url.path());
            config.base_url.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("shopedge-tunnel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ApiError::Transport {
                what: "build HTTP client".into(),
                source,
            })?;
        Ok(Self { http, config })
    }

    /// The configured base URL.
    pub fn base_url(&self) -> &Url {
        &self.config.base_url
    }

    /// Sends one call and returns its `result`.
    pub async fn send<E: Endpoint>(&self, ep: &E) -> Result<E::Result, ApiError> {
        let (result, _) = self.send_page(ep, None).await?;
        Ok(result)
    }

    /// Sends a list call page by page and concatenates the results.
    pub async fn list_all<E, T>(&self, ep: &E) -> Result<Vec<T>, ApiError>
    where
        E: Endpoint<Result = Vec<T>>,
    {
        let mut all = Vec::new();
        let mut page = 1u32;
        loop {
            let (items, info) = self.send_page(ep, Some(page)).await?;
            let n = items.len();
            all.extend(items);
            let more = match info {
                Some(ResultInfo {
                    total_pages: Some(tp),
                    ..
                }) => page < tp,
                Some(info) if info.total_count > 0 => (all.len() as u32) < info.total_count,
                _ => false,
            };
            if !more || n == 0 || page >= 10_000 {
                return Ok(all);
            }
            page += 1;
        }
    }

    async fn send_page<E: Endpoint>(
        &self,
        ep: &E,
        page: Option<u32>,
    ) -> Result<(E::Result, Option<ResultInfo>), ApiError> {
        let what = ep.describe();
        let mut query = ep.query();
        if let Some(p) = page {
            query.push(("page", p.to_string()));
            query.push(("per_page", "50".to_string()));
        }
        let body = match ep.body() {
            Some(v) => Body::Json(v),
            None => Body::None,
        };
        let raw = self
            .execute(
                &what,
                ep.method(),
                &ep.path(),
                &query,
                body,
                ep.permission(),
            )
            .await?;
        let env: Envelope<E::Result> =
            serde_json::from_slice(&raw.body).map_err(|e| ApiError::Decode {
                what: what.clone(),
                detail: e.to_string(),
            })?;
        if !env.success {
            return Err(ApiError::Api {
                what,
                status: raw.status,
                errors: env.errors,
                permission: ep.permission(),
            });
        }
        let result = match env.result {
            Some(r) => r,
            // DELETE and similar answer `"result": null`; types that accept
            // null (Value, Option, ()) are fine, others are a protocol error.
            None => {
                serde_json::from_value(serde_json::Value::Null).map_err(|_| ApiError::Decode {
                    what: what.clone(),
                    detail: "success without a result".into(),
                })?
            }
        };
        Ok((result, env.result_info))
    }

    /// GET of a raw (non-envelope) value, e.g. a Workers KV value.
    /// `Ok(None)` on 404.
    pub async fn get_raw(
        &self,
        what: &str,
        path: &str,
        permission: &'static str,
    ) -> Result<Option<Vec<u8>>, ApiError> {
        match self
            .execute(what, Method::GET, path, &[], Body::None, permission)
            .await
        {
            Ok(r) => Ok(Some(r.body)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// PUT of a raw body; the response is an envelope with a null result.
    pub async fn put_raw(
        &self,
        what: &str,
        path: &str,
        body: Vec<u8>,
        permission: &'static str,
    ) -> Result<(), ApiError> {
        self.execute(what, Method::PUT, path, &[], Body::Raw(body), permission)
            .await
            .map(|_| ())
    }

    /// Sends with retries: 429 (honouring `Retry-After`) for every method;
    /// 5xx and transport errors only for methods that are safe to repeat
    /// (GET, PUT, PATCH, DELETE). A POST that failed with 5xx is not
    /// repeated: the next reconcile run observes whether it took effect.
    async fn execute(
        &self,
        what: &str,
        method: Method,
        path: &str,
        query: &[(&'static str, String)],
        body: Body,
        permission: &'static str,
    ) -> Result<RawResponse, ApiError> {
        let mut url = self
            .config
            .base_url
            .join(path.trim_start_matches('/'))
            .map_err(|e| ApiError::Decode {
                what: what.to_string(),
                detail: format!("bad path {path}: {e}"),
            })?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        let repeatable = method != Method::POST;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), url.clone()).header(
                AUTHORIZATION,
                format!("Bearer {}", self.config.token.expose()),
            );
            match &body {
                Body::None => {}
                Body::Json(v) => {
                    req = req
                        .header(CONTENT_TYPE, "application/json")
                        .body(v.to_string())
                }
                Body::Raw(b) => {
                    req = req
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .body(b.clone())
                }
            }
            tracing::debug!(%method, path, attempt, "cloudflare api call");
            let resp = match req.send().await {
                Ok(r) => r,
                Err(source) => {
                    if repeatable && attempt < self.config.max_attempts {
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        continue;
                    }
                    return Err(ApiError::Transport {
                        what: what.to_string(),
                        source,
                    });
                }
            };
            let status = resp.status().as_u16();
            let retry_after = retry_after(resp.headers());
            let bytes = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(source) => {
                    if repeatable && attempt < self.config.max_attempts {
                        tokio::time::sleep(self.backoff(attempt, None)).await;
                        continue;
                    }
                    return Err(ApiError::Transport {
                        what: what.to_string(),
                        source,
                    });
                }
            };
            let retryable = status == 429 || (status >= 500 && repeatable);
            if retryable {
                if attempt < self.config.max_attempts {
                    let wait = self.backoff(attempt, retry_after);
                    tracing::warn!(what, status, ?wait, "Cloudflare API asked us to retry");
                    tokio::time::sleep(wait).await;
                    continue;
                }
                return Err(ApiError::Exhausted {
                    what: what.to_string(),
                    status,
                    attempts: attempt,
                });
            }
            if (200..300).contains(&status) {
                return Ok(RawResponse {
                    status,
                    body: bytes,
                });
            }
            let errors = serde_json::from_slice::<Envelope<serde_json::Value>>(&bytes)
                .map(|e| e.errors)
                .unwrap_or_default();
            return Err(ApiError::Api {
                what: what.to_string(),
                status,
                errors,
                permission,
            });
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let d = retry_after
            .unwrap_or_else(|| Duration::from_millis(200u64.saturating_mul(1 << attempt.min(8))));
        d.min(self.config.max_backoff)
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_found() {
        let e = ApiError::Api {
            what: "x".into(),
            status: 400,
            errors: vec![ApiMessage {
                code: 81053,
                message: "exists".into(),
            }],
            permission: "Zone: DNS Edit",
        };
        assert!(e.has_code(81053));
        assert!(!e.has_code(81057));
        assert!(e.to_string().contains("exists (81053)"));
    }

    #[test]
    fn retry_after_seconds_parse() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
