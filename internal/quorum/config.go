package quorum

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// EtcdConfig configures the etcd backend (`quorum: {etcd: {...}}`).
type EtcdConfig struct {
	// Endpoints are the cluster's client URLs: host:port, http://host:port
	// or https://host:port. TLS is used for https:// endpoints and
	// whenever CAFile or a client certificate is set.
	Endpoints []string
	// TTL of the lease, in whole seconds (etcd counts leases in seconds);
	// default DefaultTTL. The holder keeps the VIPs at most this long
	// after its last successful keepalive; at least MinTTL (3 s). etcd
	// raises a TTL below 1.5 x its election timeout (2 s with the
	// defaults) to that minimum.
	TTL time.Duration
	// Prefix under which the groups' election keys live:
	// Prefix/<group>/<lease>. Default DefaultPrefix.
	Prefix string
	// Client certificate and key (PEM files), both or neither.
	CertFile, KeyFile string
	// CAFile (PEM) verifies the servers; empty uses the system's roots.
	CAFile string
	// Username and Password authenticate with etcd's auth, both or neither.
	Username, Password string
}

// Defaults.
const (
	DefaultTTL    = 5 * time.Second
	DefaultPrefix = "/floatip/default"
	// MinTTL leaves a fresh lease room for a one-second VIP lifetime
	// after KernelSlack.
	MinTTL = 3 * time.Second
	MaxTTL = 300 * time.Second
)

// WithDefaults returns c with empty fields defaulted.
func (c EtcdConfig) WithDefaults() EtcdConfig {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	return c
}

// Validate checks c (after WithDefaults) and returns every problem, one
// line each, naming the field as it appears in the configuration file
// (quorum.etcd.ttl, ...).
func (c EtcdConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("quorum.etcd.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(c.Endpoints) == 0 {
		bad("endpoints", "at least one endpoint is needed (host:port or http(s)://host:port)")
	}
	seen := map[string]bool{}
	tlsWanted := c.CAFile != "" || c.CertFile != "" || c.KeyFile != ""
	schemes := map[string]bool{}
	for i, ep := range c.Endpoints {
		field := fmt.Sprintf("endpoints[%d]", i)
		scheme, host, err := ParseEndpoint(ep)
		if err != nil {
			bad(field, "%v", err)
			continue
		}
		schemes[scheme] = true
		if seen[host] {
			bad(field, "%q is listed twice", ep)
		}
		seen[host] = true
		if scheme == "http" && tlsWanted {
			bad(field, "%q is plain http but TLS files are set; use https://", ep)
		}
	}
	if len(schemes) > 1 {
		bad("endpoints", "mixes http:// and https:// endpoints; use one scheme for all")
	}
	switch {
	case c.TTL%time.Second != 0:
		bad("ttl", "%v is not whole seconds (etcd leases count whole seconds)", c.TTL)
	case c.TTL < MinTTL:
		bad("ttl", "%v is too short (at least %v: the VIP's kernel lifetime is whole seconds and the kernel may remove it a second late)", c.TTL, MinTTL)
	case c.TTL > MaxTTL:
		bad("ttl", "%v is too long (at most %v: a dead holder keeps the VIP for up to a TTL)", c.TTL, MaxTTL)
	}
	switch p := c.Prefix; {
	case !strings.HasPrefix(p, "/"):
		bad("prefix", "%q must start with /", p)
	case len(p) > 1 && strings.HasSuffix(p, "/"):
		bad("prefix", "%q must not end with /", p)
	case len(p) == 1:
		bad("prefix", "%q is the whole key space; use a prefix such as /floatip/CLUSTER", p)
	case strings.Contains(p, "//"):
		bad("prefix", "%q has an empty path element", p)
	case strings.ContainsFunc(p, func(r rune) bool { return r < 0x21 || r == 0x7f }):
		bad("prefix", "%q has spaces or control characters", p)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		bad("tls", "cert and key go together (cert %q, key %q)", c.CertFile, c.KeyFile)
	}
	if (c.Username == "") != (c.Password == "") {
		bad("username", "username and password go together")
	}
	return errors.Join(errs...)
}

// TLS reports whether c talks TLS to its endpoints.
func (c EtcdConfig) TLS() bool {
	if c.CAFile != "" || c.CertFile != "" {
		return true
	}
	for _, ep := range c.Endpoints {
		if s, _, err := ParseEndpoint(ep); err == nil && s == "https" {
			return true
		}
	}
	return false
}

// ParseEndpoint splits an endpoint into its scheme ("http" or "https";
// "http" when none is given) and host:port.
func ParseEndpoint(ep string) (scheme, hostport string, err error) {
	scheme, hostport = "http", ep
	if strings.Contains(ep, "://") {
		u, err := url.Parse(ep)
		if err != nil {
			return "", "", fmt.Errorf("%q is not a URL: %v", ep, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return "", "", fmt.Errorf("%q: scheme %q, want http or https", ep, u.Scheme)
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
			return "", "", fmt.Errorf("%q: want just scheme://host:port", ep)
		}
		scheme, hostport = u.Scheme, u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || host == "" {
		return "", "", fmt.Errorf("%q: want host:port (etcd's client port is usually 2379)", ep)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", ep, port)
	}
	return scheme, hostport, nil
}
