package config

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/floatip/floatip/internal/auth"
	"go.yaml.in/yaml/v3"
)

// Auth is the authentication of floatip's frames (see package auth). It is
// off unless KeyFiles is set.
type Auth struct {
	// KeyFiles are the cluster's keys, from `auth: {key_file: PATH}` or
	// `auth: {key_files: [new, old]}`: frames are sealed with the first and
	// accepted with any of them (rotation without a gap).
	KeyFiles []string
	// Require, on by default with a key: only authenticated floatip frames
	// count. Off (rollout mode) every frame is still sealed and verified,
	// and failures counted, but unauthenticated floatip frames are obeyed
	// as without auth.
	Require bool
	// SequenceFile keeps the sequence number's high-water mark across
	// restarts; default auth.DefaultSequenceFile.
	SequenceFile string

	// Lines are the file lines of the KeyFiles entries (0: not from a file),
	// for problems.
	Lines []int
}

// Enabled reports whether frames are authenticated.
func (a Auth) Enabled() bool { return len(a.KeyFiles) > 0 }

var authKeys = []string{"key_file", "key_files", "require", "sequence_file"}

// auth decodes the auth: section. With a key and no on_foreign_claim in the
// file, a holder defends its VIPs.
func (p *parser) auth(n *yaml.Node, c *Config, foreignSet bool) {
	m := p.mapping(n, "auth", authKeys)
	one, hasOne := m["key_file"]
	many, hasMany := m["key_files"]
	switch {
	case hasOne && hasMany:
		p.at(many.key.Line, "auth.key_files", "set either key_file: or key_files:, not both (key_file: is at line %d)", one.key.Line)
	case hasOne:
		if s, ok := p.scalar(one.val, "auth.key_file"); ok {
			c.Auth.KeyFiles = []string{s}
			c.Auth.Lines = []int{one.val.Line}
		}
	case hasMany:
		c.Auth.KeyFiles = p.stringList(many.val, "auth.key_files", "[/etc/floatip/new.key, /etc/floatip/old.key]")
		for i := range c.Auth.KeyFiles {
			c.Auth.Lines = append(c.Auth.Lines, p.lines[fmt.Sprintf("auth.key_files[%d]", i)])
		}
		if len(c.Auth.KeyFiles) == 0 && !p.bad["auth.key_files"] {
			p.at(many.key.Line, "auth.key_files", "must list at least one key file")
		}
	}
	c.Auth.Require = c.Auth.Enabled()
	p.bool(m, "require", "auth.require", &c.Auth.Require)
	p.str(m, "sequence_file", "auth.sequence_file", &c.Auth.SequenceFile)
	if c.Auth.Enabled() && !foreignSet {
		c.OnForeignClaim = ForeignClaimDefend
	}
}

// auth checks the auth settings' values (not the key files: LoadKeys).
func (k *checker) auth(a Auth) {
	for i, f := range a.KeyFiles {
		field := fmt.Sprintf("auth.key_files[%d]", i)
		if len(a.KeyFiles) == 1 && k.lines["auth.key_file"] > 0 {
			field = "auth.key_file"
		}
		if !filepath.IsAbs(f) {
			k.add(field, "must be an absolute path, got %q", f)
		} else if slices.Index(a.KeyFiles, f) < i {
			k.add(field, "%s is listed twice", f)
		}
	}
	if k.ok("auth.sequence_file") && !filepath.IsAbs(a.SequenceFile) {
		k.add("auth.sequence_file", "must be an absolute path, got %q", a.SequenceFile)
	}
	if !a.Enabled() && (k.lines["auth.require"] > 0 || k.lines["auth.sequence_file"] > 0) {
		k.add("auth", "require: and sequence_file: need a key: set key_file: (make one with floatip keygen --out FILE)")
	}
}

// LoadKeys reads the key files into a ring (the first key signs); nil, nil
// when auth is off. Each problem names the key_file entry's file:line and
// what is wrong with the key file (a loose mode, a foreign owner, a
// damaged key). The daemon calls it at start and reload, and floatip check
// too.
func (c Config) LoadKeys() (*auth.KeyRing, error) {
	if !c.Auth.Enabled() {
		return nil, nil
	}
	var probs Problems
	var keys []auth.Key
	for i, path := range c.Auth.KeyFiles {
		field := fmt.Sprintf("auth.key_files[%d]", i)
		if len(c.Auth.KeyFiles) == 1 {
			field = "auth.key_file"
		}
		line := 0
		if i < len(c.Auth.Lines) {
			line = c.Auth.Lines[i]
		}
		k, err := auth.LoadKeyFile(path)
		if err != nil {
			probs = append(probs, Problem{File: c.Path, Line: line, Field: field, Msg: err.Error()})
			continue
		}
		keys = append(keys, k)
	}
	if len(probs) > 0 {
		return nil, &probs
	}
	ring, err := auth.NewKeyRing(keys...)
	if err != nil {
		return nil, &Problems{{File: c.Path, Field: "auth", Msg: err.Error()}}
	}
	return ring, nil
}
