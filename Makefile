# Everything runs with only Go installed: tools are pinned and run through
# `go run`, so a fresh machine and CI need no install step.
GO            ?= go
# go1.26.8 has reachable standard-library vulnerabilities (x509, net/http,
# textproto, tls, html/template) fixed by 1.26.10; the module proxy serves
# that toolchain, so the go command fetches it once. Machines here default
# to GOTOOLCHAIN=local, which would keep the older one.
export GOTOOLCHAIN ?= go1.26.10
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOCYCLO       := github.com/fzipp/gocyclo/cmd/gocyclo@v0.6.0
VERSION       ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -s -w -X main.version=$(VERSION)
BIN           := bin
FUZZTIME      ?= 30s

.PHONY: all run test lint bench build fuzz deploy destroy clean

all: lint test

## run: start the simulator, worker and scout on loopback and play a scripted day
run:
	$(GO) run ./cmd/devstack

## test: vet, then every test with the race detector
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 15m ./...

## lint: formatting, vet, staticcheck (pinned), no function of the product
## above cyclomatic complexity 20 (gocyclo, pinned; tests may be longer), and
## no Google SDK in the domain packages (internal/archtest; -count=1, as go
## test cannot see what the go list it runs reads)
lint:
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(GOCYCLO) -over 20 $$(git ls-files '*.go' 2>/dev/null | grep -v '_test\.go$$' || find . -name '*.go' ! -name '*_test.go')
	$(GO) test -count=1 -run '^TestDomainLinksNoGoogleSDK$$' ./internal/archtest

## bench: measure cost and speed; prints `bench <name> <value> <unit>` and updates README.md
bench:
	$(GO) run ./cmd/bench -readme README.md

## build: static binaries for every command into bin/, built as the images are
## (disable_grpc_modules drops Cloud Storage's unused gRPC transport, ~13 MB)
build:
	@mkdir -p $(BIN)
	for cmd in worker scout pubkey fleetctl fleetsim; do \
		CGO_ENABLED=0 $(GO) build -trimpath -tags disable_grpc_modules -ldflags '$(LDFLAGS)' -o $(BIN)/$$cmd ./cmd/$$cmd || exit 1; \
	done

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParsePair$$' -fuzztime $(FUZZTIME) ./internal/tokens
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeVehicleData$$' -fuzztime $(FUZZTIME) ./internal/fleet
	$(GO) test -run '^$$' -fuzz '^FuzzRefreshRequest$$' -fuzztime $(FUZZTIME) ./internal/worker

## deploy: build with Cloud Build and deploy by digest (DRY_RUN=1 prints the commands)
deploy:
	./deploy/deploy.sh

## destroy: delete the services, job and accounts; prints only, unless CONFIRM=1
## (DELETE_BUCKETS=1, DELETE_REPOSITORY=1, KEEP_SECRETS=0 take more; deploy/README.md)
destroy:
	./deploy/destroy.sh

clean:
	rm -rf $(BIN) .local
