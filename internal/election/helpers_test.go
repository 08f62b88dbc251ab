package election

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

// t0 is the fake clock's origin; tests advance a copy of it.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

var (
	vip1    = netip.MustParseAddr("198.18.0.10")
	vip2    = netip.MustParseAddr("198.18.0.11")
	otherIP = netip.MustParseAddr("198.18.0.99")
	zeroIP  = netip.IPv4Unspecified()
)

// mac returns a locally administered unicast MAC ending in b.
func mac(b byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 0, b} }

var (
	macSelf  = mac(0x50)
	macLow   = mac(0x10) // lower than macSelf: wins ties
	macHigh  = mac(0x90) // higher than macSelf: loses ties
	macPeerA = mac(0x60)
	macPeerB = mac(0x70)
	macPeerC = mac(0x80)
	macAlien = mac(0xee) // a host that is not floatip
)

// The tests run the shipped timing: each profile's values are the ones the
// configuration's `profile:` selects (Preset).
var profiles = Profiles()

// profileTiming returns the Timing of a shipped profile.
func profileTiming(name string) Timing {
	t, ok := Preset(name)
	if !ok {
		panic("unknown profile " + name)
	}
	return t
}

// defaultTiming is the timing of the "default" profile, which a node runs
// unless configured otherwise.
func defaultTiming() Timing { return profileTiming(ProfileDefault) }

// fastTiming is the timing of the "fast" profile.
func fastTiming() Timing { return profileTiming(ProfileFast) }

// fmtAction renders an action compactly for sequence comparisons and
// failure messages, e.g. "Send announce+H bcast 198.18.0.10".
func fmtAction(a Action) string {
	switch a := a.(type) {
	case Send:
		p := a.Packet
		kind := "notrailer"
		if t := p.Trailer; t != nil {
			kind = t.Kind.String()
			if t.Flags&arp.FlagHolder != 0 {
				kind += "+H"
			}
			if t.Flags&arp.FlagClaiming != 0 {
				kind += "+C"
			}
		}
		dst := "bcast"
		if p.Destination.String() != arp.Broadcast.String() {
			dst = p.Destination.String()
		}
		ip := p.SenderIP
		if p.IsProbe() {
			ip = p.TargetIP
		}
		return fmt.Sprintf("Send %s %s %s", kind, dst, ip)
	case AddVIPs:
		if a.FirstOnly {
			return fmt.Sprintf("AddVIPs %v first", a.Lifetime)
		}
		return fmt.Sprintf("AddVIPs %v", a.Lifetime)
	case RemoveVIPs:
		return "RemoveVIPs"
	case Transition:
		return fmt.Sprintf("Transition %v->%v", a.From, a.To)
	case Note:
		return "Note"
	case Done:
		return "Done"
	default:
		return fmt.Sprintf("%T", a)
	}
}

// fmtActions renders actions, leaving out Notes (log lines only).
func fmtActions(acts []Action) []string {
	var s []string
	for _, a := range acts {
		if _, ok := a.(Note); ok {
			continue
		}
		s = append(s, fmtAction(a))
	}
	return s
}

