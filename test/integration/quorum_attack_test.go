package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/floatip/floatip/internal/lab"
)

// Attacks on the quorum's promises with the real binary and a real etcd
// (issue 13's review). The kernels' address state is sampled throughout:
// two holders at the same moment fail every test.

// etcdClient is a client of the lab's cluster from inside n3.
func (q *quorumLab) etcdClient() *clientv3.Client {
	q.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: q.etcd.Endpoints(), DialTimeout: 2 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(q.Node(3).Dialer())},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		q.t.Fatal(err)
	}
	q.t.Cleanup(func() { cli.Close() })
	return cli
}

// leadingKey is the key that holds the group now (lowest create revision
// under the lab's prefix), "" with none.
func (q *quorumLab) leadingKey(cli *clientv3.Client) (key string, lease clientv3.LeaseID, value string) {
	q.t.Helper()
	ctx, cancel := context.WithTimeout(q.ctx, 2*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/floatip/"+q.Prefix+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		q.t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return "", 0, ""
	}
	kv := resp.Kvs[0]
	return string(kv.Key), clientv3.LeaseID(kv.Lease), string(kv.Value)
}

// One-way partitions of the holder: partition-out (it hears everyone,
// nobody hears it: its ARP and its etcd traffic are cut, its own etcd
// member hears the others) and partition-in (everyone hears it, it hears
// nobody). Neither may ever make two holders; once healed, one node
// holds.
func TestQuorumOneWayPartitionsOfTheHolder(t *testing.T) {
	for _, kind := range []lab.FaultKind{lab.FaultPartitionOut, lab.FaultPartitionIn} {
		t.Run(string(kind), func(t *testing.T) {
			q := newQuorumLab(t, 5*time.Second)
			q.startTwo()
			stop := make(chan struct{})
			worst := q.watchHolders(stop)
			rec := q.RecordHolders(q.ctx)
			cut := time.Now()
			if err := q.Node(1).Inject(lab.Fault{Kind: kind}); err != nil {
				t.Fatal(err)
			}
			for end := cut.Add(3 * q.ttl); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			}
			healed := time.Now()
			if err := q.Node(1).Heal(q.ctx, kind); err != nil {
				t.Fatal(err)
			}
			q.waitHolders(func(h []string) bool { return len(h) == 1 }, 3*q.ttl, "one holder after the heal")
			q.noOverlap(stop, worst)
			rec.Stop()
			for _, c := range rec.Changes() {
				t.Logf("%s +%v: %s", kind, c.At.Sub(cut).Round(time.Millisecond), c)
			}
			t.Logf("%s held %v, healed at +%v", kind, 3*q.ttl, healed.Sub(cut).Round(time.Millisecond))
		})
	}
}

