//go:build linux

package ifaddr

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestLifetimeSecs(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
		err  bool
	}{
		{d: time.Nanosecond, want: 1},
		{d: time.Second, want: 1},
		{d: 1500 * time.Millisecond, want: 2},
		{d: 2 * time.Second, want: 2},
		{d: 3*time.Second + 1, want: 4},
		{d: 0, err: true},
		{d: -time.Second, err: true},
		{d: time.Duration(1<<32) * time.Second, err: true},
	} {
		got, err := lifetimeSecs(tc.d)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("lifetimeSecs(%v) = %d, %v; want %d, error %v", tc.d, got, err, tc.want, tc.err)
		}
	}
}

func TestPrefixFrom(t *testing.T) {
	for _, tc := range []struct {
		n    *net.IPNet
		want netip.Prefix
		ok   bool
	}{
		{n: &net.IPNet{IP: net.IPv4(198, 18, 98, 1).To4(), Mask: net.CIDRMask(32, 32)}, want: netip.MustParsePrefix("198.18.98.1/32"), ok: true},
		{n: &net.IPNet{IP: net.IPv4(198, 18, 98, 1), Mask: net.CIDRMask(24, 32)}, want: netip.MustParsePrefix("198.18.98.1/24"), ok: true},
		{n: &net.IPNet{IP: net.IPv4(198, 18, 98, 1), Mask: net.CIDRMask(120, 128)}, want: netip.MustParsePrefix("198.18.98.1/24"), ok: true},
		{n: &net.IPNet{IP: net.ParseIP("2001:db8::1"), Mask: net.CIDRMask(64, 128)}},
		{n: nil},
	} {
		got, ok := prefixFrom(tc.n)
		if ok != tc.ok || got != tc.want {
			t.Errorf("prefixFrom(%v) = %v, %v; want %v, %v", tc.n, got, ok, tc.want, tc.ok)
		}
	}
}

func TestNotFoundError(t *testing.T) {
	var err error = &notFoundError{name: "eth9", err: netlink.LinkNotFoundError{}}
	if got, want := err.Error(), `interface "eth9" not found`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var nf netlink.LinkNotFoundError
	if !errors.As(err, &nf) {
		t.Error("errors.As(err, *netlink.LinkNotFoundError) = false")
	}
}

func TestHint(t *testing.T) {
	if got := hint(unix.EPERM).Error(); !strings.HasSuffix(got, "(needs CAP_NET_ADMIN)") {
		t.Errorf("hint(EPERM) = %q, want the CAP_NET_ADMIN hint", got)
	}
	if !errors.Is(hint(unix.EPERM), unix.EPERM) {
		t.Error("hint(EPERM) does not wrap EPERM")
	}
	if got := hint(unix.EEXIST); got != unix.EEXIST {
		t.Errorf("hint(EEXIST) = %v, want it unchanged", got)
	}
}
