//! The thin `worker` binding: turns the Workers request into a
//! [`RequestHead`], runs the pipeline, performs the upstream fetch with a
//! timeout, and streams bodies through untouched.

use crate::active::ActiveConfig;
use crate::cache::{self, Freshness, Generations, Lookup};
use crate::config::RouteClass;
use crate::errors::EdgeError;
use crate::forwarding::AccessToken;
use crate::http::{Headers, RequestHead, ResponseHead, Synthetic};
use crate::pipeline::{self, Context, Outcome, Pipeline, UpstreamRequest};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{Env, Result};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;

    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn date_now() -> f64;

    /// A service binding (`env.STOREFRONT`), called from js/glue.js.
    type ServiceBinding;
}

// Marshalling helpers (js/glue.js): a header list crosses the boundary as one
// string instead of one call per header.
#[wasm_bindgen(module = "/js/glue.js")]
extern "C" {
    /// `flatHeaders(message.headers)` of a Request or Response, in one call.
    #[wasm_bindgen(js_name = flatHeadersOf)]
    fn flat_headers_of(message: &JsValue) -> String;

    /// The upstream fetch with its header timeout (see js/glue.js).
    #[wasm_bindgen(js_name = fetchUpstream)]
    fn fetch_upstream_js(
        service: &JsValue,
        url: &str,
        method: Option<&str>,
        source: &JsValue,
        edits: &str,
        body: &JsValue,
        timeout_ms: u32,
    ) -> js_sys::Promise;

    #[wasm_bindgen(js_name = rateLimit)]
    fn rate_limit_js(binding: &JsValue, key: &str) -> js_sys::Promise;

    #[wasm_bindgen(js_name = fetchText)]
    fn fetch_text_js(url: &str, timeout_ms: u32) -> js_sys::Promise;

    #[wasm_bindgen(js_name = verifyRs256)]
    fn verify_rs256_js(jwk_json: &str, signature: &[u8], data: &[u8]) -> js_sys::Promise;

    #[wasm_bindgen(js_name = cacheMatch)]
    fn cache_match_js(key: &str) -> js_sys::Promise;

    #[wasm_bindgen(js_name = cachePut)]
    fn cache_put_js(key: &str, response: &web_sys::Response) -> js_sys::Promise;

    /// `origin`'s headers after `edits`, `status`, the origin's status text
    /// when `keep_status_text`, and its body when `with_body`.
    #[wasm_bindgen(catch, js_name = respondFrom)]
    fn respond_from(
        origin: &web_sys::Response,
        status: u16,
        keep_status_text: bool,
        edits: &str,
        with_body: bool,
    ) -> std::result::Result<web_sys::Response, JsValue>;

    #[wasm_bindgen(catch, js_name = buildResponse)]
    fn build_response(
        status: u16,
        status_text: &str,
        flat: &str,
        body: &JsValue,
    ) -> std::result::Result<web_sys::Response, JsValue>;
}

/// A request id when the request has no `cf-ray` (which Cloudflare's edge
/// always sets; local runs lack it): a UUID-shaped id from a per-isolate
/// random seed (one `crypto.randomUUID()`) and a counter, so a request costs
/// no call out of wasm.
fn fallback_request_id() -> String {
    thread_local! {
        static IDS: RefCell<Option<crate::pipeline::RequestIds>> = const { RefCell::new(None) };
    }
    IDS.with(|ids| {
        ids.borrow_mut()
            .get_or_insert_with(|| crate::pipeline::RequestIds::new(&random_uuid()))
            .next_id()
    })
}

/// KV namespace binding and key of the configuration override.
const OVERRIDE_KV: &str = "EDGE_CONFIG";
const OVERRIDE_KEY: &str = "config";
/// Var: seconds to keep a read override before reading KV again.
const OVERRIDE_TTL_VAR: &str = "EDGE_CONFIG_TTL_SECONDS";
const DEFAULT_OVERRIDE_TTL_SECONDS: f64 = 30.0;
/// Var: a path that panics on purpose (only set in tests, to prove recovery).
const DEBUG_PANIC_VAR: &str = "EDGE_DEBUG_PANIC_PATH";

struct CachedConfig {
    active: Rc<ActiveConfig>,
    fetched_at_ms: f64,
}

thread_local! {
    static PIPELINE: Rc<Pipeline> = Rc::new(Pipeline::standard());
    static BUILTIN: RefCell<Option<Rc<ActiveConfig>>> = const { RefCell::new(None) };
    static CURRENT: RefCell<Option<CachedConfig>> = const { RefCell::new(None) };
}

fn builtin() -> Result<Rc<ActiveConfig>> {
    if let Some(b) = BUILTIN.with(|b| b.borrow().clone()) {
        return Ok(b);
    }
    let b = Rc::new(ActiveConfig::builtin().map_err(worker::Error::RustError)?);
    BUILTIN.with(|slot| *slot.borrow_mut() = Some(b.clone()));
    Ok(b)
}

thread_local! {
    /// Vars and secrets looked up so far. They are fixed for the life of an
    /// isolate (a new deployment or secret starts new isolates), and a missing
    /// binding is costly to look up (the runtime builds an error), so each is
    /// read once.
    static BINDINGS: RefCell<Vec<(Binding, String, Option<String>)>> =
        const { RefCell::new(Vec::new()) };
}

/// Where a memoized binding comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Binding {
    Var,
    Secret,
    Kv,
}

fn memoized(kind: Binding, name: &str, read: impl FnOnce() -> Option<String>) -> Option<String> {
    let found = BINDINGS.with(|b| {
        b.borrow()
            .iter()
            .find(|(k, n, _)| *k == kind && n == name)
            .map(|(_, _, v)| v.clone())
    });
    if let Some(v) = found {
        return v;
    }
    let v = read().filter(|v| !v.is_empty());
    BINDINGS.with(|b| b.borrow_mut().push((kind, name.to_string(), v.clone())));
    v
}

fn var(env: &Env, name: &str) -> Option<String> {
    memoized(Binding::Var, name, || {
        env.var(name).ok().map(|v| v.to_string())
    })
}

fn secret(env: &Env, name: &str) -> Option<String> {
    memoized(Binding::Secret, name, || {
        env.secret(name).ok().map(|v| v.to_string())
    })
}

/// `EDGE_CONFIG_TTL_SECONDS` in milliseconds.
fn override_ttl_ms(env: &Env) -> f64 {
    var(env, OVERRIDE_TTL_VAR)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(DEFAULT_OVERRIDE_TTL_SECONDS)
        * 1000.0
}

