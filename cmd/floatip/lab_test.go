package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/floatip/floatip/internal/lab"
)

func TestInvocation(t *testing.T) {
	dir := t.TempDir()
	installed := filepath.Join(dir, "floatip")
	if err := os.WriteFile(installed, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "build", "floatip")
	os.MkdirAll(filepath.Dir(other), 0o755)
	if err := os.WriteFile(other, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	onPath := func(string) (string, error) { return installed, nil }
	notOnPath := func(string) (string, error) { return "", errors.New("not found") }
	for _, c := range []struct {
		exe  string
		look func(string) (string, error)
		sudo bool
		want string
	}{
		// go run builds into a temporary directory it removes afterwards.
		{"/tmp/go-build1234/b001/exe/floatip", notOnPath, true, "sudo go run ./cmd/floatip"},
		{"/tmp/go-build1234/b001/exe/floatip", onPath, false, "go run ./cmd/floatip"},
		{installed, onPath, false, "floatip"},
		{installed, onPath, true, "sudo floatip"},
		{other, onPath, false, other}, // not the floatip on PATH
		{other, notOnPath, false, other},
	} {
		if got := invocationOf(c.exe, c.look, c.sudo); got != c.want {
			t.Errorf("invocationOf(%q, sudo %v) = %q, want %q", c.exe, c.sudo, got, c.want)
		}
	}
}

func TestLabHelpListsDemoFlags(t *testing.T) {
	var out strings.Builder
	var c cli
	p, err := kong.New(&c, kong.Name("floatip"), kong.Writers(&out, &out), kong.Exit(func(int) {}))
	if err != nil {
		t.Fatal(err)
	}
	p.Parse([]string{"lab", "--help"})
	for _, want := range []string{"--fault=FAULT", "--nodes=NODES", "--keep", "--cleanup", "--svg=FILE", "--prefix=PREFIX", "--ipv6", "--dual-stack", "poweroff, stop, crash, partition, service", "lab up", "lab fault", "lab exec"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("floatip lab --help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestLabStackFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want lab.Stack
	}{
		{[]string{"lab"}, lab.StackIPv4},
		{[]string{"lab", "--ipv6"}, lab.StackIPv6},
		{[]string{"lab", "--dual-stack"}, lab.StackDual},
	} {
		if got, err := parse(t, c.args...).Lab.Demo.stack(); err != nil || got != c.want {
			t.Errorf("%v: stack %q, %v; want %q", c.args, got, err, c.want)
		}
	}
	if got, err := parse(t, "lab", "up", "--ipv6").Lab.Up.stack(); err != nil || got != lab.StackIPv6 {
		t.Errorf("lab up --ipv6: stack %q, %v", got, err)
	}
	if _, err := parse(t, "lab", "--ipv6", "--dual-stack").Lab.Demo.stack(); err == nil || !strings.Contains(err.Error(), "pick one") {
		t.Errorf("--ipv6 with --dual-stack: %v, want a one-line refusal", err)
	}
}

func TestSocketFromEnvironment(t *testing.T) {
	t.Setenv("FLOATIP_SOCKET", "/run/floatip/lab-n2.sock")
	if c := parse(t, "status"); c.Status.Socket != "/run/floatip/lab-n2.sock" {
		t.Errorf("status socket %q with FLOATIP_SOCKET set", c.Status.Socket)
	}
	if c := parse(t, "handover", "--socket", "/tmp/x.sock"); c.Handover.Socket != "/tmp/x.sock" {
		t.Errorf("--socket does not win over FLOATIP_SOCKET: %q", c.Handover.Socket)
	}
	t.Setenv("FLOATIP_SOCKET", "")
	os.Unsetenv("FLOATIP_SOCKET")
	if c := parse(t, "status"); c.Status.Socket != "/run/floatip/floatip.sock" {
		t.Errorf("default socket %q", c.Status.Socket)
	}
}
