# Tessera's tasks. With DATABASE_URL unset, run and test use the embedded default database:
# a private Postgres cluster in .tessera/ started by internal/devdb/devdb.sh.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

SQLC_VERSION := v1.31.1
BIN := $(CURDIR)/bin
SQLC := $(BIN)/sqlc
SQLC_STAMP := $(BIN)/.sqlc-$(SQLC_VERSION)
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(BIN)/golangci-lint
GOLANGCI_LINT_STAMP := $(BIN)/.golangci-lint-$(GOLANGCI_LINT_VERSION)
# ERRSWALLOW is Tessera's own vet analyzer (internal/lint/errswallow), built from this module so
# go.mod pins its golang.org/x/tools.
ERRSWALLOW := $(BIN)/errswallow
# OPENAPI_LINT holds the pinned OpenAPI linters (package-lock.json) and their configuration.
OPENAPI_LINT := .ci/openapi-lint
# CHROMIUM is Debian's headless browser: the tests of /docs and River UI render pages in it.
CHROMIUM := /usr/bin/chromium
# JQ reads JSON in the walk-throughs of examples/; NPM installs the TypeScript client example's
# packages (Debian's npm brings Node.js).
JQ := /usr/bin/jq
NPM := /usr/bin/npm
# WRK is Debian's HTTP load generator, which the validation benchmark drives (make bench).
WRK := /usr/bin/wrk
# PGBOUNCER is Debian's PgBouncer: TestPgBouncer runs Tessera through it in transaction mode.
PGBOUNCER := /usr/sbin/pgbouncer
# TENANT and NAME are make key's tenant and key name.
TENANT ?= demo
NAME ?= me

# apt_install installs a Debian package (through sudo unless root).
apt_install = echo "installing Debian's $(1) (once)"; $$([ "$$(id -u)" = 0 ] || echo sudo) sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1)'
# database prints the URL to use: DATABASE_URL when set, otherwise the embedded database's.
database = $${DATABASE_URL:-$$(internal/devdb/devdb.sh start)}
# secret prints the key sealing secrets at rest: TESSERA_SECRET_KEY when set, otherwise the
# development key kept in .tessera/secret-key.
secret = $${TESSERA_SECRET_KEY:-$$(internal/devdb/devdb.sh secret)}

.PHONY: run test examples bench key check generate build db db-stop lint-openapi vendor-docs-viewer

## build: compile ./tessera
build:
	go build -o tessera ./cmd/tessera

## run: migrate, bootstrap a demo tenant and key when there is none (printed once, and written to
##      .tessera/admin-key for examples/), serve on TESSERA_ADDR (:8080); without
##      TESSERA_BTCPAY_URL it also runs `tessera fake-btcpay` on 127.0.0.1:8081 and uses it;
##      without TESSERA_OPERATOR_PASSWORD it signs River UI in with .tessera/operator-password
run: build
	url="$(database)"; key="$(secret)"; export DATABASE_URL="$$url" TESSERA_SECRET_KEY="$$key"; \
	if [ -z "$${TESSERA_OPERATOR_PASSWORD:-}" ]; then \
		export TESSERA_OPERATOR_PASSWORD="$$(internal/devdb/devdb.sh operator-password)"; \
		echo "River UI: sign in as $${TESSERA_OPERATOR_USER:-operator} with the password in $${TESSERA_DEVDB_DIR:-.tessera}/operator-password (URL in serve's log)"; \
	fi; \
	export TESSERA_ALLOW_PRIVATE_NETWORKS="$${TESSERA_ALLOW_PRIVATE_NETWORKS:-true}"; \
	if [ -z "$${TESSERA_BTCPAY_URL:-}" ]; then \
		mkdir -p .tessera; ./tessera fake-btcpay >.tessera/fake-btcpay.log 2>&1 & fake=$$!; trap 'kill $$fake 2>/dev/null' EXIT; \
		export TESSERA_BTCPAY_URL=http://127.0.0.1:8081 TESSERA_BTCPAY_STORE_ID=fake-store \
			TESSERA_BTCPAY_API_KEY=fake-api-key TESSERA_BTCPAY_WEBHOOK_SECRET=fake-webhook-secret; \
		echo "fake BTCPay on http://127.0.0.1:8081 (log: .tessera/fake-btcpay.log)"; \
	fi; \
	./tessera migrate && ./tessera bootstrap --key-file .tessera/admin-key && ./tessera serve

