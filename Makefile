# Builds a static floatip binary with its version stamped in.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO ?= go
# Debian packages, one per architecture (cross-compiled, CGO_ENABLED=0).
DEB_ARCHES ?= amd64 arm64
BUILD ?= build
LDFLAGS = -s -w -X main.version=$(VERSION)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)

floatip:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o floatip ./cmd/floatip

test:
	$(GO) test -p 1 -count=1 ./...

# make deb: $(BUILD)/floatip_VERSION_ARCH.deb for each of DEB_ARCHES. The man
# page and completions come from a binary for this machine (they do not
# depend on the architecture).
deb:
	mkdir -p $(BUILD)/gen
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BUILD)/gen/floatip ./cmd/floatip
	$(BUILD)/gen/floatip man > $(BUILD)/gen/floatip.8
	$(BUILD)/gen/floatip completion bash > $(BUILD)/gen/floatip.bash
	$(BUILD)/gen/floatip completion zsh > $(BUILD)/gen/_floatip
	$(BUILD)/gen/floatip completion fish > $(BUILD)/gen/floatip.fish
	set -e; for arch in $(DEB_ARCHES); do \
		mkdir -p $(BUILD)/$$arch; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BUILD)/$$arch/floatip ./cmd/floatip; \
		$(GO) run ./internal/pkgdeb/mkdeb -version "$(VERSION)" -arch $$arch -binary $(BUILD)/$$arch/floatip \
			-generated $(BUILD)/gen -packaging packaging -out $(BUILD) -time $(SOURCE_DATE_EPOCH); \
	done

clean:
	rm -rf floatip $(BUILD)

.PHONY: floatip test deb clean