/// The configuration in force: the KV override when valid, re-read at most
/// every `EDGE_CONFIG_TTL_SECONDS`; the built-in one otherwise.
async fn active_config(env: &Env) -> Result<Rc<ActiveConfig>> {
    let builtin = builtin()?;
    let ttl_ms = override_ttl_ms(env);
    let now = date_now();
    let cached = CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|c| now - c.fetched_at_ms < ttl_ms)
            .map(|c| c.active.clone())
    });
    if let Some(active) = cached {
        return Ok(active);
    }
    let Ok(kv) = env.kv(OVERRIDE_KV) else {
        return Ok(builtin);
    };
    let text = match kv.get(OVERRIDE_KEY).text().await {
        Ok(t) => t,
        Err(e) => {
            log_json(
                "warn",
                "config_override_unreadable",
                &format!("could not read KV {OVERRIDE_KV}/{OVERRIDE_KEY}, using the built-in config: {e}"),
            );
            None
        }
    };
    let (active, rejected) = ActiveConfig::select(&builtin, text.as_deref());
    if let Some(reason) = rejected {
        log_json(
            "error",
            "config_override_rejected",
            &format!(
                "{}; using the built-in config (hash {})",
                reason.0, builtin.hash
            ),
        );
    }
    let active = if active.source == crate::active::ConfigSource::Builtin {
        builtin
    } else {
        Rc::new(active)
    };
    CURRENT.with(|c| {
        *c.borrow_mut() = Some(CachedConfig {
            active: active.clone(),
            fetched_at_ms: now,
        })
    });
    Ok(active)
}

fn log_json(level: &str, event: &str, message: &str) {
    let line = serde_json::json!({"level": level, "event": event, "message": message}).to_string();
    match level {
        "error" => worker::console_error!("{line}"),
        "warn" => worker::console_warn!("{line}"),
        _ => worker::console_log!("{line}"),
    }
}

/// The headers of a Request or Response, read in one call.
fn headers_of(message: &JsValue) -> Headers {
    Headers::from_flat(&flat_headers_of(message))
}

/// A response with `head` and `body` (a stream, a string, or nothing).
fn response_with(
    head: &ResponseHead,
    status_text: &str,
    body: &JsValue,
) -> Result<web_sys::Response> {
    Ok(build_response(
        head.status,
        status_text,
        &head.headers.to_flat(),
        body,
    )?)
}

fn stream_value(body: Option<web_sys::ReadableStream>) -> JsValue {
    body.map_or(JsValue::UNDEFINED, JsValue::from)
}

fn synthetic_response(s: &Synthetic, head_only: bool) -> Result<web_sys::Response> {
    let body = if s.body.is_empty() || head_only {
        JsValue::UNDEFINED
    } else {
        JsValue::from_str(&s.body)
    };
    response_with(&s.head, "", &body)
}

enum FetchFailure {
    Timeout(u32),
    Unreachable(String),
    NotConfigured(String),
}

/// What an upstream request is built from: the client's request (its
/// headers are copied natively in JS, after edits from the Rust view they
/// were read into), or a `Headers` object when there is no client request;
/// and the body.
struct Incoming<'a> {
    /// A `Request`, or a `Headers` object.
    source: &'a JsValue,
    /// The method of `source`, when it is the client's request.
    method: Option<&'a str>,
    view: &'a Headers,
    /// Undefined (no body), `true` (the request's own stream, taken in JS),
    /// or the bytes read for inspection.
    body: JsValue,
}

impl<'a> Incoming<'a> {
    /// The client's request with `body_read` (the body, when it was read
    /// for inspection) or its stream. GET and HEAD requests have no body:
    /// their stream is not even asked for.
    fn request(
        sys: &'a web_sys::Request,
        method: &'a str,
        view: &'a Headers,
        body_read: Option<&js_sys::Uint8Array>,
    ) -> Self {
        Incoming {
            source: sys,
            method: Some(method),
            view,
            body: match body_read {
                Some(bytes) => JsValue::from(bytes),
                None if matches!(method, "GET" | "HEAD") => JsValue::UNDEFINED,
                None => JsValue::TRUE,
            },
        }
    }

    /// The client's headers without a body (GET requests of the cache).
    fn headers_only(sys: &'a web_sys::Request, view: &'a Headers) -> Self {
        Incoming {
            source: sys,
            method: None,
            view,
            body: JsValue::UNDEFINED,
        }
    }
}

/// Starts the upstream request, streaming the client's body, not following
/// redirects, and giving up on the response headers after the timeout (see
/// js/glue.js). The promise settles with the response or a failure string.
fn start_upstream(
    env: &Env,
    incoming: &Incoming<'_>,
    method: &str,
    up: &UpstreamRequest,
) -> std::result::Result<js_sys::Promise, FetchFailure> {
    let service = up
        .service
        .as_deref()
        .and_then(|name| env.service(name).ok())
        .map(|f| f.into_rpc::<ServiceBinding>());
    let base = match (&service, up.url_var.as_deref()) {
        // A service binding ignores the host; any absolute URL will do.
        (Some(_), url_var) => url_var
            .and_then(|v| var(env, v))
            .unwrap_or_else(|| "https://storefront.internal".to_string()),
        (None, Some(url_var)) => var(env, url_var).ok_or_else(|| {
            FetchFailure::NotConfigured(format!(
                "upstream {:?}: Worker var {url_var} is not set",
                up.upstream
            ))
        })?,
        (None, None) => {
            return Err(FetchFailure::NotConfigured(format!(
                "upstream {:?}: service binding is not bound",
                up.upstream
            )))
        }
    };
    let url = format!("{}{}", base.trim_end_matches('/'), up.path_and_query);

    let service = service.map_or(JsValue::NULL, JsValue::from);
    // The client's method is read in JS when it is the one to send.
    let method = (incoming.method != Some(method)).then_some(method);
    Ok(fetch_upstream_js(
        &service,
        &url,
        method,
        incoming.source,
        &incoming.view.edits_to(&up.headers),
        &incoming.body,
        up.timeout_ms,
    ))
}

/// What the upstream promise settled with.
fn settled(
    result: std::result::Result<JsValue, JsValue>,
    timeout_ms: u32,
) -> std::result::Result<web_sys::Response, FetchFailure> {
    match result {
        Ok(v) => v
            .dyn_into::<web_sys::Response>()
            .map_err(|_| FetchFailure::Unreachable("upstream returned no response".into())),
        Err(e) => match e.as_string() {
            Some(t) if t == "timeout" => Err(FetchFailure::Timeout(timeout_ms)),
            Some(t) => Err(FetchFailure::Unreachable(t)),
            None => Err(FetchFailure::Unreachable("fetch failed".into())),
        },
    }
}

