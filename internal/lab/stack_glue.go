package lab

import "net/netip"

// labVIP6 is the lab's IPv6 VIP; zero until the lab carries IPv6.
func labVIP6(l *Lab) netip.Addr { return netip.Addr{} }
