package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/floatip/floatip/internal/arp"
	"github.com/floatip/floatip/internal/auth"
	"github.com/floatip/floatip/internal/config"
	"github.com/floatip/floatip/internal/hooks"
	"github.com/floatip/floatip/internal/metrics"
)

// A host that does not run floatip claims the holder's VIP, and another
// sends frames with the holder's own MAC: the holder keeps the VIP
// (defend), and the claim is logged, counted, shown in status and passed
// to the hooks that asked for foreign-claim; the spoofed frames are
// counted.
func TestForeignClaimAndSpoofingReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		m := metrics.New("test")
		notes := &blockingNotifier{}
		cfg := func(name string, prio int) config.Config {
			c := testConfig(name, prio, grp("web", vip1.String()))
			c.OnForeignClaim = config.ForeignClaimDefend
			return c
		}
		a := lan.newTestNode(t, cfg("a", 200), func(d *Deps) {
			d.Metrics = m
			d.NewNotifier = func([]hooks.Hook, *slog.Logger, func(string, error)) Notifier { return notes }
		}).start()
		b := lan.newTestNode(t, cfg("b", 100), nil).start()
		if soleHolder(t, "web", vip1, a, b) != a {
			t.Fatal("a (priority 200) should hold")
		}
		rogue := net.HardwareAddr{2, 0x66, 0, 0, 0, 1}
		claim := arp.NewAnnouncement(rogue, vip1, nil)
		spoof := arp.NewAnnouncement(a.mac, vip1, &arp.Trailer{Kind: arp.KindRelease, Priority: 200})
		for range 3 {
			for _, p := range []*arp.Packet{claim, spoof} {
				bb, err := p.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				lan.send(nil, bb)
			}
			time.Sleep(time.Second)
		}
		waitFor(t, "the foreign claim in status", func() bool {
			s, _ := a.d.Status(context.Background())
			f := s.Groups[0].LastForeignClaim
			return f != nil && f.MAC == rogue.String() && f.VIP == vip1.String()
		})
		if soleHolder(t, "web", vip1, a, b) != a {
			t.Fatal("the holder gave the VIP up")
		}
		s, _ := a.d.Status(context.Background())
		if s.SpoofedFrames != 3 {
			t.Errorf("status spoofed_frames = %d, want 3", s.SpoofedFrames)
		}
		if c := s.Groups[0].Counters; c.ForeignClaims < 3 || c.Spoofed != 3 {
			t.Errorf("counters %+v: want foreign_claims >= 3 and spoofed 3", c)
		}
		if got := metricValue(t, m, "floatip_spoofed_frames_total"); got != 3 {
			t.Errorf("floatip_spoofed_frames_total = %v, want 3", got)
		}
		if got := metricValue(t, m, "floatip_foreign_claims_total"); got < 3 {
			t.Errorf("floatip_foreign_claims_total{group=\"web\"} = %v, want >= 3", got)
		}
		var foreign []hooks.Event
		for _, e := range notes.seen() {
			if e.To == hooks.ForeignClaim {
				foreign = append(foreign, e)
			}
		}
		if len(foreign) == 0 || foreign[0].Foreign == nil || foreign[0].Foreign.MAC != rogue.String() || foreign[0].From != "holder" {
			t.Errorf("hook events %+v: want a foreign-claim event for %s from holder", foreign, rogue)
		}
	})
}

// metricValue is the sum of the metric's series.
func metricValue(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, x := range mf.GetMetric() {
			v += x.GetCounter().GetValue() + x.GetGauge().GetValue()
		}
	}
	return v
}

// A reload re-reads the keys through Deps.Auth (the replay table stays
// with the verifier); turning auth off, or a key that does not load,
// rejects the reload whole.
func TestReloadReadsKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lan := &fakeLAN{}
		cfg := testConfig("a", 200, grp("web", vip1.String()))
		cfg.Auth = config.Auth{KeyFiles: []string{"/k/new", "/k/old"}, Require: true, SequenceFile: "/s/seq"}
		var loads [][]string
		fail := false
		a := lan.newTestNode(t, cfg, func(d *Deps) {
			d.Auth = &AuthDeps{KeyIDs: []auth.KeyID{1}, Reload: func(next config.Config) ([]auth.KeyID, error) {
				loads = append(loads, next.Auth.KeyFiles)
				if fail {
					return nil, errors.New("auth.key_file: mode 0644")
				}
				return []auth.KeyID{2, 1}, nil
			}}
		}).start()
		soleHolder(t, "web", vip1, a)
		if err := a.d.Reload(context.Background()); err != nil {
			t.Fatal(err)
		}
		s, _ := a.d.Status(context.Background())
		if len(loads) != 1 || s.Auth == nil || len(s.Auth.KeyIDs) != 2 || s.Auth.KeyIDs[0] != auth.KeyID(2).String() {
			t.Fatalf("after a reload: loads %v, status auth %+v", loads, s.Auth)
		}
		fail = true
		if err := a.d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "0644") {
			t.Errorf("reload with a bad key: %v, want the key's error", err)
		}
		a.next.Auth = config.Auth{SequenceFile: "/s/seq"}
		if err := a.d.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "restart") {
			t.Errorf("reload turning auth off: %v, want a refusal", err)
		}
		if len(loads) != 2 {
			t.Errorf("keys loaded %d times, want 2 (the refused reload reads none)", len(loads))
		}
	})
}