/// [`start_upstream`] and wait for it.
async fn fetch_upstream(
    env: &Env,
    incoming: &Incoming<'_>,
    method: &str,
    up: &UpstreamRequest,
) -> std::result::Result<web_sys::Response, FetchFailure> {
    let sent = start_upstream(env, incoming, method, up)?;
    settled(JsFuture::from(sent).await, up.timeout_ms)
}

/// Chains a panic hook that tells the JS entry module (`globalThis.__edgePanic`)
/// so the in-flight requests fail fast with a 500 instead of hanging, and the
/// next request gets a fresh wasm instance.
fn install_panic_hook() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            let global = js_sys::global();
            if let Ok(f) = js_sys::Reflect::get(&global, &JsValue::from_str("__edgePanic")) {
                if let Some(f) = f.dyn_ref::<js_sys::Function>() {
                    let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&info.to_string()));
                }
            }
        }));
    });
}

// The request flow, driven by js/entry.mjs:
//
// 1. `begin` (synchronous) reads the request, runs the request phase of the
//    pipeline and answers with a response, or with a `Pending` request.
//    Before doing anything with side effects it may ask the entry module to
//    load the configuration override from KV (`loadConfig`) or to read the
//    body for inspection, then to call it again.
// 2. A plain forward (no rate limit, Access signature or cache on its way)
//    has its upstream fetch already started: the entry module awaits it and
//    hands the result to `finish` (synchronous), which runs the response
//    phase. Everything else goes through `proceed` (asynchronous).
//
// Keeping the common path synchronous on the Rust side spares it the
// future/promise machinery of an async export, which profiling showed to be
// a good part of the worker's CPU time per request.

/// `begin` asks for the configuration override to be loaded.
const NEED_CONFIG: u32 = 1;
/// `begin` asks for the request body (to inspect it).
const NEED_BODY: u32 = 2;

/// A request past the request phase, waiting for the upstream (or for the
/// asynchronous steps before it).
#[wasm_bindgen]
pub struct Pending {
    cx: Context,
    head: RequestHead,
    method: String,
    head_only: bool,
    /// The body, when it was read for inspection.
    body: Option<js_sys::Uint8Array>,
    step: Step,
}

enum Step {
    /// The purge endpoint.
    Purge,
    /// Forward `up` after the asynchronous steps.
    Forward(UpstreamRequest),
    /// The cache lookup for `up` is under way.
    Lookup {
        promise: Option<js_sys::Promise>,
        up: UpstreamRequest,
        slot: CacheSlot,
    },
    /// The upstream fetch is under way; `store` when the answer may be
    /// cached.
    Fetch {
        promise: Option<js_sys::Promise>,
        timeout_ms: u32,
        state: &'static str,
        store: Option<CacheSlot>,
    },
}

/// Where a cacheable response lives in the cache.
struct CacheSlot {
    key: String,
    rule: crate::config::CacheRule,
    now: u64,
}

impl CacheSlot {
    fn plan<'a>(&'a self, active: &'a ActiveConfig, ctx: &'a worker::Context) -> StorePlan<'a> {
        StorePlan {
            cfg: &active.config.cache,
            rule: &self.rule,
            key: &self.key,
            ctx,
            now: self.now,
        }
    }
}

#[wasm_bindgen]
impl Pending {
    /// The promise to wait for before `resume` (a cache lookup or an
    /// upstream fetch), once; `undefined` when the request needs `proceed`.
    #[wasm_bindgen(js_name = takeWait)]
    pub fn take_wait(&mut self) -> Option<js_sys::Promise> {
        match &mut self.step {
            Step::Lookup { promise, .. } | Step::Fetch { promise, .. } => promise.take(),
            _ => None,
        }
    }
}

/// The configuration in force when no KV read is needed: the built-in one
/// when no override namespace is bound, the cached override while fresh.
fn cached_config(env: &Env, just_loaded: bool, now: f64) -> Result<Option<Rc<ActiveConfig>>> {
    let ttl_ms = override_ttl_ms(env);
    let cached = CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|c| just_loaded || now - c.fetched_at_ms < ttl_ms)
            .map(|c| c.active.clone())
    });
    if cached.is_some() {
        return Ok(cached);
    }
    if !has_override_kv(env) {
        return builtin().map(Some);
    }
    Ok(None)
}

/// Whether the override namespace is bound (fixed for an isolate's life).
fn has_override_kv(env: &Env) -> bool {
    memoized(Binding::Kv, OVERRIDE_KV, || {
        env.kv(OVERRIDE_KV).ok().map(|_| "1".to_string())
    })
    .is_some()
}

/// Reads the configuration override (see [`active_config`]); `begin` is then
/// called again with `loaded` set.
#[wasm_bindgen(js_name = loadConfig)]
pub async fn load_config(env: Env) -> std::result::Result<(), JsValue> {
    install_panic_hook();
    active_config(&env).await?;
    Ok(())
}

