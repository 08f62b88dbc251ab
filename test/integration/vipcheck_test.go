package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/lab"
)

// output waits (up to 10 s) for p to exit and returns its exit error and
// its output.
func output(t *testing.T, p *lab.Proc) (error, string) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		_ = p.Kill()
		t.Fatalf("%s still running after 10s", p.Name)
	}
	err := p.Wait()
	var text []string
	for _, l := range p.Lines() {
		text = append(text, l.Text)
	}
	return err, strings.Join(text, "\n")
}

// ip runs `ip args...` in the node's namespace.
func ip(t *testing.T, c *cluster, n *lab.Node, args ...string) {
	t.Helper()
	p, err := n.Start(c.ctx, "ip", args...)
	if err != nil {
		t.Fatal(err)
	}
	if err, out := output(t, p); err != nil {
		t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}

// A cloud host's primary address is often a permanent /32: a VIP equal to
// it is the host's own address, although floatip adds its VIPs as /32s too.
// A /32 with a finite lifetime is what floatip leaves behind (a restart
// after kill -9) and must not be refused.
func TestVIPEqualToPermanent32IsRefused(t *testing.T) {
	c := newLab(t, 1)
	n := c.Node(1)
	ip(t, c, n, "addr", "add", "198.18.0.77/32", "dev", "eth0")
	p, err := n.Start(c.ctx, binary, "run", "--interface", "eth0", "--vip", "198.18.0.77", "--socket", n.Socket())
	if err != nil {
		t.Fatal(err)
	}
	if err, out := output(t, p); err == nil || !strings.Contains(out, "VIP 198.18.0.77 (group default) is this node's own address on eth0 (198.18.0.77/32)") {
		t.Errorf("a permanent /32 as VIP: err %v, output:\n%s\nwant a refusal naming the own address", err, out)
	}

	ip(t, c, n, "addr", "add", "198.18.0.78/32", "dev", "eth0", "valid_lft", "60", "preferred_lft", "60")
	d, err := n.Start(c.ctx, binary, "run", "--interface", "eth0", "--vip", "198.18.0.78", "--log-format", "json", "--socket", n.Socket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.WaitLine(c.ctx, 10*time.Second, func(l lab.Line) bool { return l.Msg() == "state changed" && l.Str("to") == "holder" }); err != nil {
		_, out := output(t, d)
		t.Fatalf("a VIP present as a finite /32 was not taken: %v\n%s", err, out)
	}
	if err := d.Stop(5 * time.Second); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func TestCheckLooksAtTheInterface(t *testing.T) {
	c := newLab(t, 1)
	n := c.Node(1)
	tests := []struct {
		name string
		args []string
		fail bool
		want string
	}{
		{"own address", []string{"-i", "eth0", "--vip", n.IP.String()}, true,
			"VIP " + n.IP.String() + " (group default) is this node's own address on eth0 (" + n.IP.String() + "/24)"},
		{"network address", []string{"-i", "eth0", "--vip", "198.18.0.0"}, true,
			"VIP 198.18.0.0 (group default) is the network address of 198.18.0.0/24 on eth0"},
		{"broadcast address", []string{"-i", "eth0", "--vip", "198.18.0.255"}, true,
			"VIP 198.18.0.255 (group default) is the broadcast address of 198.18.0.0/24 on eth0"},
		{"outside every subnet", []string{"-i", "eth0", "--vip", "198.19.5.5"}, false,
			"warning: VIP 198.19.5.5 (group default) is outside every subnet of eth0 (its subnets are 198.18.0.0/24) and no on-link route covers it"},
		{"no such interface", []string{"-i", "nosuch0", "--vip", "198.18.0.100"}, false,
			`warning: interface "nosuch0" does not exist on this host; floatip run would refuse to start here`},
		{"fine", []string{"-i", "eth0", "--vip", "198.18.0.100"}, false, "# floatip effective configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := n.Start(c.ctx, binary, append([]string{"check"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			err, out := output(t, p)
			if (err != nil) != tt.fail || !strings.Contains(out, tt.want) {
				t.Errorf("check %v: err %v, output:\n%s\nwant failure=%v and %q", tt.args, err, out, tt.fail, tt.want)
			}
		})
	}
}
