//! Request handling: envelope, auth, faults, routing.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{json, Value};

use super::state::{
    duration_secs, err, hex_id, now_unix, rfc3339, uuid, AccessApp, ApiErr, Hyperdrive, Policy,
    Scope, ServiceToken, State, Tunnel, VpcService, VPC_NAME_TAKEN, VPC_NOT_FOUND,
};
use super::{lock, Logged, Shared};

enum Reply {
    Json(Value, Option<Value>),
    Raw(Vec<u8>),
}

type Resp = Response<Full<Bytes>>;

fn envelope(status: u16, body: Value, extra_headers: &[(&str, String)]) -> Resp {
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in extra_headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn error_resp(e: &ApiErr, headers: &[(&str, String)]) -> Resp {
    let mut errobj = json!({"code": e.code, "message": e.message});
    if e.code == 6003 {
        errobj["error_chain"] =
            json!([{"code": 6111, "message": "Invalid format for Authorization header"}]);
    }
    envelope(
        e.status,
        json!({"success": false, "errors": [errobj], "messages": [], "result": null}),
        headers,
    )
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Resp, std::io::Error> {
    let method = req.method().as_str().to_string();
    let full_path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = full_path
        .strip_prefix("/client/v4/")
        .unwrap_or(full_path.trim_start_matches('/'))
        .to_string();
    let logged_path = if query.is_empty() {
        path.clone()
    } else {
        let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{path}?{}", q.join("&"))
    };
    let mutating = !matches!(method.as_str(), "GET" | "HEAD");

    // Injected faults.
    {
        let mut c = lock(&shared.control);
        let hit = c.faults.iter_mut().find(|f| {
            f.count > 0
                && f.method.as_deref().is_none_or(|m| m == method)
                && path.contains(&f.path_contains)
        });
        if let Some(f) = hit {
            f.count -= 1;
            let (status, retry) = (f.status, f.retry_after);
            c.log.push(Logged {
                method,
                path: logged_path,
                status,
                seq: crate::seq::next(),
            });
            let e = if status == 429 {
                err(
                    429,
                    971,
                    "Please wait and consider throttling your request speed",
                )
            } else {
                err(status, 10001, "Internal server error (injected)")
            };
            let headers: Vec<(&str, String)> = retry
                .map(|r| ("retry-after", r.to_string()))
                .into_iter()
                .collect();
            return Ok(error_resp(&e, &headers));
        }
    }

    let result = {
        let mut st = lock(&shared.state);
        authorize(&st, auth.as_deref(), &method, &path)
            .and_then(|_| route(&mut st, &method, &path, &query, &body))
    };
    let crash = {
        let mut c = lock(&shared.control);
        let mut crash = false;
        if result.is_ok() && mutating {
            c.mutations_seen += 1;
            if c.crash_at == Some(c.mutations_seen) {
                c.crash_at = None;
                c.log.push(Logged {
                    method: method.clone(),
                    path: logged_path.clone(),
                    status: 0,
                    seq: crate::seq::next(),
                });
                crash = true;
            }
        }
        crash
    };
    if crash {
        shared.crashed.notify_one();
        // Applied, never answered: the client is dropped meanwhile.
        std::future::pending::<()>().await;
    }
    let mut c = lock(&shared.control);
    match result {
        Ok(reply) => {
            c.log.push(Logged {
                method,
                path: logged_path,
                status: 200,
                seq: crate::seq::next(),
            });
            Ok(match reply {
                Reply::Json(result, info) => {
                    let mut env =
                        json!({"success": true, "errors": [], "messages": [], "result": result});
                    if let Some(i) = info {
                        env["result_info"] = i;
                    }
                    envelope(200, env, &[])
                }
                Reply::Raw(bytes) => Response::builder()
                    .status(200)
                    .header("content-type", "application/octet-stream")
                    .body(Full::new(Bytes::from(bytes)))
                    .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))),
            })
        }
        Err(e) => {
            c.log.push(Logged {
                method,
                path: logged_path,
                status: e.status,
                seq: crate::seq::next(),
            });
            Ok(error_resp(&e, &[]))
        }
    }
}