/// Step 1 of the flow (see above): a `Response`, a `Pending`, or one of
/// [`NEED_CONFIG`] and [`NEED_BODY`].
#[wasm_bindgen]
pub fn begin(
    req: web_sys::Request,
    env: Env,
    loaded: bool,
    body: Option<js_sys::Uint8Array>,
) -> std::result::Result<JsValue, JsValue> {
    install_panic_hook();
    let now_ms = date_now();
    let Some(active) = cached_config(&env, loaded, now_ms)? else {
        return Ok(JsValue::from(NEED_CONFIG));
    };
    let sys = &req;
    let method = sys.method();
    let head_only = method.eq_ignore_ascii_case("HEAD");
    let headers = headers_of(sys);
    let Some(head) = RequestHead::from_url(&method, &sys.url(), headers) else {
        let s = crate::errors::render(EdgeError::BadRequest, RouteClass::Page, &random_uuid());
        return Ok(synthetic_response(&s, head_only)?.into());
    };
    // What the WAF inspects besides the head: small bodies are read (and
    // forwarded from memory); larger ones stream through, checked by their
    // declared length.
    let body_len = head
        .headers
        .get("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let waf_cfg = &active.config.waf;
    let purge_path = head.path == PURGE_PATH;
    if body.is_none()
        && !purge_path
        && waf_cfg.enabled
        && !matches!(method.as_str(), "GET" | "HEAD")
        && body_len.is_some_and(|n| n > 0 && n <= waf_cfg.limits.max_inspect_bytes as u64)
    {
        return Ok(JsValue::from(NEED_BODY));
    }
    let access_token = match (
        secret(&env, "ACCESS_CLIENT_ID"),
        secret(&env, "ACCESS_CLIENT_SECRET"),
    ) {
        (Some(client_id), Some(client_secret)) => Some(AccessToken {
            client_id,
            client_secret,
        }),
        _ => None,
    };
    let mut cx = Context {
        active: active.clone(),
        request_id: pipeline::request_id(&head, fallback_request_id),
        class: RouteClass::Page,
        route: None,
        upstream: None,
        access_token,
        version: crate::VERSION,
        inspection: Default::default(),
        logs: Vec::new(),
        access_jwt: None,
    };
    if let Some(p) = var(&env, DEBUG_PANIC_VAR) {
        if head.path == p {
            panic!("deliberate panic on {p} (EDGE_DEBUG_PANIC_PATH)");
        }
    }
    if purge_path {
        return Ok(Pending {
            cx,
            head,
            method,
            head_only,
            body: None,
            step: Step::Purge,
        }
        .into());
    }
    cx.inspection.body = body.as_ref().map(|b| b.to_vec());
    cx.inspection.body_len = body_len;
    cx.inspection.now_unix = (now_ms / 1000.0) as i64;
    cx.inspection.access_app = access_app(&env);
    let access = &waf_cfg.access;
    if waf_cfg.enabled
        && (!access.allow_countries.is_empty()
            || !access.deny_countries.is_empty()
            || !access.deny_asns.is_empty())
    {
        let (country, asn) = cf_country_asn(sys);
        cx.inspection.country = country;
        cx.inspection.asn = asn;
    }
    let pipeline = PIPELINE.with(Rc::clone);
    let outcome = pipeline.request(&mut cx, &head);
    for line in cx.logs.drain(..) {
        worker::console_log!("{line}");
    }
    let up = match outcome {
        Outcome::Respond(s) => return Ok(synthetic_response(&s, head_only)?.into()),
        Outcome::Forward(up) => up,
    };
    // With no rate limit or Access signature to check first, the cache
    // lookup or the upstream fetch starts now.
    // One pass over the cache rules; the purge generations are asked for
    // only when the request is cacheable (`None` then: they need a KV read).
    // (WebSocket upgrades are never cached: no lookup at all.)
    let looked_up = (!up.websocket).then(|| {
        cache::lookup_with(&active.config.cache, &head, &up.upstream, || {
            generations_cached(&env).map(|g| cache::generation_for(&g, &head.path))
        })
    });
    let step = if cx.access_jwt.is_some()
        || crate::ratelimit::applicable(&active.config.rate_limits, &head).is_some()
    {
        Step::Forward(up)
    } else {
        match looked_up {
            Some(Some(Lookup::Cache { key, rule })) => Step::Lookup {
                promise: Some(cache_match_js(&key)),
                slot: CacheSlot {
                    key,
                    rule: rule.clone(),
                    now: (date_now() / 1000.0) as u64,
                },
                up,
            },
            Some(None) => Step::Forward(up),
            None | Some(Some(Lookup::Bypass(_))) => match start_upstream(
                &env,
                &Incoming::request(sys, &method, &head.headers, body.as_ref()),
                &method,
                &up,
            ) {
                Ok(promise) => Step::Fetch {
                    promise: Some(promise),
                    timeout_ms: up.timeout_ms,
                    state: "BYPASS",
                    store: None,
                },
                Err(failure) => {
                    return Ok(finish(
                        &pipeline,
                        &cx,
                        &head,
                        Err(failure),
                        "BYPASS",
                        None,
                        head_only,
                    )?
                    .into())
                }
            },
        }
    };
    Ok(Pending {
        cx,
        head,
        method,
        head_only,
        body,
        step,
    }
    .into())
}

/// Whether the cache layer applies to this forward.
fn cacheable(active: &ActiveConfig, head: &RequestHead, up: &UpstreamRequest) -> bool {
    !up.websocket && cache::lookup_with(&active.config.cache, head, &up.upstream, || None).is_none()
}

/// Step 2 once the awaited promise settled (`ok` false: it rejected with
/// `result`): a `Response`, a `Pending` to wait on again (a cache miss now
/// fetching), or a promise of a `Response` (revalidating a stale copy).
#[wasm_bindgen]
pub fn resume(
    pending: Pending,
    result: JsValue,
    ok: bool,
    req: web_sys::Request,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> std::result::Result<JsValue, JsValue> {
    let Pending {
        cx,
        head,
        method,
        head_only,
        body,
        step,
    } = pending;
    let pipeline = PIPELINE.with(Rc::clone);
    let wctx = worker::Context::new(ctx.clone().unchecked_into());
    let settled_with = if ok { Ok(result) } else { Err(result) };
    match step {
        Step::Fetch {
            timeout_ms,
            state,
            store,
            ..
        } => {
            let origin = settled(settled_with, timeout_ms);
            let active = cx.active.clone();
            let plan = store.as_ref().map(|s| s.plan(&active, &wctx));
            Ok(finish(&pipeline, &cx, &head, origin, state, plan, head_only)?.into())
        }
        Step::Lookup { up, slot, .. } => {
            let stored = looked_up(settled_with);
            match after_lookup(
                &pipeline, &cx, &head, &env, &req, &wctx, &up, &slot, stored, head_only,
            )? {
                AfterLookup::Done(r) => Ok(r.into()),
                AfterLookup::Fetch(promise) => Ok(Pending {
                    cx,
                    head,
                    method,
                    head_only,
                    body,
                    step: Step::Fetch {
                        promise: Some(promise),
                        timeout_ms: up.timeout_ms,
                        state: "MISS",
                        store: Some(slot),
                    },
                }
                .into()),
                AfterLookup::Revalidate(stale) => {
                    let work = async move {
                        let ctx = worker::Context::new(ctx);
                        revalidate(
                            &pipeline, &cx, &head, &env, &req, &ctx, &up, &slot, stale, head_only,
                        )
                        .await
                        .map(JsValue::from)
                        .map_err(JsValue::from)
                    };
                    Ok(wasm_bindgen_futures::future_to_promise(work).into())
                }
            }
        }
        Step::Purge | Step::Forward(_) => Err(JsValue::from_str(
            "internal: resume called on a request that needs proceed",
        )),
    }
}

/// Step 2 of every other request: purge, rate limit, the Access signature,
/// the cache, then the upstream.
#[wasm_bindgen]
pub async fn proceed(
    pending: Pending,
    req: web_sys::Request,
    env: Env,
    ctx: worker::worker_sys::Context,
) -> std::result::Result<web_sys::Response, JsValue> {
    let ctx = worker::Context::new(ctx);
    Ok(proceed_inner(pending, &req, &env, &ctx).await?)
}

async fn proceed_inner(
    pending: Pending,
    sys: &web_sys::Request,
    env: &Env,
    ctx: &worker::Context,
) -> Result<web_sys::Response> {
    let Pending {
        mut cx,
        head,
        method,
        head_only,
        body: body_bytes,
        step,
    } = pending;
    let up = match step {
        Step::Purge => return purge(env, sys, &head, &cx).await,
        Step::Forward(up) => up,
        Step::Lookup { .. } | Step::Fetch { .. } => {
            return Err(worker::Error::RustError(
                "internal: a request already waiting was handed to proceed".into(),
            ))
        }
    };
    let pipeline = PIPELINE.with(Rc::clone);
    let active = cx.active.clone();
    if let Some(limit) = crate::ratelimit::applicable(&active.config.rate_limits, &head) {
        if !within_rate_limit(env, &limit).await {
            worker::console_log!("{}", crate::ratelimit::log_line(&cx.request_id, limit.rule));
            let mut s = crate::errors::render_rate_limited(
                cx.class,
                &cx.request_id,
                limit.rule.period_seconds,
            );
            pipeline.respond(&cx, &head, &mut s.head);
            return synthetic_response(&s, head_only);
        }
    }
    if let Some(jwt) = cx.access_jwt.take() {
        if let Err(reason) = verify_access_jwt(&active, &cx, jwt).await {
            worker::console_log!(
                "{}",
                pipeline::access_denied_log(&cx.request_id, &head.path, &reason)
            );
            let mut s = crate::errors::render_blocked(403, cx.class, &cx.request_id);
            pipeline.respond(&cx, &head, &mut s.head);
            return synthetic_response(&s, head_only);
        }
    }
    // Purge generations are read only for cacheable requests.
    let cacheable = cacheable(&active, &head, &up);
    let generation = if cacheable {
        cache::generation_for(&generations(env).await, &head.path)
    } else {
        0
    };
    let (key, rule) = match cache::lookup(&active.config.cache, &head, &up.upstream, generation) {
        Lookup::Cache { key, rule } if cacheable => (key, rule.clone()),
        _ => {
            let incoming = Incoming::request(sys, &method, &head.headers, body_bytes.as_ref());
            let origin = fetch_upstream(env, &incoming, &method, &up).await;
            return finish(&pipeline, &cx, &head, origin, "BYPASS", None, head_only);
        }
    };
    let slot = CacheSlot {
        key,
        rule,
        now: (date_now() / 1000.0) as u64,
    };
    let stored = looked_up(JsFuture::from(cache_match_js(&slot.key)).await);
    match after_lookup(
        &pipeline, &cx, &head, env, sys, ctx, &up, &slot, stored, head_only,
    )? {
        AfterLookup::Done(r) => Ok(r),
        AfterLookup::Fetch(promise) => {
            let origin = settled(JsFuture::from(promise).await, up.timeout_ms);
            let plan = Some(slot.plan(&active, ctx));
            finish(&pipeline, &cx, &head, origin, "MISS", plan, head_only)
        }
        AfterLookup::Revalidate(stale) => {
            revalidate(
                &pipeline, &cx, &head, env, sys, ctx, &up, &slot, stale, head_only,
            )
            .await
        }
    }
}

/// What the cache lookup found: the stored copy, or `None` (a failing cache
/// is a miss).
fn looked_up(result: std::result::Result<JsValue, JsValue>) -> Option<web_sys::Response> {
    match result {
        Ok(v) => v.dyn_into::<web_sys::Response>().ok(),
        Err(e) => {
            log_json(
                "warn",
                "cache_match_failed",
                &e.as_string()
                    .unwrap_or_else(|| "cache lookup failed".into()),
            );
            None
        }
    }
}

/// A stored copy past its freshness.
struct Stale {
    stored: web_sys::Response,
    headers: Headers,
    freshness: Freshness,
}

enum AfterLookup {
    /// The answer (a hit, or a stale copy served while it is refreshed).
    Done(web_sys::Response),
    /// A miss: the upstream fetch is under way.
    Fetch(js_sys::Promise),
    /// Ask the origin, conditionally on the stored copy's validators.
    Revalidate(Stale),
}

/// The synchronous part of serving a cacheable request once the lookup
/// answered.
#[allow(clippy::too_many_arguments)]
fn after_lookup(
    pipeline: &Pipeline,
    cx: &Context,
    head: &RequestHead,
    env: &Env,
    sys: &web_sys::Request,
    ctx: &worker::Context,
    up: &UpstreamRequest,
    slot: &CacheSlot,
    stored: Option<web_sys::Response>,
    head_only: bool,
) -> Result<AfterLookup> {
    let Some(stored) = stored else {
        let incoming = Incoming::headers_only(sys, &head.headers);
        return Ok(match start_upstream(env, &incoming, "GET", up) {
            Ok(promise) => AfterLookup::Fetch(promise),
            Err(failure) => AfterLookup::Done(finish(
                pipeline,
                cx,
                head,
                Err(failure),
                "MISS",
                None,
                head_only,
            )?),
        });
    };
    let headers = headers_of(&stored);
    let serve = |state: &str| {
        serve_stored(
            pipeline, cx, head, &stored, &headers, slot.now, state, head_only,
        )
    };
    match cache::freshness(&slot.rule, &headers, slot.now) {
        Freshness::Fresh => Ok(AfterLookup::Done(serve("HIT")?)),
        Freshness::StaleWhileRevalidate => {
            let env2 = env.clone();
            let up2 = up.clone();
            let cfg = cx.active.config.cache.clone();
            let rule2 = slot.rule.clone();
            let key2 = slot.key.clone();
            ctx.wait_until(async move {
                refresh(&env2, &up2, &cfg, &rule2, &key2).await;
            });
            Ok(AfterLookup::Done(serve("STALE")?))
        }
        freshness @ (Freshness::StaleIfError | Freshness::Expired) => {
            Ok(AfterLookup::Revalidate(Stale {
                stored,
                headers,
                freshness,
            }))
        }
    }
}

/// Asks the origin about a stale copy; within the stale-if-error window a
/// failure serves the stored copy.
#[allow(clippy::too_many_arguments)]
async fn revalidate(
    pipeline: &Pipeline,
    cx: &Context,
    head: &RequestHead,
    env: &Env,
    sys: &web_sys::Request,
    ctx: &worker::Context,
    up: &UpstreamRequest,
    slot: &CacheSlot,
    stale: Stale,
    head_only: bool,
) -> Result<web_sys::Response> {
    let incoming = Incoming::headers_only(sys, &head.headers);
    let origin = fetch_upstream(env, &incoming, "GET", &conditional(up, &stale.headers)).await;
    let failed = origin.as_ref().map_or(true, |r| r.status() >= 500);
    if failed && stale.freshness == Freshness::StaleIfError {
        return serve_stored(
            pipeline,
            cx,
            head,
            &stale.stored,
            &stale.headers,
            slot.now,
            "STALE",
            head_only,
        );
    }
    revalidated_or_miss(
        pipeline,
        cx,
        head,
        origin,
        &stale.stored,
        &stale.headers,
        &cx.active,
        &slot.rule,
        &slot.key,
        ctx,
        slot.now,
        head_only,
    )
}

/// The purge endpoint's path.
const PURGE_PATH: &str = "/__edge/purge";
/// KV key of the purge generations.
const GENERATIONS_KEY: &str = "cache:generations";

thread_local! {
    static GENERATIONS: RefCell<Option<(Generations, f64)>> = const { RefCell::new(None) };
}

/// The purge generations when no KV read is needed: the cached copy while
/// fresh, or none at all when no override namespace is bound.
fn generations_cached(env: &Env) -> Option<Generations> {
    let ttl_ms = override_ttl_ms(env);
    let now = date_now();
    let cached = GENERATIONS.with(|g| {
        g.borrow()
            .as_ref()
            .filter(|(_, at)| now - at < ttl_ms)
            .map(|(g, _)| g.clone())
    });
    if cached.is_some() {
        return cached;
    }
    (!has_override_kv(env)).then(Generations::default)
}

/// The purge generations, cached like the config override.
async fn generations(env: &Env) -> Generations {
    let ttl_ms = override_ttl_ms(env);
    let now = date_now();
    if let Some(g) = GENERATIONS.with(|g| {
        g.borrow()
            .as_ref()
            .filter(|(_, at)| now - at < ttl_ms)
            .map(|(g, _)| g.clone())
    }) {
        return g;
    }
    let Ok(kv) = env.kv(OVERRIDE_KV) else {
        return Generations::default();
    };
    let g = kv
        .get(GENERATIONS_KEY)
        .text()
        .await
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str::<Generations>(&t).ok())
        .unwrap_or_default();
    GENERATIONS.with(|slot| *slot.borrow_mut() = Some((g.clone(), now)));
    g
}

fn json_response(status: u16, v: serde_json::Value, request_id: &str) -> Result<web_sys::Response> {
    let mut s = Synthetic::new(status, "application/json", v.to_string());
    s.head.headers.set("cache-control", "no-store");
    s.head.headers.set("x-request-id", request_id.to_string());
    synthetic_response(&s, false)
}

/// `POST /__edge/purge` with `Authorization: Bearer <EDGE_PURGE_TOKEN>` and an
/// optional JSON body `{"prefix": "/store/products"}`: bumps the generation.
async fn purge(
    env: &Env,
    req: &web_sys::Request,
    head: &RequestHead,
    cx: &Context,
) -> Result<web_sys::Response> {
    let rid = cx.request_id.as_str();
    if head.method != "POST" {
        return json_response(
            405,
            serde_json::json!({"type": "method_not_allowed", "message": "use POST", "request_id": rid}),
            rid,
        );
    }
    let presented = head
        .headers
        .get("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let expected = secret(env, "EDGE_PURGE_TOKEN").unwrap_or_default();
    if !cache::token_matches(presented, &expected) {
        return json_response(
            401,
            serde_json::json!({"type": "unauthorized", "message": "a valid purge token is required", "request_id": rid}),
            rid,
        );
    }
    let body = match req.text() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let prefix = if body.trim().is_empty() {
        None
    } else {
        match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(v) => match v.get("prefix") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(p)) if p.starts_with('/') && p.len() <= 512 => {
                    Some(p.clone())
                }
                Some(_) => {
                    return json_response(
                        400,
                        serde_json::json!({"type": "bad_request", "message": "prefix must be a path starting with /", "request_id": rid}),
                        rid,
                    )
                }
            },
            Err(_) => {
                return json_response(
                    400,
                    serde_json::json!({"type": "bad_request", "message": "body must be JSON like {\"prefix\": \"/store/products\"}", "request_id": rid}),
                    rid,
                )
            }
        }
    };
    let kv = env.kv(OVERRIDE_KV)?;
    let mut g = kv
        .get(GENERATIONS_KEY)
        .text()
        .await
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str::<Generations>(&t).ok())
        .unwrap_or_default();
    g.bump(prefix.as_deref());
    kv.put(
        GENERATIONS_KEY,
        serde_json::to_string(&g).map_err(|e| worker::Error::RustError(e.to_string()))?,
    )?
    .execute()
    .await?;
    GENERATIONS.with(|slot| *slot.borrow_mut() = None);
    log_json(
        "info",
        "cache_purged",
        &format!(
            "request {rid}: purged {}",
            prefix.as_deref().unwrap_or("everything")
        ),
    );
    json_response(
        200,
        serde_json::json!({"purged": prefix.unwrap_or_else(|| "/".into()), "generation": g.global, "request_id": rid}),
        rid,
    )
}

