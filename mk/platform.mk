# Platform area: the infra/ GitOps tree checks and the Kubernetes apply logic.
.PHONY: infra-check infra-check-json test-platform

# Check infra/ (schemas, kustomize builds, images, resources, probes,
# securityContext, PDBs, anti-affinity, service types, default-deny, secrets).
infra-check:
	cargo run -q -p platform --example check_infra -- infra

infra-check-json:
	cargo run -q -p platform --example check_infra -- infra --output json

# The platform crate's tests (including the infra/ checks) and the tests of
# the apply logic against the fake Kubernetes API server.
test-platform:
	cargo test -p platform
	cargo test -p shopedge-tests --test platform
