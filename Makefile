# awakend — see README.md. Everything needs only Go (1.26+).

GO        ?= go
BIN       := bin/awakend
PREFIX    ?= /usr/local
UNITDIR   ?= /etc/systemd/system
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
BENCHTIME ?= 1s

.PHONY: all build run test bench vet fmt install clean

all: build

# The binary is static (no cgo): the unit runs it in a root directory that
# holds no shared libraries.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/awakend

## run: serve examples/configs on 127.0.0.1:8700 (no API keys needed)
run: build
	./$(BIN) serve --config-dir examples/configs --settings /dev/null --log-level debug

## test: vet, formatting, and the whole suite under the race detector
## (first installing the Debian packages the tests run, if missing)
test: vet
	@./.ci/deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo 'gofmt needed:'; gofmt -l .; exit 1; }
	$(GO) test -race -count=1 ./...

## bench: every benchmark, once, with memory figures
bench:
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# install uses the binary `make build` left, so that `sudo make install` needs
# no Go on root's PATH; it rebuilds only when a source file is newer.
install: $(BIN)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/awakend
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/awakend/root
	install -D -m 0644 systemd/awakend.service $(DESTDIR)$(UNITDIR)/awakend.service
	install -D -m 0644 systemd/awakend.socket $(DESTDIR)$(UNITDIR)/awakend.socket

$(BIN): go.mod go.sum $(shell find . -name '*.go' -not -name '*_test.go' -not -path './e2e/*')
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/awakend

clean:
	rm -rf bin