/// The upstream request made conditional on the stored copy's validators.
fn conditional(up: &UpstreamRequest, stored: &Headers) -> UpstreamRequest {
    let mut up = up.clone();
    if let Some(etag) = stored.get("etag") {
        up.headers.set("if-none-match", etag.to_string());
    }
    if let Some(lm) = stored.get("last-modified") {
        up.headers.set("if-modified-since", lm.to_string());
    }
    up
}

struct StorePlan<'a> {
    cfg: &'a crate::config::CacheConfig,
    rule: &'a crate::config::CacheRule,
    key: &'a str,
    ctx: &'a worker::Context,
    now: u64,
}

/// The copy of a response to put in the cache: its headers plus when it was
/// stored and its freshness lifetime, kept by the Cache API through the stale
/// windows. `None` when the response must not be stored.
fn cache_copy(
    cfg: &crate::config::CacheConfig,
    rule: &crate::config::CacheRule,
    head: &ResponseHead,
    body: Option<web_sys::ReadableStream>,
    now: u64,
) -> Result<Option<web_sys::Response>> {
    let Some(ttl) = cache::store_ttl(cfg, rule, head) else {
        return Ok(None);
    };
    let mut headers = head.headers.clone();
    headers.set(cache::STORED_AT, now.to_string());
    headers.set(cache::STORED_TTL, ttl.to_string());
    headers.set(
        "cache-control",
        format!("public, max-age={}", cache::storage_seconds(rule, ttl)),
    );
    let copy = ResponseHead {
        status: head.status,
        headers,
    };
    Ok(Some(response_with(&copy, "", &stream_value(body))?))
}

