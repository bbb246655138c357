// A second baseline for `make bench-edge`: a plain-JS worker that does only
// the per-request work the edge issue requires of any proxy here, with no
// routing, WAF or configuration: a header timeout (AbortController and a
// timer), a copy of the client's headers with the forwarding edits
// (X-Forwarded-*, a request id, the client's Host dropped), and a copy of
// the origin's response with its edits (a hidden server header, the request
// id, the cache state). It shows how much of the gap between the Rust worker
// and the bare pass-through is the runtime's cost of that work.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const target = env.ORIGIN_URL.replace(/\/$/, "") + url.pathname + url.search;
    const controller = new AbortController();
    const upstream = new Request(target, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      redirect: "manual",
      signal: controller.signal,
    });
    const id = request.headers.get("cf-ray") || crypto.randomUUID();
    upstream.headers.delete("host");
    upstream.headers.delete("x-forwarded-proto");
    upstream.headers.append("x-forwarded-for", request.headers.get("cf-connecting-ip") || "");
    upstream.headers.append("x-forwarded-proto", url.protocol.slice(0, -1));
    upstream.headers.append("x-forwarded-host", url.host);
    upstream.headers.append("x-request-id", id);
    const timer = setTimeout(() => controller.abort(), 20000);
    let origin;
    try {
      origin = await fetch(upstream);
    } finally {
      clearTimeout(timer);
    }
    const response = new Response(origin.body, { status: origin.status, headers: origin.headers });
    response.headers.delete("x-powered-by");
    response.headers.append("x-request-id", id);
    response.headers.append("x-edge-cache", "BYPASS");
    return response;
  },
};
