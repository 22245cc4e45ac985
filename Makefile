# Berth — build, run, test.
#   make run    the server on its embedded defaults (creates the first admin)
#   make test   everything: vet, gofmt, unit, conformance, brokers, e2e
#   make bench  Store/Secrets benchmarks side by side, the deploy engine's, and
#               list pages at 100/1k/10k apps (tools/bench/pages.awk); then
#               Berth vs raw Consul side by side on a dev agent it starts:
#               read, write, list pages, reconcile pass, server RSS at 10k
#               apps, as a table of ratios (tools/bench, go run ./tools/bench)
#   make proto  regenerate the broker protocol's Go and Python code

GO        ?= go
BIN       := bin/berth
DATA      ?= ./data
export BERTH_CACHE ?= $(HOME)/.cache/berth
ADMIN     ?= admin@berth.local

.PHONY: all build run test unit gated-note e2e agents services vet fmt-check bench clean proto proto-check

all: build

build:
	$(GO) build -o $(BIN) ./cmd/berth

run: build
	@mkdir -p $(DATA)
	@$(BIN) admin create-user -config config.hcl -data-dir $(DATA) -email $(ADMIN) -admin -if-missing -password-out $(DATA)/admin-password
	@echo ""
	@echo "Web console:  http://127.0.0.1:8080/ui/   log in as $(ADMIN) with the password $$(cat $(DATA)/admin-password)"
	@echo "              (kept in $(DATA)/admin-password, made on first run)"
	@echo "Berth API:    http://127.0.0.1:8080   (router for apps: http://<app>.apps.localhost:8081)"
	@echo "From the API or the CLI, log in as $(ADMIN) with that password:"
	@echo "  curl -s -X POST http://127.0.0.1:8080/users/$(ADMIN)/tokens -d \"{\\\"password\\\":\\\"\$$(cat $(DATA)/admin-password)\\\"}\""
	@echo "then send the token as: -H 'Authorization: bearer <token>'"
	@echo ""
	$(BIN) server -config config.hcl -data-dir $(DATA)

# Real servers and agents the tests use: MariaDB/Redis (started if down),
# Consul, Vault and FerretDB (built once into $(BERTH_CACHE)/bin); and
# Debian's Chromium for the console's browser tests (installed if missing).
services:
	@bash tools/services-up.sh
	@bash tools/python/install.sh
	@bash tools/chromium/install.sh

agents:
	bash tools/agents/build.sh all
	bash tools/ferretdb/build.sh

# The broker protocol's generated code (Go and Python) from
# plugins/broker/proto/broker.proto, with pinned generators (tools/proto/gen.sh).
proto:
	bash tools/proto/gen.sh

# Fails if the committed generated code is not what `make proto` makes.
proto-check: proto
	git diff --exit-code -- plugins/broker/proto plugins/sdk/examples/python

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

unit:
	@$(MAKE) --no-print-directory gated-note
	$(GO) test -race -count=1 -timeout 45m ./...

# Components that cannot be had on this machine: their tests run only when
# their address is given, and say so here (go test hides skip messages of
# passing packages).
gated-note:
	@if [ -z "$$NOMAD_ADDR" ]; then echo "SKIPPED: NOMAD_ADDR is not set, so the tests against a real Nomad (backends/nomad TestRealNomad*, e2e TestNomad*) are skipped; see tools/nomad/README.md to run them."; \
	else echo "NOMAD_ADDR=$$NOMAD_ADDR: the tests against a real Nomad run."; fi

test: services agents fmt-check vet build unit

bench: services agents
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./backends/bolt/ ./backends/consul/ ./backends/sealed/ ./backends/vault/ | tee bench.out
	@echo ""; echo "== Store and Secrets, side by side (ns/op) =="
	@awk '/^Benchmark/ {split($$1,a,"/"); name=a[1]"/"a[2]; gsub(/-[0-9]+$$/,"",name); print name, $$3, "ns/op", $$5, "B/op", $$7, "allocs/op"}' bench.out | sort
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./server/... ./reconciler/ ./backends/local/ ./backends/nomad/ | tee bench-server.out
	@awk -f tools/bench/pages.awk bench-server.out
	$(GO) test -run '^$$' -bench . -count 1 ./backends/consul/replicabench/
	$(GO) run ./tools/bench

clean:
	rm -rf bin bench.out bench-server.out