async fn cache_put(key: &str, copy: web_sys::Response) {
    if let Err(e) = JsFuture::from(cache_put_js(key, &copy)).await {
        let why = e
            .as_string()
            .or_else(|| js_sys::Error::from(e).message().as_string())
            .unwrap_or_else(|| "cache put failed".into());
        log_json("warn", "cache_put_failed", &why);
    }
}

/// Stores a copy of `origin` (its body teed) in the background, if allowed.
fn store_copy(plan: &StorePlan<'_>, origin: &web_sys::Response, head: &ResponseHead) -> Result<()> {
    if cache::store_ttl(plan.cfg, plan.rule, head).is_none() {
        return Ok(());
    }
    let body = origin.clone()?.body();
    if let Some(copy) = cache_copy(plan.cfg, plan.rule, head, body, plan.now)? {
        let key = plan.key.to_string();
        plan.ctx
            .wait_until(async move { cache_put(&key, copy).await });
    }
    Ok(())
}

/// Refreshes a stale copy in the background (stale-while-revalidate).
async fn refresh(
    env: &Env,
    up: &UpstreamRequest,
    cfg: &crate::config::CacheConfig,
    rule: &crate::config::CacheRule,
    key: &str,
) {
    // No client request behind this one: every upstream header is an edit.
    let Ok(headers) = web_sys::Headers::new() else {
        return;
    };
    let headers = JsValue::from(headers);
    let none = Headers::default();
    let incoming = Incoming {
        source: &headers,
        method: None,
        view: &none,
        body: JsValue::UNDEFINED,
    };
    let Ok(origin) = fetch_upstream(env, &incoming, "GET", up).await else {
        return;
    };
    let head = ResponseHead {
        status: origin.status(),
        headers: headers_of(&origin),
    };
    let now = (date_now() / 1000.0) as u64;
    if let Ok(Some(copy)) = cache_copy(cfg, rule, &head, origin.body(), now) {
        cache_put(key, copy).await;
    }
}

