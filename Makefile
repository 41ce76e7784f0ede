# builder: `make demo` and `make test` work on a fresh Debian machine as root.
GO       ?= go
BIN      := bin/builder
ROOT     ?= $(CURDIR)/.demo-root
PKGS     := busybox-static skopeo umoci docker-registry
export PATH := /usr/local/go/bin:$(PATH)

.PHONY: all build deps demo test test-unprivileged fuzz bench bench-go lint clean

all: build

# The builder and, next to it, the lean container init every RUN starts.
# Static (no cgo): no dynamic loader work in every container init.
build:
	CGO_ENABLED=0 $(GO) build -o bin/ ./cmd/builder ./cmd/builder-init

# deps installs what the demo and the tests use from Debian's packages,
# only when something is missing.
deps:
	@missing=""; for p in $(PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

demo: deps build
	rm -rf $(ROOT)
	scripts/mkbase.sh $(BIN) $(ROOT) builder/busybox:latest
	$(BIN) --root $(ROOT) build -t hello examples/hello
	$(BIN) --root $(ROOT) images
	$(BIN) --root $(ROOT) run --name hello-demo hello
	$(BIN) --root $(ROOT) ps -a -s

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) test-unprivileged
	$(MAKE) fuzz FUZZTIME=$(FUZZTIME_TEST)

# test-unprivileged runs the packages whose tests must need no root (the
# solver's scheduler and cache tests with fake ops) as nobody, so that a
# test that starts to need root fails (or skips, which counts as failing)
# here instead of passing as root.
UNPRIVILEGED_PKGS := ./solver ./store/meta
test-unprivileged:
	@set -e; tmp=$$(mktemp -d); chmod 755 $$tmp; mkdir $$tmp/home; \
	trap 'rm -rf $$tmp' EXIT; \
	for p in $(UNPRIVILEGED_PKGS); do \
		$(GO) test -c -o $$tmp/t.test $$p; \
		if [ "$$(id -u)" = 0 ]; then chown 65534:65534 $$tmp/home; run="setpriv --reuid=65534 --regid=65534 --clear-groups"; else run=; fi; \
		echo "unprivileged: $$p"; \
		(cd $$p && TMPDIR=$$tmp/home HOME=$$tmp/home $$run $$tmp/t.test -test.count=1 -test.v) >$$tmp/out 2>&1 \
			|| { cat $$tmp/out; exit 1; }; \
		if grep -- '--- SKIP' $$tmp/out; then echo "$$p: tests skipped without root"; exit 1; fi; \
		grep -c -- '--- PASS' $$tmp/out | sed 's/$$/ tests passed/'; \
	done

# The fuzz targets (package:Target). `make test` runs each for a few seconds
# on top of its checked-in corpus; `make fuzz FUZZTIME=10m` searches longer.
FUZZ_TARGETS := ./frontend/dockerfile:FuzzParse ./store:FuzzReference \
	./snapshot/archive:FuzzApply ./source:FuzzLoad
FUZZTIME_TEST ?= 4s
FUZZTIME ?= 2m
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg; \
	done

# bench runs bench/'s hermetic scenarios (~11 min) and prints the medians
# against bench/targets.tsv; narrow it with BENCH_ARGS='-s "S2 S3" -n 3'.
# Then bench/ci-cache.sh times the CI scenario (S9: fresh runners sharing a
# cache through a local registry).
BENCH_ARGS ?=
bench: deps build
	bench/run.sh $(BENCH_ARGS)
	bench/ci-cache.sh

# bench-go runs the Go micro-benchmarks (bench/gobench and the packages' own).
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...

lint:
	gofmt -l . | (! grep .)
	$(GO) vet ./...

clean:
	rm -rf bin $(ROOT)
