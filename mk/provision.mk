# Provisioner (Hetzner) targets.
## bench-provision  3+3 `provisioner up` against the fake Hetzner API: wall time, critical path, API requests

# Time factor for the benchmark's action durations (0.02: a 20 s server create takes 0.4 s).
BENCH_PROVISION_FACTOR ?= 0.02

.PHONY: bench-provision
bench-provision:
	cargo run -q -p shopedge-tests --example bench_provision -- $(BENCH_PROVISION_FACTOR)
