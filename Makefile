# qagen — see README.md. `make demo` runs the main job, `make test` every test.
GO        ?= go
BIN       := bin/qagen
PYTHON    ?= /usr/bin/python3
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)

.PHONY: all build test unit lint fuzz bench bench-python bench-ratelimit demo clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/qagen

# Every test: unit tests, real Redis, real Python Celery interop. Needs
# Redis on 127.0.0.1:6379 and Debian's python3-celery (.ci/run installs them).
test: build
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test -race -count=1 -timeout 15m ./...

lint:
	$(GO) vet ./...
	gofmt -l $$(git ls-files '*.go')
	@command -v staticcheck >/dev/null && staticcheck ./... || $(HOME)/go/bin/staticcheck ./...

# Short fuzzing of the wire decoders.
fuzz:
	for f in FuzzDecodeTask FuzzParseResult FuzzParseTime FuzzUnwrapMarkers FuzzUnmarshal; do \
		$(GO) test ./celery -run='^$$' -fuzz=$$f -fuzztime=20s || exit 1; done

# Go micro-benchmarks (decode, encode, Redis round trips).
bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./celery ./broker ./backend

# Go worker against Python Celery with the shared harness (see README).
bench-python: build
	scripts/bench.sh

# The fleet-wide LLM rate limiter against qagen fake-llm (about 8 minutes).
bench-ratelimit: build
	scripts/bench_ratelimit.sh

demo: build
	scripts/demo.sh

clean:
	rm -rf bin
