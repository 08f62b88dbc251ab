package lab

import "net/netip"

// labVIP6 is the lab's IPv6 VIP; zero until the lab carries IPv6.
func labVIP6(l *Lab) netip.Addr { return netip.Addr{} }

// WithIPv6 returns o with IPv6 in the lab turned on or off.
func WithIPv6(o Options, on bool) Options { return o }
