package daemon

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// fakeAddrs6 records what dualAddrs hands the IPv6 side.
type fakeAddrs6 struct {
	claimed  []netip.Addr
	lifetime time.Duration
	have     map[netip.Addr]bool
	prefixes []netip.Prefix
}

func (f *fakeAddrs6) Claim(v []netip.Addr, l time.Duration) error {
	f.claimed, f.lifetime = append(f.claimed, v...), l
	for _, x := range v {
		f.have[x] = true
	}
	return nil
}

func (f *fakeAddrs6) Release(v []netip.Addr) error {
	for _, x := range v {
		delete(f.have, x)
	}
	return nil
}

func (f *fakeAddrs6) Present(v []netip.Addr) (map[netip.Addr]bool, error) {
	out := map[netip.Addr]bool{}
	for _, x := range v {
		out[x] = f.have[x]
	}
	return out, nil
}

func (f *fakeAddrs6) Prefixes() ([]netip.Prefix, error) { return f.prefixes, nil }
func (f *fakeAddrs6) Close() error                      { return nil }

func TestDualAddrs(t *testing.T) {
	v4 := newFakeAddrs(ndUs)
	v6 := &fakeAddrs6{have: map[netip.Addr]bool{}, prefixes: []netip.Prefix{netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("2001:db8::1/64")}}
	a := dualAddrs{Addrs: v4, v6: v6}
	vips := []netip.Addr{vip6a, vip1, vip6b}
	if err := a.Claim(vips, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(v6.claimed, []netip.Addr{vip6a, vip6b}) || v6.lifetime != 3*time.Second {
		t.Errorf("IPv6 side claimed %v for %v, want %v for 3s", v6.claimed, v6.lifetime, []netip.Addr{vip6a, vip6b})
	}
	if !v4.has(vip1) || v4.has(vip6a) {
		t.Errorf("IPv4 side has %v: %v, %v: %v", vip1, v4.has(vip1), vip6a, v4.has(vip6a))
	}
	p, err := a.Present(vips)
	if err != nil || !p[vip1] || !p[vip6a] || !p[vip6b] {
		t.Errorf("Present = %v, %v", p, err)
	}
	l, err := a.Link()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range append(v6.prefixes, netip.PrefixFrom(vip1, 32)) {
		if !slices.Contains(l.Addrs, want) {
			t.Errorf("Link addresses %v lack %v", l.Addrs, want)
		}
	}
	if err := a.Release(vips); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.Present(vips); p[vip1] || p[vip6a] || p[vip6b] {
		t.Errorf("after Release, Present = %v", p)
	}
	if got := probeOrder([]netip.Addr{vip6a, vip1, vip6b, vip2}); !slices.Equal(got, []netip.Addr{vip1, vip2, vip6a, vip6b}) {
		t.Errorf("probeOrder = %v", got)
	}
}

func TestCheckOwnIPv6Addresses(t *testing.T) {
	cfg := testConfig("a", 100, grp("web", vip6a.String()))
	link := newFakeAddrs(ndUs).link
	link.Addrs = append(link.Addrs, netip.PrefixFrom(vip6a, 128)) // floatip's own /128: fine
	if err := checkOwnAddresses(cfg, link); err != nil {
		t.Errorf("a /128 VIP (floatip's) refused: %v", err)
	}
	link.Addrs = append(link.Addrs, netip.PrefixFrom(vip6a, 64))
	if err := checkOwnAddresses(cfg, link); err == nil {
		t.Error("a VIP that is the host's own /64 address was accepted")
	}
}
