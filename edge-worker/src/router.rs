//! Route matching: host and path patterns to an upstream.

use crate::config::{host_matches, path_matches, EdgeConfig, Route, Upstream};

/// The route a request matched and its upstream.
#[derive(Debug, Clone, Copy)]
pub struct RouteMatch<'a> {
    /// The matched route.
    pub route: &'a Route,
    /// Its upstream.
    pub upstream: &'a Upstream,
}

/// The first route matching `host` and `path`.
pub fn match_route<'a>(config: &'a EdgeConfig, host: &str, path: &str) -> Option<RouteMatch<'a>> {
    config
        .routes
        .iter()
        .find(|r| {
            r.hosts.iter().any(|h| host_matches(h, host))
                && r.paths.iter().any(|p| path_matches(p, path))
        })
        .and_then(|route| {
            config
                .upstreams
                .get(&route.upstream)
                .map(|upstream| RouteMatch { route, upstream })
        })
}

/// Whether any of the host patterns and any of the path patterns match.
pub fn scope_matches(hosts: &[String], paths: &[String], host: &str, path: &str) -> bool {
    hosts.iter().any(|h| host_matches(h, host)) && paths.iter().any(|p| path_matches(p, path))
}