// kill -9 of the holder and a start again at once, with the same node
// name: the new process has a new lease, and must not hold (nor may
// anyone) while the old process's key, under its old lease, still leads.
func TestQuorumCrashRestartWithinTTL(t *testing.T) {
	q := newQuorumLab(t, 5*time.Second)
	q.startTwo()
	cli := q.etcdClient()
	oldKey, oldLease, who := q.leadingKey(cli)
	if oldKey == "" || who != "n1" {
		t.Fatalf("leading key %q of %q, want n1's", oldKey, who)
	}
	stop := make(chan struct{})
	worst := q.watchHolders(stop)
	crash := time.Now()
	if err := q.Node(1).Inject(lab.Fault{Kind: lab.FaultCrash}); err != nil {
		t.Fatal(err)
	}
	if err := q.Node(1).Heal(q.ctx, lab.FaultCrash); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	// The crashed process's VIP stays in n1's kernel until its lifetime,
	// bounded by the old lease, ends or the new process removes it (it does
	// at start under a quorum): that one is legitimate.
	q.waitHolders(func(h []string) bool { return len(h) == 0 }, q.ttl+5*time.Second, "the crashed process's VIP to go")
	gone := time.Now()
	// The next holder, whoever it is, must hold only once the old key is
	// gone: look at etcd as soon as the kernels show it.
	deadline := time.Now().Add(q.ttl + 15*time.Second)
	var holder []string
	for time.Now().Before(deadline) {
		h, err := q.Holders()
		if err == nil && len(h) > 0 {
			k, _, _ := q.leadingKey(cli)
			if k == oldKey {
				t.Fatalf("%v hold the VIP while the crashed process's key %s (lease %x) still leads", h, oldKey, int64(oldLease))
			}
			holder = h
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if len(holder) == 0 {
		t.Fatalf("nobody holds %v after the crash", time.Since(crash).Round(time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(q.ctx, 2*time.Second)
	ttl, err := cli.TimeToLive(ctx, oldLease)
	cancel()
	if err == nil && ttl.TTL > 0 {
		t.Errorf("the old lease %x is still alive (%d s) while %v hold", int64(oldLease), ttl.TTL, holder)
	}
	t.Logf("crash and restart (%v apart): the old VIP gone after %v, %v holds %v after the crash", restarted.Sub(crash).Round(time.Millisecond),
		gone.Sub(crash).Round(time.Millisecond), holder, time.Since(crash).Round(time.Millisecond))
	// A while longer: still one holder.
	for end := time.Now().Add(q.ttl); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
	}
	q.noOverlap(stop, worst)
}

// etcd answering slowly: a share of what the holder sends to etcd's
// client port is dropped (nftables numgen in its namespace; a delay is not
// available), so keepalives wait for TCP's retransmissions. The holder
// must never overlap the standby, and the figures say whether the VIP
// flapped.
func TestQuorumLossyEtcdLink(t *testing.T) {
	for _, loss := range []int{30, 60} {
		t.Run(fmt.Sprintf("%d%%", loss), func(t *testing.T) { lossyEtcdLink(t, loss) })
	}
}

func lossyEtcdLink(t *testing.T, loss int) {
	q := newQuorumLab(t, 5*time.Second)
	q.startTwo()
	stop := make(chan struct{})
	worst := q.watchHolders(stop)
	rec := q.RecordHolders(q.ctx)
	n1 := q.Node(1)
	script := fmt.Sprintf("add table inet lab_etcd_loss\n"+
		"add chain inet lab_etcd_loss out { type filter hook output priority 0; policy accept; }\n"+
		"add rule inet lab_etcd_loss out tcp dport %d numgen random mod 100 < %d drop\n", lab.EtcdClientPort, loss)
	nft := func(s string) { nftIn(t, n1, s) }
	nft(script)
	healed := false
	t.Cleanup(func() {
		if !healed {
			nft("delete table inet lab_etcd_loss\n")
		}
	})
	start := time.Now()
	for end := start.Add(6 * q.ttl); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
	}
	nft("delete table inet lab_etcd_loss\n")
	healed = true
	rec.Stop()
	flaps := 0
	for _, c := range rec.Changes() {
		t.Logf("+%v: %s", c.At.Sub(start).Round(time.Millisecond), c)
		flaps++
	}
	n := 0
	for _, l := range q.daemons["n1"].Lines() {
		if strings.Contains(l.Msg(), "keepalive failed") || strings.Contains(l.Text, "keepalive failed") {
			n++
		}
	}
	t.Logf("%d %% of n1's packets to etcd dropped for %v: %d holder changes, %d keepalive-failure runs logged", loss, 6*q.ttl, flaps, n)
	q.noOverlap(stop, worst)
}

// nftIn runs an nftables script inside a node's namespace.
func nftIn(t *testing.T, n *lab.Node, script string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", n.NS, err, out)
	}
}

// The holder's ARP is cut (the bridge drops every ARP frame it sends, its
// kernel's and its daemon's, silently) while its etcd traffic flows: it
// keeps the key, the standby sees it vanish and must wait for the key,
// never claiming on ARP's word alone.
func TestQuorumHolderARPCutEtcdFine(t *testing.T) {
	q := newQuorumLab(t, 5*time.Second)
	q.startTwo()
	stop := make(chan struct{})
	worst := q.watchHolders(stop)
	n1 := q.Node(1)
	nftBridge := func(script string) {
		t.Helper()
		cmd := exec.Command("ip", "netns", "exec", q.Prefix+"-br", "nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft in the bridge: %v: %s", err, out)
		}
	}
	table := "lab_arp_cut_" + n1.Name
	nftBridge("add table bridge " + table + "\n" +
		"add chain bridge " + table + " cut { type filter hook forward priority 0; policy accept; }\n" +
		"add rule bridge " + table + " cut iifname \"" + n1.Name + "\" ether type arp drop\n")
	healed := false
	t.Cleanup(func() {
		if !healed {
			nftBridge("delete table bridge " + table + "\n")
		}
	})
	cut := time.Now()
	if _, err := q.daemons["n2"].WaitMsg(q.ctx, 10*time.Second, "state changed", func(l lab.Line) bool {
		return l.Str("to") == "candidate" && l.Time().After(cut)
	}); err != nil {
		t.Fatalf("n2 did not notice n1 vanish on ARP: %v", err)
	}
	for end := time.Now().Add(3 * q.ttl); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if h, err := q.Holders(); err == nil && (len(h) != 1 || h[0] != "n1") {
			t.Fatalf("holders %v with n1's ARP cut and its etcd fine, want [n1] (it owns the key)", h)
		}
	}
	nftBridge("delete table bridge " + table + "\n")
	healed = true
	if _, err := q.daemons["n2"].WaitMsg(q.ctx, 10*time.Second, "state changed", func(l lab.Line) bool {
		return l.Str("to") == "standby" && l.Time().After(cut)
	}); err != nil {
		t.Errorf("n2 did not follow n1 again after the heal: %v", err)
	}
	q.noOverlap(stop, worst)
}

