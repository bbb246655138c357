//! The Cloudflare v4 API: the `cloudflare` crate's endpoints where it has
//! them, our own implementations of its `EndpointSpec` trait for the rest,
//! and our own executor.
//!
//! The crate's endpoint types (tunnel list and create, Worker secrets,
//! Workers KV) and its `EndpointSpec`/`ApiResult` traits are used as they
//! are. Its HTTP client is not: its error type drops the response headers
//! (no `Retry-After` for 429s), it does not retry, and it builds URLs with
//! `unwrap()`. [`Client`] sends any `EndpointSpec` with retries and errors
//! that name the missing token permission; [`Call`] adds the two things it
//! needs for that (a description and the permission) to each endpoint.
//! DNS records are our own endpoints because the crate's record type has no
//! `comment` (our ownership mark) and fails on record types it does not
//! know; see `endpoints` for the others.

pub mod endpoints;

use std::fmt::Debug;
use std::time::Duration;

use cloudflare::framework::endpoint::spec::EndpointSpec;
use cloudflare::framework::endpoint::RequestBody;
use cloudflare::framework::response::ApiResult;
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use crate::secret::SecretString;

pub use cloudflare::framework::endpoint::Method;

/// The production API base.
pub const DEFAULT_BASE_URL: &str = "https://api.cloudflare.com/client/v4/";

/// What our executor needs of an endpoint beyond the crate's
/// [`EndpointSpec`]: words for messages and the token permission it needs.
pub trait Call: EndpointSpec {
    /// Short description for messages ("list tunnels named x").
    fn describe(&self) -> String;
    /// The token permission this call needs, as the dashboard names it.
    fn permission(&self) -> &'static str;
}

/// A list `result` of our own element type. (The crate implements its
/// `ApiResult` for `Vec<its type>`; the orphan rule does not let us do the
/// same for `Vec<our type>`, hence the newtype.)
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct List<T>(pub Vec<T>);

impl<T: DeserializeOwned + Debug> ApiResult for List<T> {}

/// A list result, whichever side defined it.
pub trait Listing {
    /// Element type.
    type Item;
    /// The elements.
    fn into_items(self) -> Vec<Self::Item>;
}

impl<T> Listing for Vec<T> {
    type Item = T;
    fn into_items(self) -> Vec<T> {
        self
    }
}

impl<T> Listing for List<T> {
    type Item = T;
    fn into_items(self) -> Vec<T> {
        self.0
    }
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
struct Envelope {
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: serde_json::Value,
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
    pub async fn send<E: Call>(&self, ep: &E) -> Result<E::JsonResponse, ApiError> {
        let (result, _) = self.send_page(ep, None).await?;
        Ok(result)
    }

    /// Sends a list call page by page and concatenates the results.
    pub async fn list_all<E>(
        &self,
        ep: &E,
    ) -> Result<Vec<<E::JsonResponse as Listing>::Item>, ApiError>
    where
        E: Call,
        E::JsonResponse: Listing,
    {
        let mut all = Vec::new();
        let mut page = 1u32;
        loop {
            let (items, info) = self.send_page(ep, Some(page)).await?;
            let items = items.into_items();
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

    async fn send_page<E: Call>(
        &self,
        ep: &E,
        page: Option<u32>,
    ) -> Result<(E::JsonResponse, Option<ResultInfo>), ApiError> {
        let what = ep.describe();
        if E::IS_RAW_BODY {
            return Err(ApiError::Decode {
                what,
                detail: "a raw-body endpoint was sent as a JSON one".into(),
            });
        }
        let mut query = ep.query().unwrap_or_default();
        if let Some(p) = page {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&format!("page={p}&per_page=50"));
        }
        let raw = self.execute(&what, ep, &query).await?;
        let env: Envelope = serde_json::from_slice(&raw.body).map_err(|e| ApiError::Decode {
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
        // DELETE and similar answer `"result": null`; result types that
        // accept null (`()`, Option) are fine, others are a protocol error.
        let null = env.result.is_null();
        let result = serde_json::from_value(env.result).map_err(|e| ApiError::Decode {
            what: what.clone(),
            detail: if null {
                "success without a result".into()
            } else {
                e.to_string()
            },
        })?;
        Ok((result, env.result_info))
    }

    /// Sends a raw-body call (`IS_RAW_BODY`, e.g. a Workers KV read) and
    /// returns the body; `Ok(None)` on 404.
    pub async fn read_bytes<E: Call>(&self, ep: &E) -> Result<Option<Vec<u8>>, ApiError> {
        let what = ep.describe();
        let query = ep.query().unwrap_or_default();
        match self.execute(&what, ep, &query).await {
            Ok(r) => Ok(Some(r.body)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends with retries: 429 (honouring `Retry-After`) for every method;
    /// 5xx and transport errors only for methods that are safe to repeat
    /// (GET, PUT, PATCH, DELETE). A POST that failed with 5xx is not
    /// repeated: the next reconcile run observes whether it took effect.
    async fn execute<E: Call>(
        &self,
        what: &str,
        ep: &E,
        query: &str,
    ) -> Result<RawResponse, ApiError> {
        let method = ep.method();
        let permission = ep.permission();
        let path = ep.path();
        // Built here rather than by the crate's `url()`, which unwraps.
        let mut url = self
            .config
            .base_url
            .join(path.trim_start_matches('/'))
            .map_err(|e| ApiError::Decode {
                what: what.to_string(),
                detail: format!("bad path {path}: {e}"),
            })?;
        if !query.is_empty() {
            url.set_query(Some(query));
        }
        let body: Option<(String, Vec<u8>)> = match ep.body() {
            None => None,
            Some(RequestBody::Json(s)) => Some(("application/json".into(), s.into_bytes())),
            Some(RequestBody::Raw(b)) => Some(("application/octet-stream".into(), b)),
            Some(RequestBody::MultiPart(_)) => {
                return Err(ApiError::Decode {
                    what: what.to_string(),
                    detail: "multipart bodies are not used by this client".into(),
                })
            }
        };
        let body = body.map(|(ct, b)| {
            let ct = ep.content_type().map_or(ct, |c| c.into_owned());
            (ct, b)
        });
        let repeatable = method != Method::POST;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), url.clone()).header(
                AUTHORIZATION,
                format!("Bearer {}", self.config.token.expose()),
            );
            if let Some((ct, b)) = &body {
                req = req.header(CONTENT_TYPE, ct.as_str()).body(b.clone());
            }
            tracing::debug!(%method, path = %path, attempt, "cloudflare api call");
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
            let errors = serde_json::from_slice::<Envelope>(&bytes)
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
