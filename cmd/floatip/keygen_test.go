package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floatip/floatip/internal/auth"
)

func TestKeygenOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "floatip.key")
	if err := (keygenCmd{Out: path}).Run(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	k, err := auth.LoadKeyFile(path)
	if err != nil {
		t.Fatalf("the key keygen wrote does not load: %v", err)
	}
	err = (keygenCmd{Out: path}).Run()
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second keygen without --force: %v, want refused", err)
	}
	if err := (keygenCmd{Out: path, Force: true}).Run(); err != nil {
		t.Fatal(err)
	}
	k2, err := auth.LoadKeyFile(path)
	if err != nil || k2.ID() == k.ID() {
		t.Errorf("after --force: key %v (err %v), want a new key", k2, err)
	}
}
