// Baseline for `make bench-edge`: a minimal plain-JS pass-through worker that
// forwards every request to ORIGIN_URL, streaming both bodies.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const target = env.ORIGIN_URL.replace(/\/$/, "") + url.pathname + url.search;
    return fetch(target, { method: request.method, headers: request.headers, body: request.body, redirect: "manual" });
  },
};