// unitStopTimeout is TimeoutStopSec of the systemd unit floatip ships.
func unitStopTimeout(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile("../../packaging/floatip.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "TimeoutStopSec="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("TimeoutStopSec=%s: %v", v, err)
			}
			return time.Duration(n) * time.Second
		}
	}
	t.Fatal("packaging/floatip.service: no TimeoutStopSec")
	return 0
}

// A graceful stop (SIGTERM) of the holder while it is cut off from etcd:
// the VIP goes first, the process exits within the unit's stop timeout
// (its resign and revoke cannot reach etcd and must not wait for it), and
// the standby holds only once the old lease expired.
func TestQuorumGracefulStopCutOffFromEtcd(t *testing.T) {
	budget := unitStopTimeout(t)
	q := newQuorumLab(t, 5*time.Second)
	q.startTwo()
	stop := make(chan struct{})
	worst := q.watchHolders(stop)
	n1, p := q.Node(1), q.daemons["n1"]
	if err := n1.BlockEtcdClient(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n1.UnblockEtcdClient() })
	term := time.Now()
	if err := p.SignalMain(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(3 * budget):
		t.Fatalf("n1 still runs %v after SIGTERM", 3*budget)
	}
	exited := p.ExitedAt()
	removed, err := p.WaitMsg(q.ctx, time.Second, "vip removed", func(l lab.Line) bool { return l.Time().After(term) })
	if err != nil {
		t.Fatalf("n1 exited without removing the VIP: %v", err)
	}
	if has, _ := n1.HasVIP(); has {
		t.Errorf("n1's kernel still has the VIP after its stop")
	}
	t.Logf("SIGTERM: VIP removed after %v, exited after %v (the unit allows %v)",
		removed.Time().Sub(term).Round(time.Millisecond), exited.Sub(term).Round(time.Millisecond), budget)
	if exited.Sub(term) >= budget {
		t.Errorf("n1 took %v to stop cut off from etcd: the unit's TimeoutStopSec=%v kills it first", exited.Sub(term).Round(time.Millisecond), budget)
	}
	q.waitHolders(lab.HeldBy("n2"), q.ttl+10*time.Second, "n2 to take over once n1's lease expired")
	t.Logf("n2 holds %v after the SIGTERM", time.Since(term).Round(time.Millisecond))
	q.noOverlap(stop, worst)
}

// A reload that removes quorum: from the holder (a rolling change, the
// first node done): the nodes then disagree on the referee, and the ARP
// protocol must still end with one holder, not both for good.
func TestQuorumReloadRemovingQuorumOnHolder(t *testing.T) {
	q := newQuorumLab(t, 5*time.Second)
	own := filepath.Join(t.TempDir(), "n1.yaml")
	body, err := os.ReadFile(q.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(own, body, 0o644); err != nil {
		t.Fatal(err)
	}
	q.start(q.Node(1), "--config", own)
	q.waitHolders(lab.HeldBy("n1"), 20*time.Second, "n1 to hold the VIP with the quorum key")
	q.start(q.Node(2), "--config", q.cfg)
	q.waitState("n2", "standby", 10*time.Second)
	if err := os.WriteFile(own, []byte("# no quorum\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := q.RecordHolders(q.ctx)
	reload := time.Now()
	if err := q.daemons["n1"].SignalMain(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if _, err := q.daemons["n1"].WaitMsg(q.ctx, 10*time.Second, "reloaded", func(l lab.Line) bool { return l.Time().After(reload) }); err != nil {
		t.Fatalf("n1 did not reload: %v", err)
	}
	// A while for the dust to settle, then one holder, and it stays so.
	for end := time.Now().Add(2 * q.ttl); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
	}
	h, _ := q.Holders()
	rec.Stop()
	for _, c := range rec.Changes() {
		t.Logf("+%v: %s", c.At.Sub(reload).Round(time.Millisecond), c)
	}
	if len(h) != 1 {
		t.Fatalf("holders %v %v after removing quorum: from the holder, want one", h, 2*q.ttl)
	}
	q.holdsFor(h, q.ttl, "after removing quorum: from the holder")
}