/// The scope a request needs, and whether a read scope suffices.
fn needed_scope(path: &str, method: &str) -> Option<(Scope, Option<Scope>)> {
    let read = method == "GET";
    let seg: Vec<&str> = path.split('/').collect();
    match seg.as_slice() {
        ["zones"] => Some((Scope::ZoneRead, None)),
        ["zones", _, "dns_records", ..] => Some((Scope::DnsEdit, read.then_some(Scope::DnsRead))),
        ["accounts", _, "cfd_tunnel", ..] => {
            Some((Scope::TunnelEdit, read.then_some(Scope::TunnelRead)))
        }
        ["accounts", _, "access", "service_tokens", ..] => Some((Scope::AccessTokensEdit, None)),
        ["accounts", _, "access", "apps", ..] => Some((Scope::AccessAppsEdit, None)),
        ["accounts", _, "hyperdrive", ..] => Some((Scope::HyperdriveEdit, None)),
        ["accounts", _, "connectivity", "directory", "services", ..] => Some((
            Scope::ConnectivityAdmin,
            read.then_some(Scope::ConnectivityRead),
        )),
        ["accounts", _, "workers", ..] => Some((Scope::WorkersEdit, None)),
        ["accounts", _, "storage", "kv", ..] => Some((Scope::KvEdit, None)),
        _ => None,
    }
}

fn authorize(st: &State, auth: Option<&str>, method: &str, path: &str) -> Result<(), ApiErr> {
    let Some(auth) = auth else {
        return Err(err(
            400,
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        ));
    };
    let Some(token) = auth
        .strip_prefix("Bearer ")
        .filter(|t| !t.is_empty() && !t.contains(' '))
    else {
        return Err(err(400, 6003, "Invalid request headers"));
    };
    let Some((account, scopes)) = st.tokens.get(token) else {
        return Err(err(403, 9109, "Invalid access token"));
    };
    let seg: Vec<&str> = path.split('/').collect();
    if seg.first() == Some(&"accounts") && seg.get(1) != Some(&account.as_str()) {
        return Err(err(403, 10000, "Authentication error"));
    }
    if seg.first() == Some(&"zones") && seg.len() > 1 {
        let owned = st
            .zones
            .iter()
            .any(|z| z.id == seg[1] && &z.account == account);
        if !owned {
            return Err(err(403, 10000, "Authentication error"));
        }
    }
    match needed_scope(path, method) {
        None => Err(err(
            404,
            7003,
            "Could not route to the requested path, perhaps your object identifier is invalid?",
        )),
        Some((edit, read)) => {
            if scopes.contains(&edit) || read.is_some_and(|r| scopes.contains(&r)) {
                Ok(())
            } else {
                Err(err(403, 10000, "Authentication error"))
            }
        }
    }
}

fn paginate(
    items: Vec<Value>,
    q: &BTreeMap<String, String>,
    default_per_page: usize,
) -> Result<Reply, ApiErr> {
    let page: usize = match q.get("page") {
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| err(400, 1004, "page must be a positive integer"))?,
        None => 1,
    };
    let per_page: usize = match q.get("per_page") {
        Some(p) => p
            .parse()
            .ok()
            .filter(|p| (5..=1000).contains(p))
            .ok_or_else(|| err(400, 1004, "per_page must be between 5 and 1000"))?,
        None => default_per_page,
    };
    let total = items.len();
    let pages = total.div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let info = json!({"page": page, "per_page": per_page, "count": chunk.len(), "total_count": total, "total_pages": pages});
    Ok(Reply::Json(Value::Array(chunk), Some(info)))
}

fn body_json(body: &Bytes) -> Result<Value, ApiErr> {
    serde_json::from_slice(body).map_err(|e| err(400, 1001, format!("Invalid JSON body: {e}")))
}

fn ok(v: Value) -> Result<Reply, ApiErr> {
    Ok(Reply::Json(v, None))
}

