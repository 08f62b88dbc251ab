package config

import _ "embed"

// Example is the commented reference configuration, every key set and
// explained, that `floatip config example` prints. It is the same file as
// testdata/full.yaml, which the tests parse.
//
//go:embed example.yaml
var Example []byte
