// Package packaging holds no code: it is the home of floatip's packaging
// files (the systemd unit, the sample configuration, the Prometheus alert
// rules and the Grafana dashboard) and of the tests that check them and the
// Debian package built from them (see internal/pkgdeb).
package packaging
