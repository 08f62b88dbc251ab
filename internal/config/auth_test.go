package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floatip/floatip/internal/auth"
)

func writeKey(t *testing.T, dir, name string, mode os.FileMode) string {
	t.Helper()
	k, err := auth.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := auth.WriteKeyFile(path, k, false); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuthParse(t *testing.T) {
	for _, tc := range []struct {
		name, yaml  string
		files       []string
		require     bool
		foreign     string
		seq, errSub string
	}{
		{name: "off", yaml: "priority: 100\n", foreign: "yield", seq: auth.DefaultSequenceFile},
		{name: "one key", yaml: "auth:\n  key_file: /etc/floatip/key\n", files: []string{"/etc/floatip/key"}, require: true, foreign: "defend", seq: auth.DefaultSequenceFile},
		{name: "rotation", yaml: "auth:\n  key_files: [/k/new, /k/old]\n  sequence_file: /s/seq\n", files: []string{"/k/new", "/k/old"}, require: true, foreign: "defend", seq: "/s/seq"},
		{name: "rollout", yaml: "auth: {key_file: /k, require: false}\n", files: []string{"/k"}, foreign: "defend", seq: auth.DefaultSequenceFile},
		{name: "explicit yield kept", yaml: "on_foreign_claim: yield\nauth: {key_file: /k}\n", files: []string{"/k"}, require: true, foreign: "yield", seq: auth.DefaultSequenceFile},
		{name: "both", yaml: "auth:\n  key_file: /a\n  key_files: [/b]\n", errSub: "f.yaml:3: auth.key_files: set either key_file: or key_files:, not both (key_file: is at line 2)"},
		{name: "relative", yaml: "auth:\n  key_file: key\n", errSub: `f.yaml:2: auth.key_file: must be an absolute path, got "key"`},
		{name: "empty list", yaml: "auth:\n  key_files: []\n", errSub: "f.yaml:2: auth.key_files: must list at least one key file"},
		{name: "twice", yaml: "auth:\n  key_files: [/a, /a]\n", errSub: "auth.key_files[1]: /a is listed twice"},
		{name: "require without key", yaml: "auth:\n  require: true\n", errSub: "auth: require: and sequence_file: need a key"},
		{name: "unknown key", yaml: "auth:\n  keyfile: /a\n", errSub: "f.yaml:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("f.yaml", []byte(tc.yaml))
			if tc.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSub) {
					t.Fatalf("Parse error %v, want one containing %q", err, tc.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a := c.Auth
			if strings.Join(a.KeyFiles, ",") != strings.Join(tc.files, ",") || a.Require != tc.require || a.SequenceFile != tc.seq || c.OnForeignClaim != tc.foreign {
				t.Errorf("got %+v, on_foreign_claim %s; want files %v require %v seq %s foreign %s", a, c.OnForeignClaim, tc.files, tc.require, tc.seq, tc.foreign)
			}
		})
	}
}

func TestLoadKeysNamesTheEntry(t *testing.T) {
	dir := t.TempDir()
	good := writeKey(t, dir, "new.key", 0o600)
	loose := writeKey(t, dir, "old.key", 0o640)
	yaml := "priority: 100\nauth:\n  key_files:\n    - " + good + "\n    - " + loose + "\n"
	c, err := Parse("/etc/floatip/floatip.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.LoadKeys()
	want := "/etc/floatip/floatip.yaml:5: auth.key_files[1]: auth: key file " + loose + " has mode 0640"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("LoadKeys: %v, want an error starting %q", err, want)
	}
	if err := os.Chmod(loose, 0o600); err != nil {
		t.Fatal(err)
	}
	ring, err := c.LoadKeys()
	if err != nil {
		t.Fatal(err)
	}
	if ids := ring.IDs(); len(ids) != 2 {
		t.Fatalf("ring has %d keys, want 2", len(ids))
	}
	off, _ := Parse("f.yaml", []byte("priority: 100\n"))
	if r, err := off.LoadKeys(); r != nil || err != nil {
		t.Fatalf("LoadKeys without auth: %v, %v", r, err)
	}
}
