package quorum

import (
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := EtcdConfig{Endpoints: []string{"10.0.0.1:2379", "http://10.0.0.2:2379", "etcd3.example:2379"}}.WithDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if ok.TTL != DefaultTTL || ok.Prefix != DefaultPrefix {
		t.Errorf("defaults: ttl %v prefix %q", ok.TTL, ok.Prefix)
	}
	tlsOK := EtcdConfig{Endpoints: []string{"https://a:2379"}, CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem", Username: "u", Password: "p"}.WithDefaults()
	if err := tlsOK.Validate(); err != nil || !tlsOK.TLS() {
		t.Fatalf("TLS config: %v (TLS %v)", err, tlsOK.TLS())
	}
	if ok.TLS() {
		t.Error("plain config reports TLS")
	}
	for _, tc := range []struct {
		name string
		mod  func(*EtcdConfig)
		want string
	}{
		{"no endpoints", func(c *EtcdConfig) { c.Endpoints = nil }, "quorum.etcd.endpoints: at least one"},
		{"no port", func(c *EtcdConfig) { c.Endpoints = []string{"10.0.0.1"} }, `quorum.etcd.endpoints[0]: "10.0.0.1": want host:port`},
		{"bad port", func(c *EtcdConfig) { c.Endpoints = []string{"a:0"} }, `port "0"`},
		{"bad scheme", func(c *EtcdConfig) { c.Endpoints = []string{"unix://x:1"} }, `scheme "unix"`},
		{"path", func(c *EtcdConfig) { c.Endpoints = []string{"http://a:2379/v3"} }, "want just scheme://host:port"},
		{"twice", func(c *EtcdConfig) { c.Endpoints = []string{"a:2379", "http://a:2379"} }, `endpoints[1]: "http://a:2379" is listed twice`},
		{"mixed", func(c *EtcdConfig) { c.Endpoints = []string{"https://a:2379", "http://b:2379"} }, "mixes http:// and https://"},
		{"http with tls", func(c *EtcdConfig) { c.CAFile = "ca.pem" }, "is plain http but TLS files are set"},
		{"fractional ttl", func(c *EtcdConfig) { c.TTL = 2500 * time.Millisecond }, "quorum.etcd.ttl: 2.5s is not whole seconds"},
		{"short ttl", func(c *EtcdConfig) { c.TTL = 2 * time.Second }, "quorum.etcd.ttl: 2s is too short"},
		{"long ttl", func(c *EtcdConfig) { c.TTL = time.Hour }, "quorum.etcd.ttl: 1h0m0s is too long"},
		{"relative prefix", func(c *EtcdConfig) { c.Prefix = "floatip" }, `quorum.etcd.prefix: "floatip" must start with /`},
		{"root prefix", func(c *EtcdConfig) { c.Prefix = "/" }, "whole key space"},
		{"trailing slash", func(c *EtcdConfig) { c.Prefix = "/floatip/" }, "must not end with /"},
		{"empty element", func(c *EtcdConfig) { c.Prefix = "/a//b" }, "empty path element"},
		{"space", func(c *EtcdConfig) { c.Prefix = "/a b" }, "spaces or control characters"},
		{"cert without key", func(c *EtcdConfig) { c.Endpoints = []string{"https://a:1"}; c.CertFile = "c.pem" }, "quorum.etcd.tls: cert and key go together"},
		{"user without password", func(c *EtcdConfig) { c.Username = "u" }, "quorum.etcd.username: username and password go together"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			c.Endpoints = append([]string(nil), ok.Endpoints...)
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "quorum.etcd.") {
					t.Errorf("error line %q does not name the field", line)
				}
			}
		})
	}
}

func TestLeaseDeadline(t *testing.T) {
	sent := time.Unix(1000, 0)
	got := LeaseDeadline(sent, 5*time.Second)
	if want := sent.Add(5*time.Second - 5*time.Millisecond); !got.Equal(want) {
		t.Errorf("LeaseDeadline = %v, want %v (TTL less 1000 ppm)", got, want)
	}
}

func TestVIPLifetime(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		left time.Duration
		want time.Duration
		ok   bool
	}{
		{5 * time.Second, 3 * time.Second, true},         // 3.25 s usable -> 3 s
		{4985 * time.Millisecond, 3 * time.Second, true}, // a fresh 5 s lease
		{2985 * time.Millisecond, time.Second, true},     // a fresh 3 s lease
		{2750 * time.Millisecond, time.Second, true},
		{2749 * time.Millisecond, 0, false},
		{0, 0, false},
		{-time.Second, 0, false},
	} {
		got, ok := VIPLifetime(now, now.Add(tc.left))
		if got != tc.want || ok != tc.ok {
			t.Errorf("VIPLifetime with %v left = %v, %v; want %v, %v", tc.left, got, ok, tc.want, tc.ok)
		}
		// Whatever it returns, the kernel's removal (at most KernelSlack
		// late) comes before the deadline.
		if ok && now.Add(got+KernelSlack+CallAllowance).After(now.Add(tc.left)) {
			t.Errorf("lifetime %v with %v left: the kernel may remove the VIP after the deadline", got, tc.left)
		}
	}
	dl := now.Add(3 * time.Second)
	if got := DropBy(dl); !got.Equal(dl.Add(-DropMargin)) {
		t.Errorf("DropBy = %v", got)
	}
}

func TestStrings(t *testing.T) {
	for _, s := range []interface{ String() string }{StateConnecting, StateLive, StateDegraded, StateClosed, RoleIdle, RoleCampaigning, RoleHolding,
		CauseExpired, CauseLeaseGone, CauseKeyDeleted, CauseResigned} {
		if s.String() == "" || strings.Contains(s.String(), "(") {
			t.Errorf("%#v has no name: %q", s, s.String())
		}
	}
}

// A wall-clock step (NTP, date -s; the lab's namespaces share the host's
// clock, so the tests cannot step it) must not move a deadline: the
// deadlines are built from time.Now() by Add, which keeps Go's monotonic
// reading, and compared with Sub/Before, which use it. A time without one
// (Round(0), UTC(), a parsed or Unix time) would be compared on the wall
// clock, so none may reach these functions: this pins that they keep it.
func TestDeadlinesKeepTheMonotonicClock(t *testing.T) {
	now := time.Now()
	mono := func(what string, tm time.Time) {
		t.Helper()
		if !strings.Contains(tm.String(), " m=") {
			t.Errorf("%s %v has no monotonic clock reading: a wall-clock step would move it", what, tm)
		}
	}
	dl := LeaseDeadline(now, 5*time.Second)
	mono("LeaseDeadline", dl)
	mono("DropBy", DropBy(dl))
	if l, ok := VIPLifetime(now, dl); !ok || l != 3*time.Second {
		t.Errorf("VIPLifetime(now, deadline) = %v, %v; want 3s", l, ok)
	}
}
