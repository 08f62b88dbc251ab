package election

import (
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/arp"
)

func silentNotes(acts []Action) int {
	n := 0
	for _, a := range acts {
		if note, ok := a.(Note); ok && strings.Contains(note.Msg, "silent but its VIP answers") {
			n++
		}
	}
	return n
}

// TestHealedPartitionHolderNotSilent: a standby that claimed during a
// partition yields when the partition heals, on the better holder's kernel
// reply (no trailer). It last heard the holder's daemon before the
// partition, but that is no sign the daemon is silent now: it must not warn
// "silent" nor probe five times as often; only beacons missing for three
// beacon intervals from then on are.
func TestHealedPartitionHolderNotSilent(t *testing.T) {
	for _, prof := range profiles {
		t.Run(prof, func(t *testing.T) {
			tm := profileTiming(prof)
			h := newHarness(t, withTiming(tm), withPriority(150))
			h.becomeStandby(macPeerA)
			h.frame(peerAnnounce(macPeerA, 200)) // the holder's daemon, known
			// Partition: the holder goes quiet, we claim.
			for i := 0; h.m.State() != StateHolder; i++ {
				if i > 1000 {
					t.Fatalf("never claimed; state %v", h.m.State())
				}
				h.tick()
			}
			h.runFor(4 * tm.BeaconInterval)
			// Heal: the holder's kernel answers our holder probe first.
			// Without auth we yield only once our check of the claimant
			// is answered too (guard.go), so the kernel answers that.
			acts := h.frame(kernelReply(macPeerA, h.p.MAC))
			for i := 0; h.m.State() == StateHolder; i++ {
				if i > 10 {
					t.Fatalf("never yielded to the better holder; state %v", h.m.State())
				}
				acts = append(acts, h.frame(kernelReply(macPeerA, h.p.MAC))...)
			}
			h.wantState(StateStandby)
			if n := silentNotes(acts); n != 0 {
				t.Fatalf("yielding to a holder heard a moment ago warned it silent:\n%s", dump(acts))
			}
			h.wantDeadline(tm.CheckInterval)
			// follow runs for d with the holder's kernel answering every
			// probe and, if beacons, its daemon beaconing each interval.
			follow := func(d time.Duration, beacons bool) []Action {
				var all []Action
				end, nextBeacon := h.now.Add(d), h.now
				for h.now.Before(end) {
					all = append(all, h.tick()...)
					h.wantState(StateStandby)
					all = append(all, h.frame(kernelReply(macPeerA, h.p.MAC))...)
					if beacons && !h.now.Before(nextBeacon) {
						all = append(all, h.frame(arp.NewProbe(macPeerA, arp.Broadcast, vip1, tr(arp.KindBeacon, 200, arp.FlagHolder)))...) // a holder's beacon
						nextBeacon = h.now.Add(tm.BeaconInterval)
					}
				}
				return all
			}
			if n := silentNotes(follow(4*tm.BeaconInterval, true)); n != 0 {
				t.Fatalf("a beaconing holder was warned silent %d times", n)
			}
			// Its daemon dies, its kernel keeps answering: silent after
			// three beacon intervals.
			if n := silentNotes(follow(4*tm.BeaconInterval, false)); n != 1 {
				t.Fatalf("holder's daemon quiet for 4 beacon intervals: %d silent warnings, want 1", n)
			}
		})
	}
}