fn route(
    st: &mut State,
    method: &str,
    path: &str,
    q: &BTreeMap<String, String>,
    body: &Bytes,
) -> Result<Reply, ApiErr> {
    let seg: Vec<&str> = path.split('/').collect();
    match (method, seg.as_slice()) {
        // ---- zones ----
        ("GET", ["zones"]) => {
            let items = st
                .zones
                .iter()
                .filter(|z| q.get("name").is_none_or(|n| n == &z.name))
                .filter(|z| q.get("account.id").is_none_or(|a| a == &z.account))
                .map(|z| json!({"id": z.id, "name": z.name, "status": "active", "account": {"id": z.account}}))
                .collect();
            paginate(items, q, 20)
        }
        // ---- DNS ----
        ("GET", ["zones", zone, "dns_records"]) => {
            let items = st
                .dns
                .iter()
                .filter(|r| &r.zone == zone)
                .filter(|r| {
                    q.get("name")
                        .is_none_or(|n| n.eq_ignore_ascii_case(&r.name))
                })
                .filter(|r| q.get("type").is_none_or(|t| t == &r.kind))
                .map(State::dns_json)
                .collect();
            paginate(items, q, 100)
        }
        ("POST", ["zones", zone, "dns_records"]) => {
            let zone_name = zone_name(st, zone)?;
            let mut rec = State::validate_dns(&body_json(body)?, &zone_name)?;
            rec.zone = zone.to_string();
            st.dns_conflict(&rec, None)?;
            rec.id = hex_id(16);
            let v = State::dns_json(&rec);
            st.dns.push(rec);
            ok(v)
        }
        ("PUT" | "PATCH", ["zones", zone, "dns_records", id]) => {
            let zone_name = zone_name(st, zone)?;
            let idx = st
                .dns
                .iter()
                .position(|r| &r.zone == zone && &r.id == id)
                .ok_or_else(|| err(404, 81044, "Record does not exist."))?;
            let mut b = body_json(body)?;
            if method == "PATCH" {
                let cur = State::dns_json(&st.dns[idx]);
                let mut merged = cur;
                if let (Some(m), Some(p)) = (merged.as_object_mut(), b.as_object()) {
                    for (k, v) in p {
                        m.insert(k.clone(), v.clone());
                    }
                }
                b = merged;
            }
            let mut rec = State::validate_dns(&b, &zone_name)?;
            rec.zone = zone.to_string();
            rec.id = id.to_string();
            st.dns_conflict(&rec, Some(id))?;
            let v = State::dns_json(&rec);
            st.dns[idx] = rec;
            ok(v)
        }
        ("DELETE", ["zones", zone, "dns_records", id]) => {
            let idx = st
                .dns
                .iter()
                .position(|r| &r.zone == zone && &r.id == id)
                .ok_or_else(|| err(404, 81044, "Record does not exist."))?;
            st.dns.remove(idx);
            ok(json!({"id": id}))
        }
        // ---- tunnels ----
        ("GET", ["accounts", acc, "cfd_tunnel"]) => {
            let want_deleted = q.get("is_deleted").map(|s| s == "true");
            let items = st
                .tunnels
                .iter()
                .filter(|t| &t.account == acc)
                .filter(|t| q.get("name").is_none_or(|n| n == &t.name))
                .filter(|t| want_deleted.is_none_or(|d| d == t.deleted))
                .map(State::tunnel_json)
                .collect();
            paginate(items, q, 20)
        }
        ("POST", ["accounts", acc, "cfd_tunnel"]) => {
            let b = body_json(body)?;
            let name = b["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| err(400, 1003, "tunnel name is required"))?;
            let src = b["config_src"].as_str().unwrap_or("local");
            if !["local", "cloudflare"].contains(&src) {
                return Err(err(400, 1003, "config_src must be local or cloudflare"));
            }
            if st
                .tunnels
                .iter()
                .any(|t| &t.account == acc && t.name == name && !t.deleted)
            {
                return Err(err(409, 1013, "You already have a tunnel with this name."));
            }
            // Optional; when given, base64 of at least 32 bytes.
            let secret = match b.get("tunnel_secret") {
                None | Some(Value::Null) => base64_std(&rand::random::<[u8; 32]>()),
                Some(v) => {
                    use base64::Engine as _;
                    let s = v.as_str().unwrap_or_default();
                    match base64::engine::general_purpose::STANDARD.decode(s) {
                        Ok(bytes) if bytes.len() >= 32 => s.to_string(),
                        _ => {
                            return Err(err(
                                400,
                                1003,
                                "tunnel_secret must be a base64 string of at least 32 bytes",
                            ))
                        }
                    }
                }
            };
            let t = Tunnel {
                id: uuid(),
                account: acc.to_string(),
                name: name.into(),
                config_src: src.into(),
                deleted: false,
                config: None,
                version: 0,
                secret,
                connections: 0,
            };
            let v = State::tunnel_json(&t);
            st.tunnels.push(t);
            ok(v)
        }
        ("GET", ["accounts", acc, "cfd_tunnel", id]) => {
            let t = tunnel(st, acc, id)?;
            ok(State::tunnel_json(t))
        }
        ("GET", ["accounts", acc, "cfd_tunnel", id, "token"]) => {
            let t = tunnel(st, acc, id)?;
            let tok = json!({"a": t.account, "t": t.id, "s": t.secret}).to_string();
            let b64 = base64_std(tok.as_bytes());
            ok(Value::String(b64))
        }
        ("GET", ["accounts", acc, "cfd_tunnel", id, "configurations"]) => {
            let t = tunnel(st, acc, id)?;
            ok(
                json!({"tunnel_id": t.id, "version": t.version, "config": t.config, "source": t.config_src}),
            )
        }
        ("PUT", ["accounts", acc, "cfd_tunnel", id, "configurations"]) => {
            let b = body_json(body)?;
            let config = b
                .get("config")
                .cloned()
                .ok_or_else(|| err(400, 1055, "config is required"))?;
            State::validate_tunnel_config(&config)?;
            let t = st
                .tunnels
                .iter_mut()
                .find(|t| &t.account == acc && &t.id == id && !t.deleted)
                .ok_or_else(|| err(404, 1002, "tunnel not found"))?;
            if t.config_src != "cloudflare" {
                return Err(err(400, 1056, "This tunnel is locally configured; its configuration cannot be managed remotely."));
            }
            t.version += 1;
            t.config = Some(config);
            ok(
                json!({"tunnel_id": t.id, "version": t.version, "config": t.config, "source": "cloudflare"}),
            )
        }
        // ---- Access apps ----
        ("GET", ["accounts", acc, "access", "apps"]) => {
            let items = st
                .apps
                .iter()
                .filter(|a| &a.account == acc)
                .map(app_json)
                .collect();
            paginate(items, q, 50)
        }
        ("POST", ["accounts", acc, "access", "apps"]) => {
            let b = validate_app(st, acc, &body_json(body)?, None)?;
            let app = AccessApp {
                id: uuid(),
                account: acc.to_string(),
                body: b,
                aud: hex_id(32),
            };
            let v = app_json(&app);
            st.apps.push(app);
            ok(v)
        }
        ("GET", ["accounts", acc, "access", "apps", id]) => {
            let a = st
                .apps
                .iter()
                .find(|a| &a.account == acc && &a.id == id)
                .ok_or_else(|| err(404, 12130, "access.api.error.not_found"))?;
            ok(app_json(a))
        }
        ("PUT", ["accounts", acc, "access", "apps", id]) => {
            let b = validate_app(st, acc, &body_json(body)?, Some(id))?;
            let a = st
                .apps
                .iter_mut()
                .find(|a| &a.account == acc && &a.id == id)
                .ok_or_else(|| err(404, 12130, "access.api.error.not_found"))?;
            a.body = b;
            ok(app_json(a))
        }
        ("DELETE", ["accounts", acc, "access", "apps", id]) => {
            let idx = st
                .apps
                .iter()
                .position(|a| &a.account == acc && &a.id == id)
                .ok_or_else(|| err(404, 12130, "access.api.error.not_found"))?;
            st.apps.remove(idx);
            st.policies.retain(|p| &p.app != id);
            ok(json!({"id": id}))
        }
        ("GET", ["accounts", acc, "access", "apps", app, "policies"]) => {
            app_exists(st, acc, app)?;
            let items = st
                .policies
                .iter()
                .filter(|p| &p.app == app)
                .map(policy_json)
                .collect();
            paginate(items, q, 50)
        }
        ("POST", ["accounts", acc, "access", "apps", app, "policies"]) => {
            app_exists(st, acc, app)?;
            let b = validate_policy(st, acc, &body_json(body)?)?;
            let p = Policy {
                id: uuid(),
                app: app.to_string(),
                body: b,
            };
            let v = policy_json(&p);
            st.policies.push(p);
            ok(v)
        }
        ("PUT", ["accounts", acc, "access", "apps", app, "policies", id]) => {
            app_exists(st, acc, app)?;
            let b = validate_policy(st, acc, &body_json(body)?)?;
            let p = st
                .policies
                .iter_mut()
                .find(|p| &p.app == app && &p.id == id)
                .ok_or_else(|| err(404, 12130, "access.api.error.policy_not_found"))?;
            p.body = b;
            ok(policy_json(p))
        }
        ("DELETE", ["accounts", acc, "access", "apps", app, "policies", id]) => {
            app_exists(st, acc, app)?;
            let idx = st
                .policies
                .iter()
                .position(|p| &p.app == app && &p.id == id)
                .ok_or_else(|| err(404, 12130, "access.api.error.policy_not_found"))?;
            st.policies.remove(idx);
            ok(json!({"id": id}))
        }
        // ---- service tokens ----
        ("GET", ["accounts", acc, "access", "service_tokens"]) => {
            let items = st
                .service_tokens
                .iter()
                .filter(|t| &t.account == acc)
                .map(|t| token_json(t, false))
                .collect();
            paginate(items, q, 50)
        }
        ("POST", ["accounts", acc, "access", "service_tokens"]) => {
            let b = body_json(body)?;
            let name = b["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    err(
                        400,
                        12130,
                        "access.api.error.invalid_request: name is required",
                    )
                })?;
            let duration = b["duration"].as_str().unwrap_or("8760h");
            if !(duration == "forever"
                || duration.ends_with('h') && duration[..duration.len() - 1].parse::<u32>().is_ok())
            {
                return Err(err(
                    400,
                    12130,
                    "access.api.error.invalid_request: invalid duration",
                ));
            }
            // Names are not unique in the real API either.
            let t = ServiceToken {
                id: uuid(),
                account: acc.to_string(),
                name: name.into(),
                client_id: format!("{}.access", hex_id(16)),
                client_secret: hex_id(32),
                duration: duration.into(),
                expires_at: now_unix() + duration_secs(duration),
            };
            let v = token_json(&t, true);
            st.service_tokens.push(t);
            ok(v)
        }
        ("POST", ["accounts", acc, "access", "service_tokens", id, "rotate"]) => {
            let t = st
                .service_tokens
                .iter_mut()
                .find(|t| &t.account == acc && &t.id == id)
                .ok_or_else(|| err(404, 12130, "access.api.error.service_token_not_found"))?;
            t.client_secret = hex_id(32);
            ok(token_json(t, true))
        }
        ("POST", ["accounts", acc, "access", "service_tokens", id, "refresh"]) => {
            let t = st
                .service_tokens
                .iter_mut()
                .find(|t| &t.account == acc && &t.id == id)
                .ok_or_else(|| err(404, 12130, "access.api.error.service_token_not_found"))?;
            t.expires_at = now_unix() + duration_secs(&t.duration);
            ok(token_json(t, false))
        }
        ("DELETE", ["accounts", acc, "access", "service_tokens", id]) => {
            let idx = st
                .service_tokens
                .iter()
                .position(|t| &t.account == acc && &t.id == id)
                .ok_or_else(|| err(404, 12130, "access.api.error.service_token_not_found"))?;
            let t = st.service_tokens.remove(idx);
            ok(token_json(&t, false))
        }
        // ---- Hyperdrive ----
        ("GET", ["accounts", acc, "hyperdrive", "configs"]) => {
            let items = st
                .hyperdrive
                .iter()
                .filter(|h| &h.account == acc)
                .map(hyperdrive_json)
                .collect();
            paginate(items, q, 20)
        }
        ("POST", ["accounts", acc, "hyperdrive", "configs"]) => {
            let b = validate_hyperdrive(&body_json(body)?)?;
            if st
                .hyperdrive
                .iter()
                .any(|h| &h.account == acc && h.body["name"] == b["name"])
            {
                return Err(err(
                    409,
                    2017,
                    "A Hyperdrive config with that name already exists",
                ));
            }
            let h = Hyperdrive {
                id: hex_id(16),
                account: acc.to_string(),
                body: b,
            };
            let v = hyperdrive_json(&h);
            st.hyperdrive.push(h);
            ok(v)
        }
        ("PUT", ["accounts", acc, "hyperdrive", "configs", id]) => {
            let b = validate_hyperdrive(&body_json(body)?)?;
            let h = st
                .hyperdrive
                .iter_mut()
                .find(|h| &h.account == acc && &h.id == id)
                .ok_or_else(|| err(404, 2005, "Hyperdrive config not found"))?;
            h.body = b;
            ok(hyperdrive_json(h))
        }
        // ---- Workers VPC (connectivity directory services) ----
        ("GET", ["accounts", acc, "connectivity", "directory", "services"]) => {
            let kind = q.get("type").map(String::as_str);
            if kind.is_some_and(|k| !["http", "tcp"].contains(&k)) {
                return Err(err(
                    400,
                    super::state::VPC_INVALID,
                    "type must be http or tcp",
                ));
            }
            let items = st
                .vpc_services
                .iter()
                .filter(|v| &v.account == acc)
                .filter(|v| kind.is_none_or(|k| v.body["type"] == k))
                .map(State::vpc_service_json)
                .collect();
            paginate(items, q, 20)
        }
        ("POST", ["accounts", acc, "connectivity", "directory", "services"]) => {
            let b = st.validate_vpc_service(acc, &body_json(body)?)?;
            vpc_name_taken(st, acc, &b["name"], None)?;
            let now = rfc3339(now_unix());
            let v = VpcService {
                id: uuid(),
                account: acc.to_string(),
                body: b,
                created_at: now.clone(),
                updated_at: now,
            };
            let out = State::vpc_service_json(&v);
            st.vpc_services.push(v);
            ok(out)
        }
        ("GET", ["accounts", acc, "connectivity", "directory", "services", id]) => {
            let v = st
                .vpc_services
                .iter()
                .find(|v| &v.account == acc && &v.id == id)
                .ok_or_else(|| err(404, VPC_NOT_FOUND, "service not found"))?;
            ok(State::vpc_service_json(v))
        }
        ("PUT", ["accounts", acc, "connectivity", "directory", "services", id]) => {
            let b = st.validate_vpc_service(acc, &body_json(body)?)?;
            vpc_name_taken(st, acc, &b["name"], Some(id))?;
            let v = st
                .vpc_services
                .iter_mut()
                .find(|v| &v.account == acc && &v.id == id)
                .ok_or_else(|| err(404, VPC_NOT_FOUND, "service not found"))?;
            v.body = b;
            v.updated_at = rfc3339(now_unix());
            ok(State::vpc_service_json(v))
        }
        ("DELETE", ["accounts", acc, "connectivity", "directory", "services", id]) => {
            let idx = st
                .vpc_services
                .iter()
                .position(|v| &v.account == acc && &v.id == id)
                .ok_or_else(|| err(404, VPC_NOT_FOUND, "service not found"))?;
            st.vpc_services.remove(idx);
            ok(Value::Null)
        }
        // ---- Worker secrets ----
        ("GET", ["accounts", acc, "workers", "scripts", script, "secrets"]) => {
            let m = script_secrets(st, acc, script)?;
            let items: Vec<Value> = m
                .keys()
                .map(|n| json!({"name": n, "type": "secret_text"}))
                .collect();
            ok(Value::Array(items))
        }
        ("PUT", ["accounts", acc, "workers", "scripts", script, "secrets"]) => {
            let b = body_json(body)?;
            let name = b["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| err(400, 10021, "secret name is required"))?
                .to_string();
            if b["type"] != "secret_text" {
                return Err(err(400, 10021, "type must be secret_text"));
            }
            let text = b["text"]
                .as_str()
                .ok_or_else(|| err(400, 10021, "text is required"))?
                .to_string();
            let m = script_secrets_mut(st, acc, script)?;
            m.insert(name.clone(), text);
            ok(json!({"name": name, "type": "secret_text"}))
        }
        ("DELETE", ["accounts", acc, "workers", "scripts", script, "secrets", name]) => {
            let m = script_secrets_mut(st, acc, script)?;
            if m.remove(*name).is_none() {
                return Err(err(404, 10056, "workers.api.error.secret_not_found"));
            }
            ok(Value::Null)
        }
        // ---- KV ----
        ("GET", ["accounts", acc, "storage", "kv", "namespaces", ns, "values", key]) => {
            let key = decode(key);
            let m = st
                .kv
                .get(&(acc.to_string(), ns.to_string()))
                .ok_or_else(|| err(404, 10013, "namespace not found"))?;
            m.get(&key)
                .map(|v| Reply::Raw(v.clone()))
                .ok_or_else(|| err(404, 10009, "get: 'key not found'"))
        }
        ("PUT", ["accounts", acc, "storage", "kv", "namespaces", ns, "values", key]) => {
            let key = decode(key);
            if key.len() > 512 {
                return Err(err(414, 10033, "key too long"));
            }
            let m = st
                .kv
                .get_mut(&(acc.to_string(), ns.to_string()))
                .ok_or_else(|| err(404, 10013, "namespace not found"))?;
            m.insert(key, body.to_vec());
            ok(Value::Null)
        }
        _ => Err(err(
            404,
            7003,
            "Could not route to the requested path, perhaps your object identifier is invalid?",
        )),
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("k={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn base64_std(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A VPC service name is unique in the account (`except`: the service being
/// replaced by a PUT).
fn vpc_name_taken(st: &State, acc: &str, name: &Value, except: Option<&str>) -> Result<(), ApiErr> {
    if st
        .vpc_services
        .iter()
        .any(|v| v.account == acc && Some(v.id.as_str()) != except && &v.body["name"] == name)
    {
        return Err(err(
            409,
            VPC_NAME_TAKEN,
            "A service with this name already exists",
        ));
    }
    Ok(())
}

fn zone_name(st: &State, zone: &str) -> Result<String, ApiErr> {
    st.zones
        .iter()
        .find(|z| z.id == zone)
        .map(|z| z.name.clone())
        .ok_or_else(|| err(404, 7003, "Could not route to /zones/…: zone not found"))
}

fn tunnel<'a>(st: &'a State, acc: &str, id: &str) -> Result<&'a Tunnel, ApiErr> {
    st.tunnels
        .iter()
        .find(|t| t.account == acc && t.id == id && !t.deleted)
        .ok_or_else(|| err(404, 1002, "tunnel not found"))
}

fn app_exists(st: &State, acc: &str, app: &str) -> Result<(), ApiErr> {
    if st.apps.iter().any(|a| a.account == acc && a.id == app) {
        Ok(())
    } else {
        Err(err(404, 12130, "access.api.error.not_found"))
    }
}

fn app_json(a: &AccessApp) -> Value {
    let mut v = a.body.clone();
    v["id"] = json!(a.id);
    v["aud"] = json!(a.aud);
    v["created_at"] = json!("2026-01-01T00:00:00Z");
    v
}

fn validate_app(st: &State, acc: &str, b: &Value, except: Option<&str>) -> Result<Value, ApiErr> {
    let bad = |m: &str| {
        Err(err(
            400,
            12130,
            format!("access.api.error.invalid_request: {m}"),
        ))
    };
    let Some(name) = b["name"].as_str().filter(|s| !s.is_empty()) else {
        return bad("name is required");
    };
    let kind = b["type"].as_str().unwrap_or("");
    if ![
        "self_hosted",
        "saas",
        "ssh",
        "vnc",
        "app_launcher",
        "warp",
        "biso",
        "bookmark",
        "dash_sso",
        "infrastructure",
    ]
    .contains(&kind)
    {
        return bad("type is invalid");
    }
    let domain = b["domain"].as_str().unwrap_or("");
    if kind == "self_hosted" && domain.is_empty() {
        return bad("domain is required for self_hosted applications");
    }
    if let Some(d) = b.get("session_duration").and_then(|d| d.as_str()) {
        let valid = ["s", "m", "h"]
            .iter()
            .any(|u| d.strip_suffix(u).is_some_and(|n| n.parse::<u32>().is_ok()));
        if !valid {
            return bad("session_duration must be like 24h");
        }
    }
    if st.apps.iter().any(|a| {
        a.account == acc
            && Some(a.id.as_str()) != except
            && a.body["domain"].as_str() == Some(domain)
    }) {
        return Err(err(
            400,
            12130,
            "access.api.error.conflict: an application with the same domain already exists",
        ));
    }
    let mut v = json!({"name": name, "type": kind, "domain": domain,
        "session_duration": b.get("session_duration").cloned().unwrap_or(json!("24h")),
        "app_launcher_visible": b.get("app_launcher_visible").cloned().unwrap_or(json!(true)),
        "service_auth_401_redirect": b.get("service_auth_401_redirect").cloned().unwrap_or(json!(false))});
    if let Some(t) = b.get("tags") {
        v["tags"] = t.clone();
    }
    Ok(v)
}

fn policy_json(p: &Policy) -> Value {
    let mut v = p.body.clone();
    v["id"] = json!(p.id);
    v
}

fn validate_policy(st: &State, acc: &str, b: &Value) -> Result<Value, ApiErr> {
    let bad = |m: &str| {
        Err(err(
            400,
            12130,
            format!("access.api.error.invalid_request: {m}"),
        ))
    };
    let Some(name) = b["name"].as_str().filter(|s| !s.is_empty()) else {
        return bad("name is required");
    };
    let decision = b["decision"].as_str().unwrap_or("");
    if !["allow", "deny", "non_identity", "bypass"].contains(&decision) {
        return bad("decision must be allow, deny, non_identity or bypass");
    }
    let Some(include) = b["include"].as_array().filter(|i| !i.is_empty()) else {
        return bad("include must have at least one rule");
    };
    for rule in include
        .iter()
        .chain(b["exclude"].as_array().into_iter().flatten())
        .chain(b["require"].as_array().into_iter().flatten())
    {
        if let Some(tid) = rule
            .get("service_token")
            .map(|s| s["token_id"].as_str().unwrap_or(""))
        {
            if !st
                .service_tokens
                .iter()
                .any(|t| t.account == acc && t.id == tid)
            {
                return bad("service_token.token_id does not exist");
            }
        }
    }
    Ok(
        json!({"name": name, "decision": decision, "include": include,
        "exclude": b.get("exclude").cloned().unwrap_or(json!([])),
        "require": b.get("require").cloned().unwrap_or(json!([])),
        "precedence": b.get("precedence").cloned().unwrap_or(json!(1))}),
    )
}

fn token_json(t: &ServiceToken, with_secret: bool) -> Value {
    let mut v = json!({"id": t.id, "name": t.name, "client_id": t.client_id, "duration": t.duration,
        "expires_at": rfc3339(t.expires_at), "created_at": "2026-01-01T00:00:00Z"});
    if with_secret {
        v["client_secret"] = json!(t.client_secret);
    }
    v
}

fn validate_hyperdrive(b: &Value) -> Result<Value, ApiErr> {
    let bad = |m: &str| Err(err(400, 2001, format!("Invalid Hyperdrive config: {m}")));
    if b["name"].as_str().is_none_or(|n| n.is_empty()) {
        return bad("name is required");
    }
    let o = &b["origin"];
    for k in ["host", "database", "user", "password"] {
        if o[k].as_str().is_none_or(|v| v.is_empty()) {
            return bad(&format!("origin.{k} is required"));
        }
    }
    if !["postgres", "postgresql"].contains(&o["scheme"].as_str().unwrap_or("")) {
        return bad("origin.scheme must be postgres");
    }
    let access = o.get("access_client_id").is_some() || o.get("access_client_secret").is_some();
    if access {
        if o["access_client_id"].as_str().is_none_or(|v| v.is_empty())
            || o["access_client_secret"]
                .as_str()
                .is_none_or(|v| v.is_empty())
        {
            return bad("origin.access_client_id and origin.access_client_secret go together");
        }
        if o.get("port").is_some() {
            return bad("origin.port must not be set for an Access-protected origin");
        }
    } else if o["port"].as_u64().is_none() {
        return bad("origin.port is required");
    }
    Ok(b.clone())
}

fn hyperdrive_json(h: &Hyperdrive) -> Value {
    let mut v = h.body.clone();
    v["id"] = json!(h.id);
    if let Some(o) = v["origin"].as_object_mut() {
        o.remove("password");
        o.remove("access_client_secret");
    }
    if v.get("caching").is_none() {
        v["caching"] = json!({"disabled": false});
    }
    v
}

fn script_secrets<'a>(
    st: &'a State,
    acc: &str,
    script: &str,
) -> Result<&'a BTreeMap<String, String>, ApiErr> {
    st.scripts
        .get(&(acc.to_string(), script.to_string()))
        .ok_or_else(|| err(404, 10007, "workers.api.error.script_not_found"))
}

fn script_secrets_mut<'a>(
    st: &'a mut State,
    acc: &str,
    script: &str,
) -> Result<&'a mut BTreeMap<String, String>, ApiErr> {
    st.scripts
        .get_mut(&(acc.to_string(), script.to_string()))
        .ok_or_else(|| err(404, 10007, "workers.api.error.script_not_found"))
}
