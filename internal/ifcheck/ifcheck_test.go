package ifcheck

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/floatip/floatip/internal/config"
)

func cfgWith(vips ...string) config.Config {
	c := config.Default()
	c.Interface = "eth0"
	g := config.Group{Name: "web", Priority: c.Priority}
	for _, v := range vips {
		g.VIPs = append(g.VIPs, netip.MustParseAddr(v))
	}
	c.Groups = []config.Group{g}
	return c
}

func TestCheck(t *testing.T) {
	eth0 := Interface{Name: "eth0", Addrs: []Addr{
		{Prefix: netip.MustParsePrefix("192.0.2.10/24"), Permanent: true},
		{Prefix: netip.MustParsePrefix("203.0.113.7/32"), Permanent: true}, // a cloud host's primary address
		{Prefix: netip.MustParsePrefix("192.0.2.100/32")},                  // a VIP floatip added (finite lifetime)
		{Prefix: netip.MustParsePrefix("198.51.100.1/31"), Permanent: true},
		{Prefix: netip.MustParsePrefix("2001:db8:1::10/64"), Permanent: true},
		{Prefix: netip.MustParsePrefix("fe80::1/64"), Permanent: true},
		{Prefix: netip.MustParsePrefix("2001:db8:1::100/128")}, // an IPv6 VIP floatip added
		{Prefix: netip.MustParsePrefix("2001:db8:9::1/128"), Permanent: true},
	}}
	tests := []struct {
		vip     string
		err     string
		warning string
	}{
		{vip: "192.0.2.50"},
		{vip: "192.0.2.100"},  // floatip's own /32: a restart must not refuse it
		{vip: "198.51.100.0"}, // a /31 has no network or broadcast address
		{vip: "192.0.2.10", err: "VIP 192.0.2.10 (group web) is this node's own address on eth0 (192.0.2.10/24)"},
		{vip: "203.0.113.7", err: "VIP 203.0.113.7 (group web) is this node's own address on eth0 (203.0.113.7/32)",
			warning: "VIP 203.0.113.7 (group web) is outside every subnet of eth0"},
		{vip: "192.0.2.0", err: "VIP 192.0.2.0 (group web) is the network address of 192.0.2.0/24 on eth0"},
		{vip: "192.0.2.255", err: "VIP 192.0.2.255 (group web) is the broadcast address of 192.0.2.0/24 on eth0"},
		{vip: "10.9.9.9", warning: "VIP 10.9.9.9 (group web) is outside every subnet of eth0 (its subnets are 192.0.2.0/24, 198.51.100.0/31)"},
		{vip: "2001:db8:1::50"},
		{vip: "2001:db8:1::100"}, // floatip's own /128
		{vip: "2001:db8:1::10", err: "VIP 2001:db8:1::10 (group web) is this node's own address on eth0 (2001:db8:1::10/64)"},
		{vip: "2001:db8:9::1", err: "VIP 2001:db8:9::1 (group web) is this node's own address on eth0 (2001:db8:9::1/128); a VIP must be an address no host owns (a /128 without expiry",
			warning: "VIP 2001:db8:9::1 (group web) is outside every subnet of eth0 (its subnets are 2001:db8:1::/64)"},
		{vip: "2001:db8:1::", err: "VIP 2001:db8:1:: (group web) is the subnet-router anycast address of 2001:db8:1::/64 on eth0"},
		{vip: "fd00::1", warning: "VIP fd00::1 (group web) is outside every subnet of eth0 (its subnets are 2001:db8:1::/64) and no on-link route covers it: hosts on the segment will not send Neighbor Solicitations for it"},
	}
	for _, tt := range tests {
		r := Check(cfgWith(tt.vip), eth0)
		check := func(kind string, got []string, want string) {
			if want == "" {
				if len(got) > 0 {
					t.Errorf("%s: unexpected %s %q", tt.vip, kind, got)
				}
				return
			}
			if len(got) != 1 || !strings.HasPrefix(got[0], want) {
				t.Errorf("%s: %s %q, want one starting %q", tt.vip, kind, got, want)
			}
		}
		check("errors", r.Errors, tt.err)
		check("warnings", r.Warnings, tt.warning)
		if (r.Err() != nil) != (tt.err != "") {
			t.Errorf("%s: Err() = %v", tt.vip, r.Err())
		}
	}
	if r := Check(cfgWith("192.0.2.1"), Interface{Name: "eth1"}); len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "it has no IPv4 subnet") {
		t.Errorf("interface without addresses: %q", r.Warnings)
	}
	// An on-link route (ip route add 10.9.0.0/16 dev eth0) covers VIPs
	// outside the subnets; the rest make one warning for the group.
	eth0.OnLink = []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	r := Check(cfgWith("10.9.9.9", "10.1.0.1", "10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"), eth0)
	want := "VIPs 10.1.0.1, 10.1.0.2, 10.1.0.3 and 2 more (group web) are outside every subnet of eth0 (its subnets are 192.0.2.0/24, 198.51.100.0/31) and no on-link route covers them"
	if len(r.Errors) > 0 || len(r.Warnings) != 1 || !strings.HasPrefix(r.Warnings[0], want) {
		t.Errorf("on-link route: errors %q, warnings %q, want one warning %q", r.Errors, r.Warnings, want)
	}
}

func TestRead(t *testing.T) {
	lo, err := Read("lo")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(lo.Addrs, Addr{Prefix: netip.MustParsePrefix("127.0.0.1/8"), Permanent: true}) {
		t.Errorf("lo: %v, want 127.0.0.1/8 permanent", lo.Addrs)
	}
	if _, err := Read("nosuch0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Read(nosuch0): %v, want ErrNotFound", err)
	}
}
