package election

import (
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestStatesText(t *testing.T) {
	states := States()
	if len(states) != len(stateNames) || states[0] != StateInit || !slices.Contains(states, StateFencing) {
		t.Fatalf("States() = %v", states)
	}
	for _, s := range states {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if want := `"` + s.String() + `"`; string(b) != want {
			t.Errorf("json of %v = %s, want %s", s, b, want)
		}
		var back State
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("%s read back as %v, %v", b, back, err)
		}
	}
	var s State
	if err := s.UnmarshalText([]byte("leader")); err == nil {
		t.Fatal("an unknown state name was accepted")
	}
	if _, err := State(42).MarshalText(); err == nil {
		t.Fatal("an unknown state was written")
	}
}

// The fault's cause, not its reason text, decides whether the machine
// retries by itself.
func TestFaultCause(t *testing.T) {
	p := Params{
		VIPs: []netip.Addr{netip.MustParseAddr("198.18.0.10")}, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Priority: 100,
		Timing: Timing{CheckInterval: 50 * time.Millisecond, Misses: 3, ClaimSlot: 50 * time.Millisecond, AnnounceCount: 3,
			AnnounceInterval: 100 * time.Millisecond, Lifetime: 3 * time.Second, RenewInterval: 1500 * time.Millisecond,
			BeaconInterval: 500 * time.Millisecond},
	}
	now := time.Unix(1000, 0)
	fault := func(acts []Action) Transition {
		t.Helper()
		for _, a := range acts {
			if tr, ok := a.(Transition); ok && tr.To == StateFault {
				return tr
			}
		}
		t.Fatalf("no transition to fault in %v", acts)
		return Transition{}
	}

	m := New(p)
	tr := fault(m.Handle(now, Start{LinkUp: false}))
	if tr.Cause != FaultLinkDown || tr.Cause.Retries() {
		t.Fatalf("link down: cause %v (retries %v)", tr.Cause, tr.Cause.Retries())
	}
	if dl := m.Deadline(); !dl.IsZero() {
		t.Fatalf("a link-down fault has a deadline %v; it waits for the link", dl)
	}

	m = New(p)
	m.Handle(now, Start{LinkUp: true, Present: true})
	if m.State() != StateHolder {
		t.Fatalf("state %v, want holder", m.State())
	}
	tr = fault(m.Handle(now, ClaimFailed{Err: errors.New("no room")}))
	if tr.Cause != FaultClaimFailed || !tr.Cause.Retries() {
		t.Fatalf("claim failed: cause %v (retries %v)", tr.Cause, tr.Cause.Retries())
	}
	if dl := m.Deadline(); !dl.Equal(now.Add(faultRetry)) {
		t.Fatalf("claim-failed fault deadline %v, want %v", dl, now.Add(faultRetry))
	}
	// Frames that cannot be sent: a holder removes the VIP first; a
	// standby, which would take its own silence for the holder's, faults
	// too; both retry.
	for _, present := range []bool{true, false} {
		m = New(p)
		m.Handle(now, Start{LinkUp: true, Present: present})
		acts := m.Handle(now, SendFailed{Err: errors.New("no buffer space")})
		tr = fault(acts)
		if tr.Cause != FaultSendFailed || !tr.Cause.Retries() || tr.Cause.String() != "send-failed" {
			t.Fatalf("send failed: cause %v (retries %v)", tr.Cause, tr.Cause.Retries())
		}
		if present && countOf[RemoveVIPs](acts) != 1 {
			t.Fatalf("a holder whose frames fail kept the VIP: %s", dump(acts))
		}
		if dl := m.Deadline(); !dl.Equal(now.Add(faultRetry)) {
			t.Fatalf("send-failed fault deadline %v, want %v", dl, now.Add(faultRetry))
		}
	}
	if got := FaultCause(9).String(); got != "fault-cause(9)" || NoFault.String() != "none" {
		t.Fatalf("FaultCause strings: %q, %q", got, NoFault.String())
	}
}
