package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeV2 is a tiny in-memory stand-in for etcd's v2 keys API, enough for
// the leader loop: PUT with prevExist=false or prevValue, DELETE with
// prevValue. TTLs are not kept (the tests expire keys by hand).
type fakeV2 struct {
	mu      sync.Mutex
	value   map[string]string
	deletes []string // prevValue of each DELETE
}

func (f *fakeV2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := r.URL.Path
	_ = r.ParseForm()
	cur, exists := f.value[key]
	switch r.Method {
	case http.MethodPut:
		switch {
		case r.Form.Get("prevExist") == "false" && exists:
			w.WriteHeader(http.StatusPreconditionFailed)
		case r.Form.Get("prevExist") == "false":
			f.value[key] = r.Form.Get("value")
			w.WriteHeader(http.StatusCreated)
		case r.Form.Get("prevValue") != "" && !exists:
			w.WriteHeader(http.StatusNotFound)
		case r.Form.Get("prevValue") != "" && cur != r.Form.Get("prevValue"):
			w.WriteHeader(http.StatusPreconditionFailed)
		default:
			f.value[key] = r.Form.Get("value")
			w.WriteHeader(http.StatusOK)
		}
	case http.MethodDelete:
		f.deletes = append(f.deletes, r.URL.Query().Get("prevValue"))
		if exists && cur == r.URL.Query().Get("prevValue") {
			delete(f.value, key)
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusPreconditionFailed)
		}
	}
}

func (f *fakeV2) set(key, v string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.value[key] = v
}

func TestRunLeader(t *testing.T) {
	fake := &fakeV2{value: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	// The first endpoint has no quorum (503): the loop must go on to the next.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer down.Close()

	const key = "/v2/keys/service/x/leader"
	fake.set(key, "n2") // someone else holds it at first
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunLeader(ctx, LeaderConfig{Endpoints: []string{down.URL, srv.URL}, Key: "/service/x/leader", Name: "n1",
			TTL: time.Second, Refresh: 20 * time.Millisecond, Poll: 10 * time.Millisecond}, pw)
		pw.Close()
	}()
	lines := make(chan leaderRecord, 100)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var r leaderRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("not a JSON line: %q", sc.Text())
			}
			lines <- r
		}
		close(lines)
	}()
	next := func(want string) leaderRecord {
		t.Helper()
		for {
			select {
			case r, ok := <-lines:
				if !ok {
					t.Fatalf("output ended waiting for %q", want)
				}
				if r.Msg == want {
					return r
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no %q line", want)
			}
		}
	}
	time.Sleep(50 * time.Millisecond) // polls while n2 holds: no acquisition
	select {
	case r := <-lines:
		t.Fatalf("line %+v while n2 holds the key", r)
	default:
	}
	before := time.Now()
	fake.mu.Lock() // hand-expire: the key is free
	delete(fake.value, key)
	fake.mu.Unlock()
	a := next(LeaderAcquired)
	if a.Deadline == nil || a.Deadline.Before(before.Add(time.Second)) || a.Deadline.After(time.Now().Add(time.Second)) {
		t.Errorf("acquired with deadline %v, want the send time + 1 s", a.Deadline)
	}
	r := next(LeaderRefreshed)
	if r.Deadline == nil || !r.Deadline.After(*a.Deadline) {
		t.Errorf("refreshed deadline %v, want after %v", r.Deadline, a.Deadline)
	}
	fake.set(key, "n3") // taken over: the next refresh's compare fails
	next(LeaderLost)
	fake.mu.Lock()
	delete(fake.value, key)
	fake.mu.Unlock()
	next(LeaderAcquired)
	cancel()
	next(LeaderReleased)
	if err := <-done; err != nil {
		t.Fatalf("RunLeader: %v", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if _, held := fake.value[key]; held || len(fake.deletes) != 1 || fake.deletes[0] != "n1" {
		t.Errorf("after stop: key held %v, deletes %v; want the key deleted once, guarded by n1", held, fake.deletes)
	}
}

func TestPowerSwitch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "power.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var off []string
	go servePower(ln, func(n string) error {
		if n != "n1" {
			return fmt.Errorf("no node %q", n)
		}
		mu.Lock()
		off = append(off, n)
		mu.Unlock()
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := PowerOffVia(ctx, path, "n1"); err != nil {
		t.Errorf("power off n1: %v", err)
	}
	if err := PowerOffVia(ctx, path, "n9"); err == nil || !strings.Contains(err.Error(), `no node "n9"`) {
		t.Errorf("power off n9: %v, want the switch's refusal", err)
	}
	if err := PowerOffVia(ctx, filepath.Join(t.TempDir(), "none.sock"), "n1"); err == nil {
		t.Error("no switch, yet the fence succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(off, []string{"n1"}) {
		t.Errorf("powered off %v, want [n1]", off)
	}
}

func TestEtcdFaultKinds(t *testing.T) {
	for _, s := range []string{"etcd-cut", "quorum-lost"} {
		f, err := ParseFault(s)
		if err != nil || f.String() != s {
			t.Errorf("ParseFault(%q) = %v, %v", s, f, err)
		}
		if slices.Contains(SoakKinds, f.Kind) {
			t.Errorf("the soak (which runs no etcd) draws %s", s)
		}
	}
	if _, err := ParseFault("etcd-cut:3"); err == nil {
		t.Error("etcd-cut took an argument")
	}
}
