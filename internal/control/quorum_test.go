package control

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/election"
)

func TestStatusShowsQuorum(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := Status{Node: "n1", Interface: "eth0", Started: now.Add(-time.Minute), Groups: []Group{{
		Name: "web", VIPs: []string{"198.18.0.100"}, State: election.StateHolder, Since: now.Add(-time.Second),
		Quorum: &Quorum{Backend: "etcd", Endpoints: []string{"198.18.0.11:2379"}, State: "live", Reachable: true,
			LeaseDeadline: now.Add(4 * time.Second), Role: "holding", KeyHolder: "n1", Token: 7},
	}, {
		Name: "db", VIPs: []string{"198.18.0.101"}, State: election.StateCandidate, Since: now.Add(-time.Second),
		Quorum: &Quorum{Backend: "etcd", State: "degraded", Role: "campaigning", KeyHolder: "n2", Error: "context deadline exceeded"},
	}}}
	var b bytes.Buffer
	if err := FormatStatus(&b, s, now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"quorum         etcd live, reachable, lease deadline in 4s",
		"key: this node holding (token 7), held by n1",
		"quorum         etcd degraded, UNREACHABLE",
		"key: this node campaigning, held by n2",
		"error: context deadline exceeded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	js, err := json.Marshal(s.Groups[0].Quorum)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"state":"live"`, `"reachable":true`, `"lease_deadline":"2030-01-02T03:04:09Z"`, `"role":"holding"`, `"key_holder":"n1"`, `"token":7`} {
		if !strings.Contains(string(js), key) {
			t.Errorf("JSON lacks %s: %s", key, js)
		}
	}
	// Without quorum: no quorum row, no JSON key.
	s.Groups[0].Quorum, s.Groups = nil, s.Groups[:1]
	b.Reset()
	_ = FormatStatus(&b, s, now)
	js, _ = json.Marshal(s.Groups[0])
	if strings.Contains(b.String(), "quorum") || strings.Contains(string(js), "quorum") {
		t.Errorf("quorum shown without one:\n%s\n%s", b.String(), js)
	}
}
