# Edge WAF: detection report and benchmark (edge-waf crate).
WAF_CORPUS_DEFAULT := $(wildcard ../shared/waf-corpus/crs-regression) edge-waf/corpus/storefront
CORPUS ?= $(WAF_CORPUS_DEFAULT)

.PHONY: waf-report bench-waf
waf-report: ## Replay WAF corpora (CORPUS="dir ...") and print TP/FP rates per family
	cargo run --quiet -p edge-waf --features report --bin waf-report -- $(CORPUS) $(WAF_REPORT_ARGS)

bench-waf: ## Criterion benchmark of the WAF (storefront GET, 64 KiB JSON body)
	cargo bench -p edge-waf --bench waf
