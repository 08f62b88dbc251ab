package daemon

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/election"
)

// A standby whose loop wakes late (descheduled on a busy machine, stopped
// for a moment) must not replay the checks it skipped back to back: each
// replayed check counts a miss without giving the holder any time to
// answer, and a stall of a few check intervals became a false failover.
// The loop here runs as group.run does at one instant of real time: tick
// while the deadline's grid point is not after now.
func TestLateWakeDoesNotReplayChecks(t *testing.T) {
	for _, profile := range election.Profiles() {
		t.Run(profile, func(t *testing.T) {
			cfg := testConfig("b", 100, grp("web", vip1.String()))
			tm, err := config.Preset(profile)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Timing = tm
			t0 := time.Unix(1_000_000, 0)
			g := &group{nodeCfg: &cfg, d: &daemon{started: t0}}
			self := net.HardwareAddr{2, 0, 0, 0, 0, 2}
			holder := net.HardwareAddr{2, 0, 0, 0, 0, 1}
			m := election.New(params(&cfg, cfg.Groups[0], self))
			m.Handle(t0, election.Start{LinkUp: true})
			m.Handle(t0.Add(time.Millisecond), election.Frame{Packet: arp.NewReply(holder, self, vip1, netip.IPv4Unspecified(), nil)})
			if m.State() != election.StateStandby {
				t.Fatalf("state %v, want standby", m.State())
			}
			// The holder answers every check until the stall.
			now := t0.Add(time.Millisecond)
			for range 20 {
				dl := m.Deadline()
				now = g.onGrid(dl)
				m.Handle(g.tickTime(dl, now), election.Tick{})
				m.Handle(now.Add(100*time.Microsecond), election.Frame{Packet: arp.NewReply(holder, self, vip1, netip.IPv4Unspecified(), nil)})
			}
			// Stalled for Misses+1 check intervals, then the loop turns.
			now = now.Add(time.Duration(tm.Misses+1) * tm.CheckInterval)
			ticks := 0
			for dl := m.Deadline(); !dl.IsZero() && !now.Before(g.onGrid(dl)); dl = m.Deadline() {
				m.Handle(g.tickTime(dl, now), election.Tick{})
				ticks++
				if ticks > 1000 {
					t.Fatal("the loop never waits")
				}
			}
			if m.State() != election.StateStandby {
				t.Fatalf("after a stall of %v the standby replayed %d checks at once and left standby (%v): a holder that answers every check was declared lost",
					time.Duration(tm.Misses+1)*tm.CheckInterval, ticks, m.State())
			}
			if ticks != 1 {
				t.Fatalf("%d ticks at one instant after the stall, want 1", ticks)
			}
		})
	}
}
