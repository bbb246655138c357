//! Routing and the JSON shapes of the fake Hetzner API.

use super::*;
use serde_json::{json, Value};

type Query = [(String, String)];

fn q<'a>(query: &'a Query, key: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn labels_from(v: Option<&Value>) -> Result<Labels, Reply> {
    let Some(v) = v else { return Ok(Labels::new()) };
    let Some(m) = v.as_object() else {
        return Err(invalid("labels", "must be an object"));
    };
    let mut out = Labels::new();
    for (k, val) in m {
        let Some(val) = val.as_str() else {
            return Err(invalid("labels", "label values must be strings"));
        };
        if !valid_label_key(k) || !valid_label_value(val) {
            return Err(invalid("labels", &format!("label {k}={val} is invalid")));
        }
        out.insert(k.clone(), val.to_string());
    }
    Ok(out)
}

fn valid_label_value(v: &str) -> bool {
    v.len() <= 63
        && (v.is_empty()
            || (v.starts_with(|c: char| c.is_ascii_alphanumeric())
                && v.ends_with(|c: char| c.is_ascii_alphanumeric())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))))
}

fn valid_label_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    !name.is_empty()
        && valid_label_value(name)
        && prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && valid_hostname(p))
}

/// RFC 1123 hostname.
pub fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn selector_filter(query: &Query) -> Result<Option<Vec<selector::Expr>>, Reply> {
    match q(query, "label_selector") {
        None => Ok(None),
        Some(s) => selector::parse(s)
            .map(Some)
            .map_err(|e| invalid("label_selector", &e)),
    }
}