## test: the whole suite with the race detector, on a real Postgres, examples/ included (installs
##       Chromium, jq, npm and PgBouncer first). The first run compiles everything: about ten minutes on 2 cores.
test: $(CHROMIUM) $(JQ) $(NPM) $(PGBOUNCER)
	@echo "make test: go test -race ./... (the first run compiles everything with the race detector, about ten minutes on 2 cores; then a line per package)"
	url="$(database)"; DATABASE_URL="$$url" go test -race -count=1 ./...

## examples: start Tessera as make run does (its own database, free loopback ports), run every
##           walk-through in examples/ and both generated clients against it, print their output,
##           stop everything (make test runs the same test)
examples: $(JQ) $(NPM)
	url="$(database)"; DATABASE_URL="$$url" go test -count=1 -v -run '^TestExamples$$' ./examples/

## bench: every benchmark in bench/ and the pgbench limits in one run on the embedded database
##        (bench/run: about 30 minutes on 2 cores; BENCH_QUICK=1 for small sizes, about 5), and
##        the table of ratios with each benchmark's EXPLAINs written into bench/README.md
bench: $(WRK)
	url="$(database)"; DATABASE_URL="$$url" go run ./bench/run $$([ "$${BENCH_QUICK:-}" = 1 ] && echo -quick || true)

## key: create another admin API key of TENANT (demo) named NAME (me) on make run's database
key: build
	url="$(database)"; DATABASE_URL="$$url" ./tessera key create --tenant "$(TENANT)" --name "$(NAME)"

## check: gofmt, go vet (with the errswallow analyzer), golangci-lint (.golangci.yml), sqlc diff
##        and lint-openapi; fails on any finding
check: $(SQLC_STAMP) $(GOLANGCI_LINT_STAMP) lint-openapi
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	go build -o $(ERRSWALLOW) ./internal/lint/errswallow/cmd/errswallow
	go vet -vettool=$(ERRSWALLOW) ./...
	$(GOLANGCI_LINT) run ./...
	$(SQLC) diff

## lint-openapi: lint both OpenAPI documents (3.1 and 3.0, as `tessera openapi` prints them) with
##      Redocly CLI (recommended rules) and Spectral (spectral:oas); fails on any error, prints warnings
lint-openapi: $(OPENAPI_LINT)/node_modules/.installed
	tmp="$$(mktemp -d)"; trap 'rm -rf "$$tmp"' EXIT; \
	go build -o "$$tmp/tessera" ./cmd/tessera; \
	"$$tmp/tessera" openapi >"$$tmp/openapi-3.1.json"; "$$tmp/tessera" openapi --3.0 >"$$tmp/openapi-3.0.json"; \
	cd $(OPENAPI_LINT); export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true; \
	for doc in "$$tmp/openapi-3.1.json" "$$tmp/openapi-3.0.json"; do \
		echo "== $$(basename "$$doc")"; \
		node_modules/.bin/redocly lint --config redocly.yaml --format summary "$$doc"; \
		node_modules/.bin/spectral lint --ruleset .spectral.yaml --fail-severity error --format text "$$doc"; echo; \
	done

## vendor-docs-viewer: re-vendor the /docs viewer (Stoplight Elements) into api/docs/ with npm;
##      VERSION=x.y.z picks another version than api/docs/VERSION
vendor-docs-viewer:
	api/docs/vendor.sh $${VERSION:-}

## generate: regenerate sql/ from queries/ and migrations/ with the pinned sqlc
generate: $(SQLC_STAMP)
	$(SQLC) generate

## db: start the embedded database and print its DATABASE_URL; db-stop: stop it
db:
	@internal/devdb/devdb.sh start
db-stop:
	@internal/devdb/devdb.sh stop

$(SQLC_STAMP):
	mkdir -p $(BIN)
	GOBIN=$(BIN) CGO_ENABLED=0 go install github.com/sqlc-dev/sqlc/cmd/sqlc@$(SQLC_VERSION)
	touch $@

$(GOLANGCI_LINT_STAMP):
	mkdir -p $(BIN)
	CGO_ENABLED=0 GOBIN=$(BIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	touch $@

# The linters, installed with npm exactly as package-lock.json pins them, without install scripts.
$(OPENAPI_LINT)/node_modules/.installed: $(OPENAPI_LINT)/package.json $(OPENAPI_LINT)/package-lock.json
	cd $(OPENAPI_LINT) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

$(CHROMIUM):
	$(call apt_install,chromium)
$(JQ):
	$(call apt_install,jq)
$(NPM):
	$(call apt_install,npm)
$(WRK):
	$(call apt_install,wrk)
$(PGBOUNCER):
	$(call apt_install,pgbouncer)
