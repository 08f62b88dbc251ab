package lab

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/testutil"
)

func TestEtcdCluster(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := Up(ctx, Options{Prefix: fmt.Sprintf("le%d", os.Getpid()%1000000), Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	c, err := l.StartEtcd(ctx, EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("data directory %s left after Close (%v)", dir, err)
		}
	})
	want := []string{"http://198.18.0.11:2379", "http://198.18.0.12:2379", "http://198.18.0.13:2379"}
	if got := c.Endpoints(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Endpoints = %v, want %v", got, want)
	}

	// A graceful stop of one member leaves a healthy majority; started
	// again from its data directory, it rejoins.
	m := c.Member("n3")
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	if m.Running() {
		t.Fatal("n3 still running after Stop")
	}
	if err := c.WaitHealthy(ctx, 20*time.Second); err != nil {
		t.Fatalf("two of three members: %v", err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err == nil {
		t.Error("starting a running member again did not fail")
	}
	if err := c.WaitHealthy(ctx, 20*time.Second); err != nil {
		t.Fatalf("after restarting n3: %v", err)
	}

	// BlockEtcdClient cuts n1 off the client port (its own member's too),
	// and nobody else.
	n1 := l.Node(1)
	if err := n1.BlockEtcdClient(); err != nil {
		t.Fatal(err)
	}
	bctx, bcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	err = c.Member("n1").Healthy(bctx)
	bcancel()
	if err == nil {
		t.Error("n1 reached its own member's client port while blocked")
	}
	// n2 still reaches n1's member: only what n1 sends to the port drops.
	conn, err := l.Node(2).DialContext(ctx, "tcp", "198.18.0.11:2379")
	if err != nil {
		t.Errorf("n2 to n1's member while n1 is blocked: %v", err)
	} else {
		conn.Close()
	}
	if err := n1.UnblockEtcdClient(); err != nil {
		t.Fatal(err)
	}
	if err := c.Member("n1").Healthy(ctx); err != nil {
		t.Errorf("n1 after unblocking: %v", err)
	}
}
