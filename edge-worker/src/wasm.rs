//! The thin `worker` binding: turns the Workers request into a
//! [`RequestHead`], runs the pipeline, performs the upstream fetch with a
//! timeout, and streams bodies through untouched.

use crate::active::ActiveConfig;
use crate::config::RouteClass;
use crate::errors::EdgeError;
use crate::forwarding::AccessToken;
use crate::http::{Headers, RequestHead, ResponseHead, Synthetic};
use crate::pipeline::{self, Context, Outcome, Pipeline, UpstreamRequest};
use futures_util::future::{select, Either};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use worker::{event, Env, Request, Response, Result};

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(req: &web_sys::Request) -> js_sys::Promise;

    #[wasm_bindgen(js_namespace = crypto, js_name = randomUUID)]
    fn random_uuid() -> String;

    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    fn date_now() -> f64;

    /// A service binding (`env.STOREFRONT`).
    type ServiceBinding;

    #[wasm_bindgen(method, js_name = fetch)]
    fn fetch(this: &ServiceBinding, req: &web_sys::Request) -> js_sys::Promise;
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

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

fn secret(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The configuration in force: the KV override when valid, re-read at most
/// every `EDGE_CONFIG_TTL_SECONDS`; the built-in one otherwise.
async fn active_config(env: &Env) -> Result<Rc<ActiveConfig>> {
    let builtin = builtin()?;
    let Ok(kv) = env.kv(OVERRIDE_KV) else {
        return Ok(builtin);
    };
    let ttl_ms = var(env, OVERRIDE_TTL_VAR)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(DEFAULT_OVERRIDE_TTL_SECONDS)
        * 1000.0;
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

fn headers_from_sys(h: &web_sys::Headers) -> Headers {
    let mut out = Headers::new();
    if let Ok(Some(iter)) = js_sys::try_iter(h) {
        for entry in iter.flatten() {
            let pair: js_sys::Array = entry.unchecked_into();
            if let (Some(k), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                out.append(k, v);
            }
        }
    }
    out
}

fn headers_to_sys(h: &Headers) -> Result<web_sys::Headers> {
    let out = web_sys::Headers::new()?;
    for (k, v) in h.iter() {
        out.append(k, v)?;
    }
    Ok(out)
}

fn synthetic_response(s: &Synthetic, head_only: bool) -> Result<Response> {
    let init = web_sys::ResponseInit::new();
    init.set_status(s.head.status);
    init.set_headers(&headers_to_sys(&s.head.headers)?.into());
    let body = if s.body.is_empty() || head_only {
        None
    } else {
        Some(s.body.as_str())
    };
    let resp = web_sys::Response::new_with_opt_str_and_init(body, &init)?;
    Ok(Response::from(resp))
}

enum FetchFailure {
    Timeout,
    Unreachable(String),
    NotConfigured(String),
}

/// Sends the upstream request, streaming the client's body, not following
/// redirects, and giving up on the response headers after the timeout.
async fn fetch_upstream(
    env: &Env,
    incoming: &web_sys::Request,
    method: &str,
    up: &UpstreamRequest,
) -> std::result::Result<web_sys::Response, FetchFailure> {
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

    let controller =
        web_sys::AbortController::new().map_err(|e| FetchFailure::Unreachable(format!("{e:?}")))?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    init.set_redirect(web_sys::RequestRedirect::Manual);
    init.set_signal(Some(&controller.signal()));
    let headers =
        headers_to_sys(&up.headers).map_err(|e| FetchFailure::Unreachable(e.to_string()))?;
    init.set_headers(&headers.into());
    if let Some(body) = incoming.body() {
        init.set_body(&body);
    }
    let req = web_sys::Request::new_with_str_and_init(&url, &init)
        .map_err(|e| FetchFailure::Unreachable(format!("invalid upstream request: {e:?}")))?;
    let promise = match &service {
        Some(s) => s.fetch(&req),
        None => global_fetch(&req),
    };
    let fetch = JsFuture::from(promise);
    let delay = worker::Delay::from(std::time::Duration::from_millis(u64::from(up.timeout_ms)));
    match select(fetch, delay).await {
        Either::Left((Ok(v), _)) => v
            .dyn_into::<web_sys::Response>()
            .map_err(|_| FetchFailure::Unreachable("upstream returned no response".into())),
        Either::Left((Err(e), _)) => Err(FetchFailure::Unreachable(
            e.as_string()
                .or_else(|| js_sys::Error::from(e).message().as_string())
                .unwrap_or_else(|| "fetch failed".into()),
        )),
        Either::Right(((), _)) => {
            controller.abort();
            Err(FetchFailure::Timeout)
        }
    }
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

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: worker::Context) -> Result<Response> {
    install_panic_hook();
    let sys: &web_sys::Request = req.inner();
    let method = sys.method();
    let head_only = method.eq_ignore_ascii_case("HEAD");
    let headers = headers_from_sys(&sys.headers());
    let pipeline = PIPELINE.with(Rc::clone);
    let active = active_config(&env).await?;
    let Some(head) = RequestHead::from_url(&method, &sys.url(), headers) else {
        let s = crate::errors::render(EdgeError::BadRequest, RouteClass::Page, &random_uuid());
        return synthetic_response(&s, head_only);
    };
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
        active: &active,
        request_id: pipeline::request_id(&head, random_uuid),
        class: RouteClass::Page,
        route: None,
        upstream: None,
        access_token,
        version: crate::VERSION,
    };
    if let Some(p) = var(&env, DEBUG_PANIC_VAR) {
        if head.path == p {
            panic!("deliberate panic on {p} (EDGE_DEBUG_PANIC_PATH)");
        }
    }
    let up = match pipeline.request(&mut cx, &head) {
        Outcome::Respond(s) => return synthetic_response(&s, head_only),
        Outcome::Forward(up) => up,
    };
    let origin = match fetch_upstream(&env, sys, &method, &up).await {
        Ok(r) => r,
        Err(failure) => {
            let (err, detail) = match failure {
                FetchFailure::Timeout => (
                    EdgeError::OriginTimeout,
                    format!("no response headers within {} ms", up.timeout_ms),
                ),
                FetchFailure::Unreachable(d) => (EdgeError::OriginUnreachable, d),
                FetchFailure::NotConfigured(d) => (EdgeError::UpstreamNotConfigured, d),
            };
            log_json(
                "error",
                err.code(),
                &format!(
                    "request {} route {:?} upstream {:?}: {detail}",
                    cx.request_id, cx.route, up.upstream
                ),
            );
            return synthetic_response(&pipeline.error(&cx, &head, err), head_only);
        }
    };
    if origin.status() == 101 {
        // A WebSocket handshake: hand the origin's socket to the client as is.
        return Ok(Response::from(origin));
    }
    let mut resp = ResponseHead {
        status: origin.status(),
        headers: headers_from_sys(&origin.headers()),
    };
    pipeline.respond(&cx, &head, &mut resp);
    let init = web_sys::ResponseInit::new();
    init.set_status(resp.status);
    init.set_status_text(&origin.status_text());
    init.set_headers(&headers_to_sys(&resp.headers)?.into());
    let body = origin.body();
    let out = web_sys::Response::new_with_opt_readable_stream_and_init(body.as_ref(), &init)?;
    Ok(Response::from(out))
}
