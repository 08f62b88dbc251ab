package config

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/floatip/floatip/internal/quorum"
)

func TestQuorumParse(t *testing.T) {
	c, err := Parse("floatip.yaml", []byte(`interface: eth0
node_name: n1
quorum:
  etcd:
    endpoints: [https://198.18.0.11:2379, https://198.18.0.12:2379]
    ttl: 6s
    prefix: /floatip/lab
    tls: {cert: /etc/floatip/c.pem, key: /etc/floatip/k.pem, ca: /etc/floatip/ca.pem}
    username: floatip
    password_file: /etc/floatip/etcd-password
groups:
  - name: a
    vips: [198.18.0.100]
  - name: b
    vips: [198.18.0.101]
    quorum:
      etcd:
        endpoints: [https://198.18.0.21:2379]
`))
	if err != nil {
		t.Fatal(err)
	}
	top := &Quorum{Etcd: quorum.EtcdConfig{
		Endpoints: []string{"https://198.18.0.11:2379", "https://198.18.0.12:2379"}, TTL: 6 * time.Second, Prefix: "/floatip/lab",
		CertFile: "/etc/floatip/c.pem", KeyFile: "/etc/floatip/k.pem", CAFile: "/etc/floatip/ca.pem", Username: "floatip",
	}, PasswordFile: "/etc/floatip/etcd-password"}
	if diff := cmp.Diff(top, c.Quorum); diff != "" {
		t.Errorf("top-level quorum (-want +got):\n%s", diff)
	}
	if !c.Groups[0].Quorum.Equal(top) {
		t.Errorf("group a: %+v, want the top-level quorum", c.Groups[0].Quorum)
	}
	own := &Quorum{Etcd: quorum.EtcdConfig{Endpoints: []string{"https://198.18.0.21:2379"}}.WithDefaults()}
	if diff := cmp.Diff(own, c.Groups[1].Quorum); diff != "" {
		t.Errorf("group b's own quorum (-want +got):\n%s", diff)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// The YAML reads back to the same configuration.
	again, err := Parse("floatip.yaml", c.YAML())
	if err != nil {
		t.Fatalf("%v\n%s", err, c.YAML())
	}
	again.Auth.Lines, c.Auth.Lines = nil, nil
	if diff := cmp.Diff(c, again, addrEqual); diff != "" {
		t.Errorf("round trip (-want +got):\n%s\n%s", diff, c.YAML())
	}
}

func TestQuorumShorthandKeepsQuorum(t *testing.T) {
	c, err := Parse("floatip.yaml", []byte("vips: [198.18.0.100]\nquorum: {etcd: {endpoints: [198.18.0.11:2379]}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Groups[0].Quorum == nil || c.Groups[0].Quorum.Etcd.TTL != quorum.DefaultTTL || c.Groups[0].Quorum.Etcd.Prefix != quorum.DefaultPrefix {
		t.Fatalf("vips: group's quorum %+v, want the top-level one with defaults", c.Groups[0].Quorum)
	}
	if err := c.Apply(Overrides{VIPs: []string{"198.18.0.101"}}); err != nil {
		t.Fatal(err)
	}
	if !c.Groups[0].Quorum.Equal(c.Quorum) {
		t.Fatalf("--vip dropped the quorum: %+v", c.Groups[0].Quorum)
	}
}

func TestQuorumParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"no etcd", "quorum: {}\n", []string{`floatip.yaml:1: quorum: needs etcd: {endpoints: [host:2379, ...]} (etcd is the referee floatip supports)`}},
		{"unknown key", "quorum:\n  etcd:\n    endpoints: [a:1]\n    ttls: 5s\n", []string{`floatip.yaml:4: quorum.etcd: unknown key "ttls" (did you mean "ttl"?)`}},
		{"ttl too short", "quorum:\n  etcd:\n    endpoints: [a:1]\n    ttl: 2s\n",
			[]string{`floatip.yaml:4: quorum.etcd.ttl: 2s is too short (at least 3s: the VIP's kernel lifetime is whole seconds and the kernel may remove it a second late)`}},
		{"ttl not a duration", "quorum:\n  etcd:\n    endpoints: [a:1]\n    ttl: five\n",
			[]string{`floatip.yaml:4: quorum.etcd.ttl: "five" is not a duration (write it with a unit, like "50ms" or "2s")`}},
		{"bad endpoint", "quorum:\n  etcd:\n    endpoints:\n      - a:1\n      - nohost\n",
			[]string{`floatip.yaml:5: quorum.etcd.endpoints[1]: "nohost": want host:port (etcd's client port is usually 2379)`}},
		{"no endpoints", "quorum:\n  etcd:\n    ttl: 5s\n", []string{`floatip.yaml:2: quorum.etcd.endpoints: at least one endpoint is needed (host:port or http(s)://host:port)`}},
		{"group's own", "groups:\n  - name: a\n    vips: [198.18.0.1]\n    quorum:\n      etcd:\n        endpoints: [a:1]\n        prefix: nope\n",
			[]string{`floatip.yaml:7: groups[0].quorum.etcd.prefix: "nope" must start with /`}},
		{"password and file", "quorum:\n  etcd:\n    endpoints: [a:1]\n    username: u\n    password: p\n    password_file: /x\n",
			[]string{`floatip.yaml:6: quorum.etcd.password_file: set password or password_file, not both`}},
		{"relative tls", "quorum:\n  etcd:\n    endpoints: [https://a:1]\n    tls: {cert: c.pem, key: /k.pem}\n",
			[]string{`floatip.yaml:4: quorum.etcd.tls.cert: must be an absolute path, got "c.pem"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("floatip.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if got := problemStrings(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestQuorumResolvePasswordFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(f, []byte("s3cret\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := Quorum{Etcd: quorum.EtcdConfig{Username: "u"}, PasswordFile: f}
	c, err := q.Resolve()
	if err != nil || c.Password != "s3cret" {
		t.Fatalf("Resolve: %q, %v", c.Password, err)
	}
	q.PasswordFile = filepath.Join(t.TempDir(), "missing")
	if _, err := q.Resolve(); err == nil {
		t.Fatal("a missing password file resolved")
	}
}

func TestQuorumEtcdEndpointsFlag(t *testing.T) {
	c, err := Parse("floatip.yaml", []byte("vips: [198.18.0.100]\nquorum: {etcd: {endpoints: [198.18.0.11:2379], ttl: 7s}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(Overrides{EtcdEndpoints: []string{"198.18.0.21:2379", "198.18.0.22:2379"}}); err != nil {
		t.Fatal(err)
	}
	want := &Quorum{Etcd: quorum.EtcdConfig{Endpoints: []string{"198.18.0.21:2379", "198.18.0.22:2379"}, TTL: 7 * time.Second, Prefix: quorum.DefaultPrefix}}
	if diff := cmp.Diff(want, c.Quorum); diff != "" {
		t.Errorf("quorum (-want +got):\n%s", diff)
	}
	if !c.Groups[0].Quorum.Equal(want) {
		t.Errorf("group quorum %+v", c.Groups[0].Quorum)
	}
	// Without quorum: in the file, the flag makes one with the defaults,
	// for the groups --vip makes too.
	d := Default()
	if err := d.Apply(Overrides{VIPs: []string{"198.18.0.100"}, EtcdEndpoints: []string{"a:2379"}}); err != nil {
		t.Fatal(err)
	}
	if d.Groups[0].Quorum == nil || d.Groups[0].Quorum.Etcd.TTL != quorum.DefaultTTL || d.Groups[0].Quorum.Etcd.Endpoints[0] != "a:2379" {
		t.Fatalf("group quorum %+v", d.Groups[0].Quorum)
	}
	err = d.Apply(Overrides{EtcdEndpoints: []string{"nohost"}})
	if got := problemStrings(t, err); len(got) != 1 || got[0] != `--etcd-endpoints: "nohost": want host:port (etcd's client port is usually 2379)` {
		t.Fatalf("bad endpoint: %q", got)
	}
}