/// Pages a list. `items` is already filtered and sorted.
fn paginate(key: &str, items: Vec<Value>, query: &Query) -> Reply {
    let page: usize = q(query, "page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per_page: usize = q(query, "per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(25)
        .clamp(1, 50);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    ok(
        200,
        json!({
            key: slice,
            "meta": { "pagination": {
                "page": page, "per_page": per_page,
                "previous_page": if page > 1 { json!(page - 1) } else { Value::Null },
                "next_page": if page < last { json!(page + 1) } else { Value::Null },
                "last_page": last, "total_entries": total,
            } }
        }),
    )
}

fn location_json(name: &str) -> Value {
    let (id, name, city, country, zone) = LOCATIONS
        .iter()
        .find(|l| l.1 == name)
        .copied()
        .unwrap_or(LOCATIONS[4]);
    json!({
        "id": id, "name": name, "description": format!("{city} DC Park 1"),
        "city": city, "country": country, "latitude": 45.0, "longitude": -122.0,
        "network_zone": zone,
    })
}

/// Arm (cax) types are only offered in the EU locations.
pub fn type_in_location(server_type: &str, location: &str) -> bool {
    let arm = SERVER_TYPES
        .iter()
        .any(|t| t.1 == server_type && t.6 == "arm");
    !arm || matches!(location, "fsn1" | "nbg1" | "hel1")
}

fn server_type_json(name: &str) -> Value {
    let Some(&(id, name, cores, memory, disk, cpu, arch)) =
        SERVER_TYPES.iter().find(|t| t.1 == name)
    else {
        return Value::Null;
    };
    json!({
        "id": id, "name": name, "description": name.to_uppercase(), "category": "regular_purpose",
        "cores": cores, "memory": memory, "disk": disk, "deprecated": false, "deprecation": null,
        "prices": LOCATIONS.iter().map(|l| json!({
            "location": l.1,
            "price_hourly": {"net": "0.0100000000", "gross": "0.0119000000000000"},
            "price_monthly": {"net": "5.0000000000", "gross": "5.9500000000000000"},
            "included_traffic": 21990232555520u64,
            "price_per_tb_traffic": {"net": "1.0000000000", "gross": "1.1900000000000000"},
        })).collect::<Vec<_>>(),
        "storage_type": "local", "cpu_type": cpu, "architecture": arch,
        "locations": LOCATIONS.iter().filter(|l| type_in_location(name, l.1)).map(|l| json!({"id": l.0, "name": l.1, "deprecation": null})).collect::<Vec<_>>(),
    })
}

fn protection(delete: bool) -> Value {
    json!({ "delete": delete })
}

pub(crate) fn action_json(a: &ActionRec) -> Value {
    let elapsed = a.started.elapsed();
    let finished = a.done || elapsed >= a.duration;
    let status = if !finished {
        "running"
    } else if a.fail {
        "error"
    } else {
        "success"
    };
    let progress = if finished {
        100
    } else {
        ((elapsed.as_secs_f64() / a.duration.as_secs_f64().max(1e-9)) * 100.0).min(99.0) as u64
    };
    json!({
        "id": a.id, "command": a.command, "status": status, "progress": progress,
        "started": a.started_at,
        "finished": if finished { json!(now_ts()) } else { Value::Null },
        "resources": a.resources.iter().map(|(id, t)| json!({"id": id, "type": t})).collect::<Vec<_>>(),
        "error": if status == "error" { json!({"code": "action_failed", "message": "Action failed"}) } else { Value::Null },
    })
}

fn image_json(i: &ImageRec) -> Value {
    json!({
        "id": i.id, "type": i.kind, "status": "available", "name": i.name,
        "description": i.description, "image_size": 0.5, "disk_size": 20,
        "created": i.created, "created_from": null, "bound_to": null,
        "os_flavor": "unknown", "os_version": null, "rapid_deploy": false,
        "protection": protection(false), "deprecated": null, "deleted": null,
        "labels": i.labels, "architecture": i.architecture,
    })
}

fn group_json(s: &State, g: &GroupRec) -> Value {
    let servers: Vec<u64> = s
        .servers
        .values()
        .filter(|x| x.placement_group == Some(g.id))
        .map(|x| x.id)
        .collect();
    json!({ "id": g.id, "name": g.name, "labels": g.labels, "type": g.kind, "created": g.created, "servers": servers })
}

fn firewall_applies_to(s: &State, f: &FirewallRec, srv: &ServerRec) -> bool {
    f.applied_to.iter().any(|a| match a["type"].as_str() {
        Some("server") => a.pointer("/server/id").and_then(Value::as_u64) == Some(srv.id),
        Some("label_selector") => a
            .pointer("/label_selector/selector")
            .and_then(Value::as_str)
            .and_then(|sel| selector::parse(sel).ok())
            .is_some_and(|e| selector::matches(&e, &srv.labels)),
        _ => false,
    }) && s.firewalls.contains_key(&f.id)
}

fn server_json(s: &State, x: &ServerRec) -> Value {
    let image = s
        .images
        .get(&x.image)
        .map(image_json)
        .unwrap_or(Value::Null);
    let firewalls: Vec<Value> = s
        .firewalls
        .values()
        .filter(|f| firewall_applies_to(s, f, x))
        .map(|f| json!({"id": f.id, "status": "applied"}))
        .collect();
    let loc = location_json(&x.location);
    let pg = x
        .placement_group
        .and_then(|id| s.groups.get(&id))
        .map(|g| group_json(s, g))
        .unwrap_or(Value::Null);
    json!({
        "id": x.id, "name": x.name, "status": x.status, "created": x.created,
        "public_net": {
            "ipv4": if x.ipv4 { json!({"id": x.id + 500000, "ip": "203.0.113.10", "blocked": false, "dns_ptr": "static.example.com"}) } else { Value::Null },
            "ipv6": x.ipv6.as_ref().map(|ip| json!({"id": x.id + 600000, "ip": ip, "blocked": false, "dns_ptr": []})),
            "floating_ips": [], "firewalls": firewalls,
        },
        "private_net": x.networks.iter().map(|(n, ip)| json!({"network": n, "ip": ip, "alias_ips": [], "mac_address": "86:00:00:00:00:01"})).collect::<Vec<_>>(),
        "server_type": server_type_json(&x.server_type),
        "datacenter": {
            "id": loc["id"], "name": format!("{}-dc1", x.location), "description": format!("{} DC 1", x.location),
            "location": loc,
            "server_types": {"supported": [22, 23, 31, 32, 33, 34, 45, 96], "available": [22, 23, 31, 32, 33, 34, 45, 96], "available_for_migration": [22, 23, 31, 32, 33, 34, 45, 96]},
        },
        "location": loc,
        "image": image, "iso": null, "rescue_enabled": false, "locked": false,
        "backup_window": null, "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": 21990232555520u64,
        "protection": {"delete": x.delete_protection, "rebuild": x.delete_protection},
        "labels": x.labels, "volumes": s.volumes.values().filter(|v| v.server == Some(x.id)).map(|v| v.id).collect::<Vec<_>>(),
        "load_balancers": [], "primary_disk_size": 80,
        "placement_group": pg,
    })
}

fn network_json(s: &State, n: &NetworkRec) -> Value {
    let servers: Vec<u64> = s
        .servers
        .values()
        .filter(|x| x.networks.iter().any(|(id, _)| *id == n.id))
        .map(|x| x.id)
        .collect();
    let lbs: Vec<u64> = s
        .load_balancers
        .values()
        .filter(|l| l.networks.contains(&n.id))
        .map(|l| l.id)
        .collect();
    json!({
        "id": n.id, "name": n.name, "ip_range": n.ip_range, "subnets": n.subnets, "routes": [],
        "servers": servers, "load_balancers": lbs, "protection": protection(false),
        "labels": n.labels, "created": n.created, "expose_routes_to_vswitch": false,
    })
}

fn firewall_json(s: &State, f: &FirewallRec) -> Value {
    let applied: Vec<Value> = f
        .applied_to
        .iter()
        .map(|a| {
            if a["type"] == "label_selector" {
                let sel = a.pointer("/label_selector/selector").and_then(Value::as_str).unwrap_or("");
                let exprs = selector::parse(sel).unwrap_or_default();
                let res: Vec<Value> = s
                    .servers
                    .values()
                    .filter(|x| selector::matches(&exprs, &x.labels))
                    .map(|x| json!({"type": "server", "server": {"id": x.id}}))
                    .collect();
                json!({"type": "label_selector", "label_selector": {"selector": sel}, "applied_to_resources": res})
            } else {
                a.clone()
            }
        })
        .collect();
    json!({ "id": f.id, "name": f.name, "labels": f.labels, "created": f.created, "rules": f.rules, "applied_to": applied })
}

fn lb_json(l: &LoadBalancerRec) -> Value {
    json!({
        "id": l.id, "name": l.name, "labels": l.labels, "created": l.created,
        "public_net": {"enabled": true, "ipv4": {"ip": "203.0.113.20", "dns_ptr": "lb.example.com"}, "ipv6": {"ip": "2001:db8::20", "dns_ptr": "lb.example.com"}},
        "private_net": l.networks.iter().map(|n| json!({"network": n, "ip": "10.0.1.200"})).collect::<Vec<_>>(),
        "location": location_json(&l.location),
        "load_balancer_type": {"id": 1, "name": "lb11", "description": "LB11", "max_connections": 20000, "max_services": 5, "max_targets": 25, "max_assigned_certificates": 10, "deprecated": null, "prices": []},
        "protection": protection(false), "services": [],
        "targets": l.target_servers.iter().map(|t| json!({"type": "server", "server": {"id": t}, "use_private_ip": true})).collect::<Vec<_>>(),
        "algorithm": {"type": "round_robin"}, "outgoing_traffic": 0, "ingoing_traffic": 0, "included_traffic": 21990232555520u64,
    })
}

fn volume_json(v: &VolumeRec) -> Value {
    json!({
        "id": v.id, "name": v.name, "labels": v.labels, "created": v.created, "server": v.server,
        "location": location_json(&v.location), "size": v.size, "linux_device": format!("/dev/disk/by-id/scsi-0HC_Volume_{}", v.id),
        "protection": protection(false), "status": "available", "format": "ext4",
    })
}

fn new_action(
    s: &mut State,
    command: &str,
    duration: Duration,
    resources: Vec<(u64, &'static str)>,
    effect: Effect,
) -> u64 {
    let id = s.id();
    let fail = match s.faults.fail_actions.get_mut(command) {
        Some(n) if *n > 0 => {
            *n -= 1;
            true
        }
        _ => false,
    };
    s.actions.insert(
        id,
        ActionRec {
            id,
            command: command.into(),
            started: Instant::now(),
            started_at: now_ts(),
            duration,
            fail,
            resources,
            effect,
            done: false,
        },
    );
    id
}

fn action_value(s: &State, id: u64) -> Value {
    s.actions.get(&id).map(action_json).unwrap_or(Value::Null)
}

fn matches_sel(exprs: &Option<Vec<selector::Expr>>, labels: &Labels) -> bool {
    exprs.as_ref().is_none_or(|e| selector::matches(e, labels))
}

fn name_filter(query: &Query, name: &str) -> bool {
    q(query, "name").is_none_or(|n| n == name)
}

pub(crate) fn route(
    s: &mut State,
    config: &Config,
    method: &str,
    path: &str,
    query: &Query,
    body: Option<&Value>,
) -> Reply {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let id = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok());
    let empty = json!({});
    let b = body.unwrap_or(&empty);
    match (method, parts.as_slice()) {
        ("GET", ["locations"]) => {
            let items = LOCATIONS
                .iter()
                .filter(|l| name_filter(query, l.1))
                .map(|l| location_json(l.1))
                .collect();
            paginate("locations", items, query)
        }
        ("GET", ["server_types"]) => {
            let items = SERVER_TYPES
                .iter()
                .filter(|t| name_filter(query, t.1))
                .map(|t| server_type_json(t.1))
                .collect();
            paginate("server_types", items, query)
        }
        ("GET", ["images"]) => {
            let sel = match selector_filter(query) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let types: Vec<&str> = query
                .iter()
                .filter(|(k, _)| k == "type")
                .map(|(_, v)| v.as_str())
                .collect();
            let items = s
                .images
                .values()
                .filter(|i| matches_sel(&sel, &i.labels))
                .filter(|i| types.is_empty() || types.contains(&i.kind.as_str()))
                .map(image_json)
                .collect();
            paginate("images", items, query)
        }
        ("GET", ["images", _]) => match id(1).and_then(|i| s.images.get(&i)) {
            Some(i) => ok(200, json!({ "image": image_json(i) })),
            None => err(404, "not_found", "image not found"),
        },
        ("GET", ["actions"]) => {
            let ids: Vec<u64> = query
                .iter()
                .filter(|(k, _)| k == "id")
                .filter_map(|(_, v)| v.parse().ok())
                .collect();
            if ids.is_empty() {
                return invalid("id", "at least one id is required");
            }
            let actions: Vec<Value> = ids
                .iter()
                .filter_map(|i| s.actions.get(i))
                .map(action_json)
                .collect();
            ok(200, json!({ "actions": actions }))
        }
        ("GET", ["actions", _]) => match id(1).and_then(|i| s.actions.get(&i)) {
            Some(a) => ok(200, json!({ "action": action_json(a) })),
            None => err(404, "not_found", "action not found"),
        },

        // Servers.
        ("GET", ["servers"]) => {
            let sel = match selector_filter(query) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let items = s
                .servers
                .values()
                .filter(|x| matches_sel(&sel, &x.labels) && name_filter(query, &x.name))
                .map(|x| server_json(s, x))
                .collect();
            paginate("servers", items, query)
        }
        ("POST", ["servers"]) => create_server(s, config, b),
        ("GET", ["servers", _]) => match id(1).and_then(|i| s.servers.get(&i)) {
            Some(x) => ok(200, json!({ "server": server_json(s, x) })),
            None => err(404, "not_found", "server not found"),
        },
        ("PUT", ["servers", _]) => {
            let Some(sid) = id(1).filter(|i| s.servers.contains_key(i)) else {
                return err(404, "not_found", "server not found");
            };
            if let Some(l) = b.get("labels") {
                match labels_from(Some(l)) {
                    Ok(l) => {
                        if let Some(x) = s.servers.get_mut(&sid) {
                            x.labels = l
                        }
                    }
                    Err(r) => return r,
                }
            }
            if let Some(n) = b.get("name").and_then(Value::as_str) {
                if !valid_hostname(n) {
                    return invalid("name", "must be a valid hostname");
                }
                if s.servers.values().any(|x| x.name == n && x.id != sid) {
                    return err(409, "uniqueness_error", "server name is already used");
                }
                if let Some(x) = s.servers.get_mut(&sid) {
                    x.name = n.into()
                }
            }
            let x = &s.servers[&sid];
            ok(200, json!({ "server": server_json(s, x) }))
        }
        ("DELETE", ["servers", _]) => {
            let Some(sid) = id(1).filter(|i| s.servers.contains_key(i)) else {
                return err(404, "not_found", "server not found");
            };
            if s.servers[&sid].delete_protection {
                return err(423, "protected", "server is delete protected");
            }
            if let Some(x) = s.servers.get_mut(&sid) {
                x.status = "deleting".into();
            }
            let a = new_action(
                s,
                "delete_server",
                config.server_delete,
                vec![(sid, "server")],
                Effect::ServerDeleted(sid),
            );
            ok(200, json!({ "action": action_value(s, a) }))
        }

        // Networks.
        ("GET", ["networks"]) => {
            let sel = match selector_filter(query) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let items = s
                .networks
                .values()
                .filter(|x| matches_sel(&sel, &x.labels) && name_filter(query, &x.name))
                .map(|x| network_json(s, x))
                .collect();
            paginate("networks", items, query)
        }
        ("POST", ["networks"]) => create_network(s, b),
        ("DELETE", ["networks", _]) => {
            let Some(nid) = id(1).filter(|i| s.networks.contains_key(i)) else {
                return err(404, "not_found", "network not found");
            };
            if s.servers
                .values()
                .any(|x| x.networks.iter().any(|(n, _)| *n == nid))
                || s.load_balancers.values().any(|l| l.networks.contains(&nid))
            {
                return err(409, "conflict", "network still has attached resources");
            }
            s.networks.remove(&nid);
            Reply {
                status: 204,
                body: None,
            }
        }

        // Placement groups.
        ("GET", ["placement_groups"]) => {
            let sel = match selector_filter(query) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let items = s
                .groups
                .values()
                .filter(|x| matches_sel(&sel, &x.labels) && name_filter(query, &x.name))
                .map(|x| group_json(s, x))
                .collect();
            paginate("placement_groups", items, query)
        }
        ("POST", ["placement_groups"]) => {
            let Some(name) = b.get("name").and_then(Value::as_str) else {
                return invalid("name", "is required");
            };
            if b.get("type").and_then(Value::as_str) != Some("spread") {
                return invalid("type", "must be 'spread'");
            }
            let labels = match labels_from(b.get("labels")) {
                Ok(l) => l,
                Err(r) => return r,
            };
            if s.groups.values().any(|g| g.name == name) {
                return err(
                    409,
                    "uniqueness_error",
                    "placement group name is already used",
                );
            }
            let gid = s.id();
            let g = GroupRec {
                id: gid,
                name: name.into(),
                kind: "spread".into(),
                labels,
                created: now_ts(),
            };
            s.groups.insert(gid, g);
            let g = &s.groups[&gid];
            ok(
                201,
                json!({ "placement_group": group_json(s, g), "action": null }),
            )
        }
        ("DELETE", ["placement_groups", _]) => {
            let Some(gid) = id(1).filter(|i| s.groups.contains_key(i)) else {
                return err(404, "not_found", "placement group not found");
            };
            if s.servers.values().any(|x| x.placement_group == Some(gid)) {
                return err(409, "conflict", "placement group still contains servers");
            }
            s.groups.remove(&gid);
            Reply {
                status: 204,
                body: None,
            }
        }

        // Firewalls.
        ("GET", ["firewalls"]) => {
            let sel = match selector_filter(query) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let items = s
                .firewalls
                .values()
                .filter(|x| matches_sel(&sel, &x.labels) && name_filter(query, &x.name))
                .map(|x| firewall_json(s, x))
                .collect();
            paginate("firewalls", items, query)
        }
        ("POST", ["firewalls"]) => create_firewall(s, config, b),
        ("PUT", ["firewalls", _]) => {
            let Some(fid) = id(1).filter(|i| s.firewalls.contains_key(i)) else {
                return err(404, "not_found", "firewall not found");
            };
            if let Some(l) = b.get("labels") {
                match labels_from(Some(l)) {
                    Ok(l) => {
                        if let Some(f) = s.firewalls.get_mut(&fid) {
                            f.labels = l
                        }
                    }
                    Err(r) => return r,
                }
            }
            let f = &s.firewalls[&fid];
            ok(200, json!({ "firewall": firewall_json(s, f) }))
        }
        ("DELETE", ["firewalls", _]) => {
            let Some(fid) = id(1).filter(|i| s.firewalls.contains_key(i)) else {
                return err(404, "not_found", "firewall not found");
            };
            if !s.firewalls[&fid].applied_to.is_empty() {
                return err(
                    409,
                    "resource_in_use",
                    "firewall is still applied to resources",
                );
            }
            s.firewalls.remove(&fid);
            Reply {
                status: 204,
                body: None,
            }
        }
        ("POST", ["firewalls", _, "actions", act]) => {
            let Some(fid) = id(1).filter(|i| s.firewalls.contains_key(i)) else {
                return err(404, "not_found", "firewall not found");
            };
            firewall_action(s, config, fid, act, b)
        }

        // Load balancers and volumes (created in-cluster by the CCM and CSI).
        ("GET", ["load_balancers"]) => {
            let sel = match selector_filter(query) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let items = s
                .load_balancers
                .values()
                .filter(|x| matches_sel(&sel, &x.labels) && name_filter(query, &x.name))
                .map(lb_json)
                .collect();
            paginate("load_balancers", items, query)
        }
        ("DELETE", ["load_balancers", _]) => {
            match id(1).and_then(|i| s.load_balancers.remove(&i)) {
                Some(_) => Reply {
                    status: 204,
                    body: None,
                },
                None => err(404, "not_found", "load balancer not found"),
            }
        }
        ("GET", ["volumes"]) => {
            let sel = match selector_filter(query) {
                Ok(s) => s,
                Err(r) => return r,
            };
            let items = s
                .volumes
                .values()
                .filter(|x| matches_sel(&sel, &x.labels) && name_filter(query, &x.name))
                .map(volume_json)
                .collect();
            paginate("volumes", items, query)
        }
        ("POST", ["volumes", _, "actions", "detach"]) => {
            let Some(vid) = id(1).filter(|i| s.volumes.contains_key(i)) else {
                return err(404, "not_found", "volume not found");
            };
            let a = new_action(
                s,
                "detach_volume",
                config.other_action,
                vec![(vid, "volume")],
                Effect::VolumeDetached(vid),
            );
            ok(201, json!({ "action": action_value(s, a) }))
        }
        ("DELETE", ["volumes", _]) => {
            let Some(vid) = id(1).filter(|i| s.volumes.contains_key(i)) else {
                return err(404, "not_found", "volume not found");
            };
            if s.volumes[&vid].server.is_some() {
                return err(
                    423,
                    "locked",
                    "volume is attached to a server: detach it first",
                );
            }
            s.volumes.remove(&vid);
            Reply {
                status: 204,
                body: None,
            }
        }
        _ => err(404, "not_found", &format!("no route for {method} {path}")),
    }
}

fn create_server(s: &mut State, config: &Config, b: &Value) -> Reply {
    for f in ["name", "server_type", "image"] {
        if b.get(f).and_then(Value::as_str).is_none() {
            return invalid(f, "is required and must be a string");
        }
    }
    let name = b["name"].as_str().unwrap_or_default().to_string();
    if !valid_hostname(&name) {
        return invalid("name", "must be a valid hostname (RFC 1123)");
    }
    let st = b["server_type"].as_str().unwrap_or_default();
    let Some(st) = SERVER_TYPES
        .iter()
        .find(|t| t.1 == st || t.0.to_string() == st)
    else {
        return invalid("server_type", "server type not found");
    };
    let img = b["image"].as_str().unwrap_or_default();
    let Some(image) = s
        .images
        .values()
        .find(|i| i.id.to_string() == img || i.name.as_deref() == Some(img))
        .map(|i| i.id)
    else {
        return invalid("image", "image not found");
    };
    if b.get("datacenter").is_some() && b.get("location").is_some() {
        return invalid("location", "location and datacenter are mutually exclusive");
    }
    let location = b
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or("fsn1")
        .to_string();
    if !LOCATIONS.iter().any(|l| l.1 == location) {
        return invalid("location", "location not found");
    }
    let labels = match labels_from(b.get("labels")) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let user_data = b
        .get("user_data")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if user_data.len() > 32 * 1024 {
        return invalid("user_data", "user_data is limited to 32 KiB");
    }
    let ipv4 = b
        .pointer("/public_net/enable_ipv4")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let ipv6 = b
        .pointer("/public_net/enable_ipv6")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let networks: Vec<u64> = b
        .get("networks")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if !ipv4 && !ipv6 && networks.is_empty() {
        return invalid(
            "public_net",
            "a server without public IPs must be attached to a network",
        );
    }
    let zone = LOCATIONS
        .iter()
        .find(|l| l.1 == location)
        .map(|l| l.4)
        .unwrap_or("");
    for n in &networks {
        let Some(net) = s.networks.get(n) else {
            return invalid("networks", &format!("network {n} not found"));
        };
        if !net.subnets.iter().any(|sn| sn["network_zone"] == zone) {
            return invalid(
                "networks",
                &format!("network {n} has no subnet in network zone {zone} of location {location}"),
            );
        }
    }
    let pg = b.get("placement_group").and_then(Value::as_u64);
    if let Some(g) = pg {
        if !s.groups.contains_key(&g) {
            return invalid("placement_group", "placement group not found");
        }
        if s.servers
            .values()
            .filter(|x| x.placement_group == Some(g))
            .count()
            >= 10
        {
            return err(
                412,
                "placement_error",
                "spread placement group is full (10 servers)",
            );
        }
    }
    if s.servers.values().any(|x| x.name == name) {
        return err(409, "uniqueness_error", "server name is already used");
    }
    if !type_in_location(st.1, &location) {
        return invalid(
            "server_type",
            &format!(
                "server type {} is not available in location {location}",
                st.1
            ),
        );
    }
    if s.faults.unavailable_locations.contains(&location) {
        return err(
            412,
            "resource_unavailable",
            &format!("server type {} is unavailable in {location}", st.1),
        );
    }
    let sid = s.id();
    let no_keys = b
        .get("ssh_keys")
        .and_then(Value::as_array)
        .is_none_or(|k| k.is_empty());
    let root_password = no_keys.then(|| {
        use rand::Rng;
        rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(20)
            .map(char::from)
            .collect::<String>()
    });
    // Private IPs from the first subnet of each network.
    let attach: Vec<(u64, String)> = networks
        .iter()
        .map(|n| {
            let used = s
                .servers
                .values()
                .filter(|x| x.networks.iter().any(|(id, _)| id == n))
                .count();
            let base = s.networks[n]
                .subnets
                .first()
                .and_then(|sn| sn["ip_range"].as_str())
                .unwrap_or("10.0.0.0/24");
            let prefix: Vec<&str> = base
                .split('/')
                .next()
                .unwrap_or("10.0.0.0")
                .split('.')
                .collect();
            (
                *n,
                format!("{}.{}.{}.{}", prefix[0], prefix[1], prefix[2], used + 2),
            )
        })
        .collect();
    s.create_counter += 1;
    let (lo, hi) = config.server_create;
    // Spread durations deterministically over [lo, hi].
    let frac = ((s.create_counter * 7919) % 101) as f64 / 100.0;
    let duration = lo + (hi.saturating_sub(lo)).mul_f64(frac);
    s.servers.insert(
        sid,
        ServerRec {
            id: sid,
            name,
            status: "initializing".into(),
            server_type: st.1.into(),
            image,
            location,
            labels,
            networks: attach,
            placement_group: pg,
            ipv4,
            ipv6: ipv6.then(|| format!("2a01:4ff:1f0:{sid:x}::1")),
            user_data,
            created: now_ts(),
            delete_protection: false,
            root_password: root_password.clone(),
        },
    );
    let a = new_action(
        s,
        "create_server",
        duration,
        vec![(sid, "server")],
        Effect::ServerRunning(sid),
    );
    let start = b
        .get("start_after_create")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let next: Vec<Value> = if start {
        let n = new_action(
            s,
            "start_server",
            duration,
            vec![(sid, "server")],
            Effect::None,
        );
        vec![action_value(s, n)]
    } else {
        vec![]
    };
    let x = &s.servers[&sid];
    ok(
        201,
        json!({ "server": server_json(s, x), "action": action_value(s, a), "next_actions": next, "root_password": root_password }),
    )
}

fn create_network(s: &mut State, b: &Value) -> Reply {
    let Some(name) = b.get("name").and_then(Value::as_str) else {
        return invalid("name", "is required");
    };
    let Some(range) = b.get("ip_range").and_then(Value::as_str) else {
        return invalid("ip_range", "is required");
    };
    if !range.contains('/')
        || range
            .split('/')
            .next()
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .is_none()
    {
        return invalid("ip_range", "must be an IPv4 CIDR");
    }
    let labels = match labels_from(b.get("labels")) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut subnets = Vec::new();
    for sn in b
        .get("subnets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
    {
        let kind = sn.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "cloud" | "server" | "vswitch") {
            return invalid("subnets", "type must be cloud, server or vswitch");
        }
        let zone = sn.get("network_zone").and_then(Value::as_str).unwrap_or("");
        if !LOCATIONS.iter().any(|l| l.4 == zone) {
            return invalid("subnets", "unknown network_zone");
        }
        let ip = sn.get("ip_range").and_then(Value::as_str).unwrap_or("");
        subnets.push(json!({"type": kind, "ip_range": ip, "network_zone": zone, "gateway": "10.0.0.1", "vswitch_id": null}));
    }
    if s.networks.values().any(|n| n.name == name) {
        return err(409, "uniqueness_error", "network name is already used");
    }
    let nid = s.id();
    s.networks.insert(
        nid,
        NetworkRec {
            id: nid,
            name: name.into(),
            ip_range: range.into(),
            subnets,
            labels,
            created: now_ts(),
        },
    );
    let n = &s.networks[&nid];
    ok(201, json!({ "network": network_json(s, n) }))
}

fn check_rules(rules: &Value) -> Result<Vec<Value>, Reply> {
    let Some(arr) = rules.as_array() else {
        return Err(invalid("rules", "must be an array"));
    };
    for r in arr {
        let dir = r.get("direction").and_then(Value::as_str).unwrap_or("");
        let proto = r.get("protocol").and_then(Value::as_str).unwrap_or("");
        if !matches!(dir, "in" | "out") {
            return Err(invalid("rules", "direction must be in or out"));
        }
        if !matches!(proto, "tcp" | "udp" | "icmp" | "esp" | "gre") {
            return Err(invalid("rules", "unknown protocol"));
        }
        let has_port = r.get("port").is_some_and(|p| !p.is_null());
        if matches!(proto, "tcp" | "udp") != has_port {
            return Err(invalid(
                "rules",
                "port is required for tcp/udp and forbidden otherwise",
            ));
        }
        let key = if dir == "in" {
            "source_ips"
        } else {
            "destination_ips"
        };
        if r.get(key)
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
        {
            return Err(invalid(
                "rules",
                &format!("{key} is required for direction {dir}"),
            ));
        }
    }
    Ok(arr
        .iter()
        .map(|r| {
            json!({
                "direction": r["direction"], "protocol": r["protocol"],
                "port": r.get("port").cloned().unwrap_or(Value::Null),
                "source_ips": r.get("source_ips").cloned().unwrap_or(json!([])),
                "destination_ips": r.get("destination_ips").cloned().unwrap_or(json!([])),
                "description": r.get("description").cloned().unwrap_or(Value::Null),
            })
        })
        .collect())
}

fn check_targets(s: &State, v: &Value, field: &str) -> Result<Vec<Value>, Reply> {
    let Some(arr) = v.as_array() else {
        return Err(invalid(field, "must be an array"));
    };
    for t in arr {
        match t.get("type").and_then(Value::as_str) {
            Some("label_selector") => {
                let sel = t
                    .pointer("/label_selector/selector")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if selector::parse(sel).is_err() {
                    return Err(invalid(field, "invalid label selector"));
                }
            }
            Some("server") => {
                let id = t.pointer("/server/id").and_then(Value::as_u64).unwrap_or(0);
                if !s.servers.contains_key(&id) {
                    return Err(err(404, "firewall_resource_not_found", "server not found"));
                }
            }
            _ => return Err(invalid(field, "type must be server or label_selector")),
        }
    }
    Ok(arr
        .iter()
        .map(|t| match t["type"].as_str() {
            Some("server") => json!({"type": "server", "server": {"id": t["server"]["id"]}}),
            _ => json!({"type": "label_selector", "label_selector": {"selector": t["label_selector"]["selector"]}}),
        })
        .collect())
}

fn create_firewall(s: &mut State, config: &Config, b: &Value) -> Reply {
    let Some(name) = b.get("name").and_then(Value::as_str) else {
        return invalid("name", "is required");
    };
    let labels = match labels_from(b.get("labels")) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let rules = match check_rules(b.get("rules").unwrap_or(&json!([]))) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let apply = match check_targets(s, b.get("apply_to").unwrap_or(&json!([])), "apply_to") {
        Ok(a) => a,
        Err(r) => return r,
    };
    if s.firewalls.values().any(|f| f.name == name) {
        return err(409, "uniqueness_error", "firewall name is already used");
    }
    let fid = s.id();
    s.firewalls.insert(
        fid,
        FirewallRec {
            id: fid,
            name: name.into(),
            labels,
            rules,
            applied_to: apply.clone(),
            created: now_ts(),
        },
    );
    let mut actions = Vec::new();
    if !apply.is_empty() {
        let a = new_action(
            s,
            "apply_firewall",
            config.other_action,
            vec![(fid, "firewall")],
            Effect::None,
        );
        actions.push(action_value(s, a));
    }
    let f = &s.firewalls[&fid];
    ok(
        201,
        json!({ "firewall": firewall_json(s, f), "actions": actions }),
    )
}

fn firewall_action(s: &mut State, config: &Config, fid: u64, act: &str, b: &Value) -> Reply {
    match act {
        "set_rules" => {
            let rules = match b.get("rules") {
                Some(r) => match check_rules(r) {
                    Ok(r) => r,
                    Err(e) => return e,
                },
                None => return invalid("rules", "is required"),
            };
            if let Some(f) = s.firewalls.get_mut(&fid) {
                f.rules = rules;
            }
            let a = new_action(
                s,
                "set_firewall_rules",
                config.other_action,
                vec![(fid, "firewall")],
                Effect::None,
            );
            ok(201, json!({ "actions": [action_value(s, a)] }))
        }
        "apply_to_resources" => {
            let targets =
                match check_targets(s, b.get("apply_to").unwrap_or(&Value::Null), "apply_to") {
                    Ok(t) => t,
                    Err(e) => return e,
                };
            let f = &s.firewalls[&fid];
            if targets.iter().any(|t| f.applied_to.contains(t)) {
                return err(
                    409,
                    "firewall_already_applied",
                    "firewall is already applied to this resource",
                );
            }
            if let Some(f) = s.firewalls.get_mut(&fid) {
                f.applied_to.extend(targets);
            }
            let a = new_action(
                s,
                "apply_firewall",
                config.other_action,
                vec![(fid, "firewall")],
                Effect::None,
            );
            ok(201, json!({ "actions": [action_value(s, a)] }))
        }
        "remove_from_resources" => {
            let targets = match check_targets(
                s,
                b.get("remove_from").unwrap_or(&Value::Null),
                "remove_from",
            ) {
                Ok(t) => t,
                Err(e) => return e,
            };
            let f = &s.firewalls[&fid];
            if targets.iter().any(|t| !f.applied_to.contains(t)) {
                return err(
                    409,
                    "firewall_already_removed",
                    "firewall is not applied to this resource",
                );
            }
            if let Some(f) = s.firewalls.get_mut(&fid) {
                f.applied_to.retain(|a| !targets.contains(a));
            }
            let a = new_action(
                s,
                "remove_firewall",
                config.other_action,
                vec![(fid, "firewall")],
                Effect::None,
            );
            ok(201, json!({ "actions": [action_value(s, a)] }))
        }
        _ => err(404, "not_found", "unknown firewall action"),
    }
}
