// Runs the compiled edge worker in workerd through Miniflare's Node API for the
// end-to-end tests (and the benchmark).
//
// Input: a JSON object in the environment variable MF_HOST_CONFIG:
//   { "script": "build/worker/entry.mjs", "vars": {...}, "secrets": {...},
//     "storefront_origin": "http://127.0.0.1:port" | null,  // service binding target
//     "kv": { "config": "..." } }
// Output: protocol lines on stdout start with "MFHOST " (the worker's own
// console output goes to stdout too):
//   MFHOST {"url": "http://127.0.0.1:port/"}   once ready.
// Then reads JSON commands, one per line, from stdin:
//   {"cmd": "kv_put", "key": "config", "value": "..."}  -> MFHOST {"ok": true}
//   {"cmd": "kv_delete", "key": "config"}              -> MFHOST {"ok": true}
// Closing stdin disposes Miniflare and exits.
import { Miniflare } from "miniflare";
import { createInterface } from "node:readline";
import path from "node:path";

const cfg = JSON.parse(process.env.MF_HOST_CONFIG || "{}");
const script = path.resolve(cfg.script || "build/worker/entry.mjs");

const workers = [
  {
    name: "edge",
    modules: true,
    scriptPath: script,
    modulesRoot: path.dirname(script),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: cfg.compatibility_date || "2026-07-01",
    bindings: { ...(cfg.vars || {}), ...(cfg.secrets || {}) },
    kvNamespaces: { EDGE_CONFIG: "edge-config" },
    serviceBindings: cfg.storefront_origin ? { STOREFRONT: "storefront" } : {},
    ratelimits: cfg.ratelimits || {},
  },
];
if (cfg.storefront_origin) {
  // Stands in for the OpenNext storefront worker: forwards to the local
  // storefront origin, as a service binding would reach the real one.
  workers.push({
    name: "storefront",
    modules: true,
    script: `export default { async fetch(req, env) {
      const u = new URL(req.url);
      const headers = new Headers(req.headers);
      headers.set("x-via-service-binding", "STOREFRONT");
      return fetch(env.ORIGIN + u.pathname + u.search, { method: req.method, headers, body: req.body, redirect: "manual" });
    } }`,
    compatibilityDate: cfg.compatibility_date || "2026-07-01",
    bindings: { ORIGIN: cfg.storefront_origin },
  });
}
if (cfg.extra_workers) workers.push(...cfg.extra_workers);

const mf = new Miniflare({
  workers,
  host: "127.0.0.1",
  port: cfg.port || 0,
  kvPersist: false,
});
const url = await mf.ready;
if (cfg.kv) {
  const kv = await mf.getKVNamespace("EDGE_CONFIG", "edge");
  for (const [k, v] of Object.entries(cfg.kv)) await kv.put(k, v);
}
const reply = (v) => process.stdout.write("MFHOST " + JSON.stringify(v) + "\n");
reply({ url: url.toString() });

const rl = createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  if (!line.trim()) return;
  try {
    const c = JSON.parse(line);
    const kv = await mf.getKVNamespace("EDGE_CONFIG", "edge");
    if (c.cmd === "kv_put") await kv.put(c.key, c.value);
    else if (c.cmd === "kv_delete") await kv.delete(c.key);
    else throw new Error(`unknown command ${c.cmd}`);
    reply({ ok: true });
  } catch (e) {
    reply({ ok: false, error: String(e) });
  }
});
rl.on("close", async () => {
  await mf.dispose();
  process.exit(0);
});
