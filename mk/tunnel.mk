# Tunnel area: cloudflared manifests and the tunnel/secrets tests.
.PHONY: tunnel-manifests tunnel-manifests-check test-tunnel

# Re-render infra/apps/cloudflared/ from infra/apps/cloudflared/tunnel.toml.
tunnel-manifests:
	cargo run -q -p tunnel --example render_manifests

# Fail if the committed manifests differ from a fresh render.
tunnel-manifests-check:
	cargo run -q -p tunnel --example render_manifests -- --check

# The tunnel crate's unit tests and the fake-Cloudflare integration tests.
test-tunnel:
	cargo test -p tunnel
	cargo test -p shopedge-tests --test tunnel