/// Serves a stored copy through the response phase, with `Age` and
/// `x-edge-cache`.
#[allow(clippy::too_many_arguments)]
fn serve_stored(
    pipeline: &Pipeline,
    cx: &Context,
    head: &RequestHead,
    stored: &web_sys::Response,
    stored_headers: &Headers,
    now: u64,
    state: &str,
    head_only: bool,
) -> Result<web_sys::Response> {
    let mut resp = ResponseHead {
        status: stored.status(),
        headers: stored_headers.clone(),
    };
    let age = cache::age(stored_headers, now).unwrap_or(0);
    resp.headers.remove(cache::STORED_AT);
    resp.headers.remove(cache::STORED_TTL);
    // The copy's cache-control was set for storage; give the client the
    // remaining freshness instead.
    resp.headers
        .set("cache-control", "public, max-age=0, must-revalidate");
    pipeline.respond(cx, head, &mut resp);
    resp.headers.set("age", age.to_string());
    resp.headers.set("x-edge-cache", state);
    Ok(respond_from(
        stored,
        resp.status,
        false,
        &stored_headers.edits_to(&resp.headers),
        !head_only,
    )?)
}

/// After a conditional request: a 304 refreshes and serves the stored copy
/// (REVALIDATED); anything else is a miss.
#[allow(clippy::too_many_arguments)]
fn revalidated_or_miss(
    pipeline: &Pipeline,
    cx: &Context,
    head: &RequestHead,
    origin: std::result::Result<web_sys::Response, FetchFailure>,
    stored: &web_sys::Response,
    stored_headers: &Headers,
    active: &ActiveConfig,
    rule: &crate::config::CacheRule,
    key: &str,
    ctx: &worker::Context,
    now: u64,
    head_only: bool,
) -> Result<web_sys::Response> {
    if let Ok(o) = &origin {
        if o.status() == 304 {
            let mut fresh = stored_headers.clone();
            fresh.set(cache::STORED_AT, now.to_string());
            let client_copy = stored.clone()?;
            // Store the refreshed copy (its body teed from the stored one).
            let again = response_with(
                &ResponseHead {
                    status: stored.status(),
                    headers: fresh.clone(),
                },
                "",
                &stream_value(stored.body()),
            )?;
            let key = key.to_string();
            ctx.wait_until(async move { cache_put(&key, again).await });
            return serve_stored(
                pipeline,
                cx,
                head,
                &client_copy,
                &fresh,
                now,
                "REVALIDATED",
                head_only,
            );
        }
    }
    let plan = Some(StorePlan {
        cfg: &active.config.cache,
        rule,
        key,
        ctx,
        now,
    });
    finish(pipeline, cx, head, origin, "MISS", plan, head_only)
}

/// Turns the origin's answer (or failure) into the client's response.
fn finish(
    pipeline: &Pipeline,
    cx: &Context,
    head: &RequestHead,
    origin: std::result::Result<web_sys::Response, FetchFailure>,
    state: &str,
    store: Option<StorePlan<'_>>,
    head_only: bool,
) -> Result<web_sys::Response> {
    let origin = match origin {
        Ok(r) => r,
        Err(failure) => {
            let (err, detail) = match failure {
                FetchFailure::Timeout(ms) => (
                    EdgeError::OriginTimeout,
                    format!("no response headers within {ms} ms"),
                ),
                FetchFailure::Unreachable(d) => (EdgeError::OriginUnreachable, d),
                FetchFailure::NotConfigured(d) => (EdgeError::UpstreamNotConfigured, d),
            };
            log_json(
                "error",
                err.code(),
                &format!("request {} route {:?}: {detail}", cx.request_id, cx.route),
            );
            let mut s = pipeline.error(cx, head, err);
            s.head.headers.set("x-edge-cache", state);
            return synthetic_response(&s, head_only);
        }
    };
    let status = origin.status();
    if status == 101 {
        // A WebSocket handshake: hand the origin's socket to the client as is.
        return Ok(origin);
    }
    let raw = ResponseHead {
        status,
        headers: headers_of(&origin),
    };
    if let Some(plan) = &store {
        store_copy(plan, &origin, &raw)?;
    }
    let mut resp = raw.clone();
    pipeline.respond(cx, head, &mut resp);
    resp.headers.set("x-edge-cache", state);
    Ok(respond_from(
        &origin,
        resp.status,
        true,
        &raw.headers.edits_to(&resp.headers),
        !head_only,
    )?)
}

