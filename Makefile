# Builds a static floatip binary with its version stamped in.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

floatip:
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o floatip ./cmd/floatip

test:
	go test -p 1 -count=1 ./...

.PHONY: floatip test
