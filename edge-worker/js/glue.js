// Marshalling helpers for the Rust worker: header lists cross the JS/wasm
// boundary as one string ("name\nvalue\n" per entry; the Fetch standard
// forbids newlines in header names and values), instead of one call per
// header. They hold no logic of their own.

export function flatHeaders(headers) {
  let s = "";
  for (const [k, v] of headers) s += k + "\n" + v + "\n";
  return s;
}

function headersFrom(flat) {
  const h = new Headers();
  const parts = flat.split("\n");
  for (let i = 0; i + 1 < parts.length; i += 2) h.append(parts[i], parts[i + 1]);
  return h;
}

// Sends the upstream request without following redirects. Resolves with the
// response, or rejects with "timeout" when no response headers arrived within
// `ms` (the request is then aborted) or with the failure's message. The timer
// only covers the headers: a long body keeps streaming.
export function fetchUpstream(service, url, method, flat, body, ms) {
  const controller = new AbortController();
  const init = { method, headers: headersFrom(flat), redirect: "manual", signal: controller.signal };
  if (body !== undefined && body !== null) init.body = body;
  let request;
  try {
    request = new Request(url, init);
  } catch (e) {
    return Promise.reject("invalid upstream request: " + String((e && e.message) || e));
  }
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject("timeout");
    }, ms);
  });
  const sent = service ? service.fetch(request) : fetch(request);
  return Promise.race([sent, timeout]).then(
    (response) => {
      clearTimeout(timer);
      return response;
    },
    (e) => {
      clearTimeout(timer);
      throw e === "timeout" ? e : String((e && e.message) || e || "fetch failed");
    },
  );
}

export function buildResponse(status, statusText, flat, body) {
  const init = { status, headers: headersFrom(flat) };
  if (statusText) init.statusText = statusText;
  return new Response(body === undefined ? null : body, init);
}