/// `request.cf.country` and `request.cf.asn`, read only when an access rule
/// needs them (the `cf` object is built on demand and is not cheap).
fn cf_country_asn(req: &web_sys::Request) -> (Option<String>, Option<u32>) {
    let Ok(cf) = js_sys::Reflect::get(req, &JsValue::from_str("cf")) else {
        return (None, None);
    };
    if cf.is_undefined() || cf.is_null() {
        return (None, None);
    }
    let country = js_sys::Reflect::get(&cf, &JsValue::from_str("country"))
        .ok()
        .and_then(|v| v.as_string());
    let asn = js_sys::Reflect::get(&cf, &JsValue::from_str("asn"))
        .ok()
        .and_then(|v| v.as_f64())
        .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
        .map(|n| n as u32);
    (country, asn)
}

thread_local! {
    /// The Access application from Worker vars, read once per isolate.
    static ACCESS_APP: RefCell<Option<Option<Rc<edge_waf::AccessJwtConfig>>>> =
        const { RefCell::new(None) };
    /// The Access signing keys and when they were fetched (ms).
    static JWKS: RefCell<Option<(Rc<edge_waf::access_jwt::Jwks>, f64)>> =
        const { RefCell::new(None) };
}

/// How long fetched Access keys are used before they are fetched again.
const JWKS_TTL_MS: f64 = 10.0 * 60.0 * 1000.0;
/// A token naming an unknown key refetches the keys at most this often.
const JWKS_MIN_REFRESH_MS: f64 = 30.0 * 1000.0;
const JWKS_FETCH_TIMEOUT_MS: u32 = 5000;

/// The Access application named by the Worker vars `ACCESS_TEAM_DOMAIN`
/// (`https://<team>.cloudflareaccess.com`) and `ACCESS_AUD` (the
/// application's audience tags, comma-separated); `ACCESS_CERTS_URL`
/// optionally moves the key endpoint.
fn access_app(env: &Env) -> Option<Rc<edge_waf::AccessJwtConfig>> {
    if let Some(app) = ACCESS_APP.with(|a| a.borrow().clone()) {
        return app;
    }
    let app = match (var(env, "ACCESS_TEAM_DOMAIN"), var(env, "ACCESS_AUD")) {
        (Some(team), Some(aud)) => {
            let issuer = if team.contains("://") {
                team
            } else {
                format!("https://{team}")
            };
            Some(Rc::new(edge_waf::AccessJwtConfig {
                issuer: issuer.trim_end_matches('/').to_string(),
                audience: aud
                    .split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect(),
                leeway_secs: 60,
                certs_url: var(env, "ACCESS_CERTS_URL"),
            }))
        }
        _ => None,
    };
    ACCESS_APP.with(|a| *a.borrow_mut() = Some(app.clone()));
    app
}

/// Asks the rule's Rate Limiting binding; a missing binding lets the request
/// through (and says so in the log) rather than taking the shop down.
async fn within_rate_limit(env: &Env, limit: &crate::ratelimit::Applicable<'_>) -> bool {
    let binding = js_sys::Reflect::get(env, &JsValue::from_str(&limit.rule.binding))
        .ok()
        .filter(|b| b.is_object());
    let Some(binding) = binding else {
        log_json(
            "warn",
            "rate_limit_unbound",
            &format!(
                "rate limit {:?}: binding {} is not bound (add it under [[ratelimits]] in wrangler.toml); not limiting",
                limit.rule.name, limit.rule.binding
            ),
        );
        return true;
    };
    match JsFuture::from(rate_limit_js(&binding, &limit.key)).await {
        Ok(v) => v.as_bool().unwrap_or(true),
        Err(e) => {
            log_json(
                "warn",
                "rate_limit_failed",
                &format!(
                    "rate limit {:?}: the binding failed ({}); not limiting",
                    limit.rule.name,
                    e.as_string().unwrap_or_else(|| "unknown error".into())
                ),
            );
            true
        }
    }
}

/// The Access signing keys, from the per-isolate cache unless stale (or
/// `refresh` is asked and the copy is old enough to refetch).
async fn access_keys(
    app: &edge_waf::AccessJwtConfig,
    refresh: bool,
) -> std::result::Result<Rc<edge_waf::access_jwt::Jwks>, String> {
    let now = date_now();
    let cached = JWKS.with(|j| j.borrow().clone());
    if let Some((jwks, at)) = &cached {
        let age = now - at;
        if age < JWKS_TTL_MS && !(refresh && age >= JWKS_MIN_REFRESH_MS) {
            return Ok(jwks.clone());
        }
    }
    let url = app.certs_url();
    let text = match JsFuture::from(fetch_text_js(&url, JWKS_FETCH_TIMEOUT_MS)).await {
        Ok(t) => t.as_string().unwrap_or_default(),
        Err(e) => {
            let why = e
                .as_string()
                .or_else(|| js_sys::Error::from(e).message().as_string())
                .unwrap_or_else(|| "fetch failed".into());
            // Keep serving with the keys we have, if any.
            return match cached {
                Some((jwks, _)) => Ok(jwks),
                None => Err(format!(
                    "could not fetch the Access signing keys from {url}: {why}"
                )),
            };
        }
    };
    let jwks = Rc::new(
        edge_waf::access_jwt::Jwks::parse(text.as_bytes())
            .map_err(|e| format!("Access signing keys from {url}: {e}"))?,
    );
    JWKS.with(|j| *j.borrow_mut() = Some((jwks.clone(), now)));
    Ok(jwks)
}

/// Verifies the signature of a token whose claims already passed.
async fn verify_access_jwt(
    active: &ActiveConfig,
    cx: &Context,
    jwt: edge_waf::access_jwt::UnverifiedJwt,
) -> std::result::Result<(), String> {
    let app = active
        .config
        .waf
        .access
        .jwt
        .clone()
        .map(Rc::new)
        .or_else(|| cx.inspection.access_app.clone())
        .ok_or_else(|| "no Access application is configured".to_string())?;
    let kid = jwt.header.kid.clone().unwrap_or_default();
    let mut jwks = access_keys(&app, false).await?;
    if jwks.find(&kid).is_none() {
        // Keys rotate: look again before refusing.
        jwks = access_keys(&app, true).await?;
    }
    let key = jwks
        .find(&kid)
        .ok_or_else(|| edge_waf::access_jwt::JwtError::UnknownKey(kid.clone()).to_string())?;
    let ok = JsFuture::from(verify_rs256_js(
        &key.json,
        jwt.signature(),
        jwt.signing_input(),
    ))
    .await
    .map_err(|e| {
        format!(
            "key {kid} could not be used: {}",
            js_sys::Error::from(e)
                .message()
                .as_string()
                .unwrap_or_default()
        )
    })?;
    if ok.as_bool() == Some(true) {
        Ok(())
    } else {
        Err(edge_waf::access_jwt::JwtError::BadSignature.to_string())
    }
}
