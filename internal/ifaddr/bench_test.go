//go:build linux

package ifaddr

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkRenew1000 renews the lifetime of 1000 addresses already on a
// veth in a fresh namespace (what a holder of 1000 VIPs does every renew
// interval), once with Claim's batched requests and once with one
// AddrReplace request per address, as Claim does for a single address. It
// needs root, and reports the process's CPU time per renewal (user+system,
// mostly the kernel's) besides the wall time.
func BenchmarkRenew1000(b *testing.B) {
	l := newLab(b)
	m := l.open(b)
	addrs := make([]netip.Addr, 1000)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{198, 18, byte(100 + i/250), byte(1 + i%250)})
	}
	const lifetime = 30 * time.Second
	if err := m.Claim(addrs, lifetime); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name  string
		renew func() error
	}{
		{"batched", func() error { return m.Claim(addrs, lifetime) }},
		{"one request per address", func() error {
			for i := range addrs {
				if err := m.Claim(addrs[i:i+1], lifetime); err != nil {
					return err
				}
			}
			return nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			start := cpuTime(b)
			for b.Loop() {
				if err := bc.renew(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time, user and system, the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
