package config

import (
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/floatip/floatip/internal/quorum"
)

// Quorum is a group's referee (`quorum: {etcd: {...}}`, top level for
// every group or per group): the node holds the group only while it owns
// the group's key in etcd (package quorum).
type Quorum struct {
	// Etcd is the etcd backend's configuration, defaults applied.
	Etcd quorum.EtcdConfig
	// PasswordFile, when set, holds the etcd password (its first line),
	// read when the daemon connects (Resolve); Etcd.Password is then empty.
	PasswordFile string
}

var (
	quorumKeys = []string{"etcd"}
	etcdKeys   = []string{"endpoints", "ttl", "prefix", "tls", "username", "password", "password_file"}
	tlsKeys    = []string{"cert", "key", "ca"}
)

// Resolve returns the etcd configuration with the password read from
// PasswordFile, if one is set.
func (q Quorum) Resolve() (quorum.EtcdConfig, error) {
	c := q.Etcd
	if q.PasswordFile == "" {
		return c, nil
	}
	data, err := os.ReadFile(q.PasswordFile)
	if err != nil {
		return c, fmt.Errorf("quorum.etcd.password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return c, fmt.Errorf("quorum.etcd.password_file: %s: the first line is empty", q.PasswordFile)
	}
	c.Password = pw
	return c, nil
}

// Equal reports whether two groups' referees are the same configuration
// (nil for none).
func (q *Quorum) Equal(o *Quorum) bool {
	if q == nil || o == nil {
		return q == o
	}
	return reflect.DeepEqual(*q, *o)
}

// quorum decodes a quorum: mapping at field ("quorum" or
// "groups[i].quorum"); nil when it is null or unusable.
func (p *parser) quorum(n *yaml.Node, field string) *Quorum {
	if isNull(n) {
		return nil
	}
	m := p.mapping(n, field, quorumKeys)
	e, ok := m["etcd"]
	if !ok {
		if n.Kind == yaml.MappingNode {
			p.fail(n, field, "needs etcd: {endpoints: [host:2379, ...]} (etcd is the referee floatip supports)")
		}
		return nil
	}
	ef := field + ".etcd"
	em := p.mapping(e.val, ef, etcdKeys)
	q := &Quorum{}
	if e, ok := em["endpoints"]; ok {
		q.Etcd.Endpoints = p.stringList(e.val, ef+".endpoints", "[198.18.0.11:2379, 198.18.0.12:2379, 198.18.0.13:2379]")
	}
	p.duration(em, "ttl", ef+".ttl", &q.Etcd.TTL)
	p.str(em, "prefix", ef+".prefix", &q.Etcd.Prefix)
	p.str(em, "username", ef+".username", &q.Etcd.Username)
	p.str(em, "password", ef+".password", &q.Etcd.Password)
	p.str(em, "password_file", ef+".password_file", &q.PasswordFile)
	if e, ok := em["tls"]; ok && !isNull(e.val) {
		tm := p.mapping(e.val, ef+".tls", tlsKeys)
		p.str(tm, "cert", ef+".tls.cert", &q.Etcd.CertFile)
		p.str(tm, "key", ef+".tls.key", &q.Etcd.KeyFile)
		p.str(tm, "ca", ef+".tls.ca", &q.Etcd.CAFile)
	}
	q.Etcd = q.Etcd.WithDefaults()
	return q
}

// quorum checks the top-level referee and every group's own.
func (k *checker) quorum(c Config) {
	if c.Quorum != nil {
		k.quorumConfig(*c.Quorum, "quorum")
	}
	for i, g := range c.Groups {
		if g.Quorum != nil && !g.Quorum.Equal(c.Quorum) {
			k.quorumConfig(*g.Quorum, fmt.Sprintf("groups[%d].quorum", i))
		}
	}
}

func (k *checker) quorumConfig(q Quorum, field string) {
	e := q.Etcd
	switch {
	case q.PasswordFile != "" && e.Password != "":
		k.add(field+".etcd.password_file", "set password or password_file, not both")
	case q.PasswordFile != "" && !strings.HasPrefix(q.PasswordFile, "/"):
		k.add(field+".etcd.password_file", "must be an absolute path, got %q", q.PasswordFile)
	case q.PasswordFile != "":
		e.Password = "(from password_file)" // read at start; only its presence counts here
	}
	for _, f := range []struct{ name, path string }{{"tls.cert", e.CertFile}, {"tls.key", e.KeyFile}, {"tls.ca", e.CAFile}} {
		if f.path != "" && !strings.HasPrefix(f.path, "/") {
			k.add(field+".etcd."+f.name, "must be an absolute path, got %q", f.path)
		}
	}
	err := e.Validate()
	if err == nil {
		return
	}
	// One problem per line; each names its field as "quorum.etcd.x: ...".
	for _, l := range strings.Split(err.Error(), "\n") {
		f, msg, ok := strings.Cut(l, ": ")
		if !ok || !strings.HasPrefix(f, "quorum.") {
			k.add(field, "%s", l)
			continue
		}
		full := field + strings.TrimPrefix(f, "quorum")
		if !k.ok(full) {
			continue // could not be decoded; reported already
		}
		k.add(full, "%s", msg)
	}
}

type yamlTLS struct {
	Cert string `yaml:"cert,omitempty"`
	Key  string `yaml:"key,omitempty"`
	CA   string `yaml:"ca,omitempty"`
}

type yamlEtcd struct {
	Endpoints    []string `yaml:"endpoints,flow"`
	TTL          string   `yaml:"ttl"`
	Prefix       string   `yaml:"prefix"`
	TLS          *yamlTLS `yaml:"tls,omitempty,flow"`
	Username     string   `yaml:"username,omitempty"`
	Password     string   `yaml:"password,omitempty"`
	PasswordFile string   `yaml:"password_file,omitempty"`
}

type yamlQuorum struct {
	Etcd yamlEtcd `yaml:"etcd"`
}

func toYAMLQuorum(q *Quorum) *yamlQuorum {
	if q == nil {
		return nil
	}
	e := q.Etcd
	y := &yamlQuorum{Etcd: yamlEtcd{
		Endpoints: e.Endpoints, TTL: e.TTL.String(), Prefix: e.Prefix,
		Username: e.Username, Password: e.Password, PasswordFile: q.PasswordFile,
	}}
	if e.CertFile != "" || e.KeyFile != "" || e.CAFile != "" {
		y.Etcd.TLS = &yamlTLS{Cert: e.CertFile, Key: e.KeyFile, CA: e.CAFile}
	}
	return y
}

// applyEtcdEndpoints is Apply's --etcd-endpoints.
func applyEtcdEndpoints(n *Config, eps []string, add func(flag, format string, args ...any)) {
	for _, ep := range eps {
		if _, _, err := quorum.ParseEndpoint(ep); err != nil {
			add("--etcd-endpoints", "%v", err)
			return
		}
	}
	old := n.Quorum
	q := &Quorum{}
	if old != nil {
		*q = *old
	}
	q.Etcd.Endpoints = slices.Clone(eps)
	q.Etcd = q.Etcd.WithDefaults()
	n.Quorum = q
	for i := range n.Groups {
		if n.Groups[i].Quorum == nil || n.Groups[i].Quorum.Equal(old) {
			n.Groups[i].Quorum = q
		}
	}
}