func dump(acts []Action) string {
	var s []string
	for _, a := range acts {
		s = append(s, fmtAction(a))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func sends(acts []Action) []*arp.Packet {
	var ps []*arp.Packet
	for _, a := range acts {
		if s, ok := a.(Send); ok {
			ps = append(ps, s.Packet)
		}
	}
	return ps
}

func countOf[T Action](acts []Action) int {
	n := 0
	for _, a := range acts {
		if _, ok := a.(T); ok {
			n++
		}
	}
	return n
}

func transitions(acts []Action) []Transition {
	var ts []Transition
	for _, a := range acts {
		if tr, ok := a.(Transition); ok {
			ts = append(ts, tr)
		}
	}
	return ts
}

// harness drives one machine with a fake clock.
type harness struct {
	t       *testing.T
	m       *Machine
	p       Params
	now     time.Time
	rtts    []time.Duration    // ProbeAnswered reports of the last event
	lost    []net.HardwareAddr // HolderLost reports, all so far
	foreign []ForeignClaim     // ForeignClaim reports, all so far
}

type option func(*Params)

func withTiming(tm Timing) option        { return func(p *Params) { p.Timing = tm } }
func withPolicy(fp ForeignPolicy) option { return func(p *Params) { p.ForeignPolicy = fp } }
func withMAC(m net.HardwareAddr) option  { return func(p *Params) { p.MAC = m } }
func withVIPs(v ...netip.Addr) option    { return func(p *Params) { p.VIPs = v } }
func withPriority(prio uint8) option     { return func(p *Params) { p.Priority = prio } }
func withNodeID(id uint32) option        { return func(p *Params) { p.NodeID = id } }

func newParams(opts ...option) Params {
	p := Params{
		VIPs:     []netip.Addr{vip1, vip2},
		MAC:      macSelf,
		Priority: 100,
		NodeID:   0xC0FFEE,
		Timing:   defaultTiming(),
	}
	for _, f := range opts {
		f(&p)
	}
	return p
}

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	p := newParams(opts...)
	return &harness{t: t, m: New(p), p: p, now: t0}
}

// do feeds ev at the current fake time and checks the Deadline invariant
// that holds after every event: zero exactly when nothing can be pending.
func (h *harness) do(ev Event) []Action {
	h.t.Helper()
	acts := h.m.Handle(h.now, ev)
	h.checkDeadlineZero()
	// Round-trip reports feed metrics only; TestProbeAnsweredReportsRTT
	// checks them, the transition tests leave them out.
	h.rtts = nil
	kept := acts[:0:0]
	for _, a := range acts {
		if r, ok := a.(ProbeAnswered); ok {
			h.rtts = append(h.rtts, r.RTT)
			continue
		}
		if f, ok := a.(ForeignClaim); ok {
			// Reports for the daemon; TestForeignClaimReported checks them.
			h.foreign = append(h.foreign, f)
			continue
		}
		if l, ok := a.(HolderLost); ok {
			// For the node's other groups; TestHolderLostAndPace checks it.
			h.lost = append(h.lost, l.MAC)
			continue
		}
		kept = append(kept, a)
	}
	return kept
}

func (h *harness) checkDeadlineZero() {
	h.t.Helper()
	dl := h.m.Deadline()
	switch s := h.m.State(); s {
	case StateInit, StateStopped:
		if !dl.IsZero() {
			h.t.Fatalf("state %v: Deadline %v, want zero", s, h.rel(dl))
		}
	case StateFault:
		// Zero when waiting for the link, a retry time otherwise.
	default:
		if dl.IsZero() {
			h.t.Fatalf("state %v: Deadline is zero, want a pending timer", s)
		}
	}
}

// rel shows a time relative to t0 for messages.
func (h *harness) rel(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return "t0+" + t.Sub(t0).String()
}

func (h *harness) advance(d time.Duration) { h.now = h.now.Add(d) }

// tick advances the clock to the machine's Deadline and ticks.
func (h *harness) tick() []Action {
	h.t.Helper()
	dl := h.m.Deadline()
	if dl.IsZero() {
		h.t.Fatalf("tick: no Deadline in state %v", h.m.State())
	}
	if dl.After(h.now) {
		h.now = dl
	}
	return h.do(Tick{})
}

// tickAt advances the clock by d and ticks, whatever the Deadline.
func (h *harness) tickAt(d time.Duration) []Action {
	h.t.Helper()
	h.advance(d)
	return h.do(Tick{})
}

// runFor ticks at every Deadline up to now+d, then sets the clock to now+d.
// It fails if the Deadline stops moving (a Tick at or after it that leaves
// it in the past would make the daemon spin).
func (h *harness) runFor(d time.Duration) []Action {
	h.t.Helper()
	end := h.now.Add(d)
	var all []Action
	for {
		dl := h.m.Deadline()
		if dl.IsZero() || dl.After(end) {
			break
		}
		all = append(all, h.tick()...)
		if ndl := h.m.Deadline(); !ndl.IsZero() && !ndl.After(h.now) {
			h.t.Fatalf("state %v: Tick at %s left Deadline at %s", h.m.State(), h.rel(h.now), h.rel(ndl))
		}
	}
	h.now = end
	return all
}

func (h *harness) frame(p *arp.Packet) []Action {
	h.t.Helper()
	return h.do(Frame{Packet: p})
}

func (h *harness) wantState(s State) {
	h.t.Helper()
	if got := h.m.State(); got != s {
		h.t.Fatalf("at %s: state %v, want %v", h.rel(h.now), got, s)
	}
}

func (h *harness) wantSeq(acts []Action, want ...string) {
	h.t.Helper()
	got := fmtActions(acts)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		h.t.Fatalf("at %s: actions\n  got  %q\n  want %q", h.rel(h.now), got, want)
	}
}

func (h *harness) wantDeadline(d time.Duration) {
	h.t.Helper()
	want := h.now.Add(d)
	if got := h.m.Deadline(); !got.Equal(want) {
		h.t.Fatalf("Deadline %s, want %s", h.rel(got), h.rel(want))
	}
}

// startFresh starts the machine with the link up and no VIP.
func (h *harness) startFresh() {
	h.t.Helper()
	h.do(Start{LinkUp: true})
	h.wantState(StateProbing)
}

// becomeHolder starts fresh and lets Misses probes go unanswered.
func (h *harness) becomeHolder() {
	h.t.Helper()
	h.startFresh()
	for h.m.State() != StateHolder {
		if h.now.Sub(t0) > time.Minute {
			h.t.Fatalf("never became holder; state %v", h.m.State())
		}
		h.tick()
	}
}

// becomeStandby starts fresh and hears holder's kernel answer the probe.
func (h *harness) becomeStandby(holder net.HardwareAddr) {
	h.t.Helper()
	h.startFresh()
	h.frame(kernelReply(holder, h.p.MAC))
	h.wantState(StateStandby)
}

// Frames other nodes (or their kernels) send.

func tr(kind arp.Kind, prio, flags uint8) *arp.Trailer {
	return &arp.Trailer{Kind: kind, Priority: prio, Flags: flags, NodeID: uint32(prio) << 8}
}

// kernelReply is what a host's kernel answers to a probe for vip1: a
// unicast reply without a trailer.
func kernelReply(from, to net.HardwareAddr) *arp.Packet {
	return arp.NewReply(from, to, vip1, zeroIP, nil)
}

func peerProbe(from net.HardwareAddr, prio, flags uint8) *arp.Packet {
	return arp.NewProbe(from, arp.Broadcast, vip1, tr(arp.KindProbe, prio, flags))
}

func peerBeacon(from net.HardwareAddr, prio uint8) *arp.Packet {
	return arp.NewProbe(from, arp.Broadcast, vip1, tr(arp.KindBeacon, prio, 0))
}

func peerRelease(from net.HardwareAddr, prio uint8) *arp.Packet {
	return arp.NewProbe(from, arp.Broadcast, vip1, tr(arp.KindRelease, prio, 0))
}

func peerAnnounce(from net.HardwareAddr, prio uint8) *arp.Packet {
	return arp.NewAnnouncement(from, vip1, tr(arp.KindAnnounce, prio, arp.FlagHolder))
}
