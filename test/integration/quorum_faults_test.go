package integration

// The quorum's fault trials on a lab with a real three-member etcd (one
// member on each node): the holder cut off from etcd only, frozen for twice
// the TTL, the cluster without quorum, and a takeover confirmed by
// fencing. Every assertion is on behaviour read from the kernel (who has
// the VIP, sampled every 10 ms) or from etcd, never on how fast.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/floatip/floatip/internal/lab"
)

// qfTTL is the lease TTL of these tests, the shortest floatip takes.
const qfTTL = 3 * time.Second

// qfLab is a cluster of three nodes with the quorum on the lab's etcd and
// the holders recorded from the start.
type qfLab struct {
	*cluster
	etcd *lab.EtcdCluster
	rec  *lab.HolderRecorder
}

// observer is an etcd client in the lab client's namespace (a neutral
// observer) on the members that are not on node: a client with a stream
// to a member that is powered off waits on it until its own timeouts.
func (q *qfLab) observer(node string) *clientv3.Client {
	q.t.Helper()
	var eps []string
	for _, m := range q.etcd.Members() {
		if m.Name != node {
			eps = append(eps, m.ClientURL())
		}
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   eps,
		DialTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(q.ClientNode().Dialer())},
		Logger:      zap.NewNop(),
	})
	if err != nil {
		q.t.Fatalf("etcd client: %v", err)
	}
	q.t.Cleanup(func() { cli.Close() })
	return cli
}

// qfPrefix is the quorum's key prefix in these tests.
const qfPrefix = "/floatip/qf"

func newQuorumFaultLab(t *testing.T, extra func(*cluster, *lab.Node) string) *qfLab {
	t.Helper()
	c := newLab(t, 3)
	ec, err := c.StartEtcd(c.ctx, lab.EtcdOptions{})
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	q := &qfLab{cluster: c, etcd: ec}
	quorum := fmt.Sprintf("quorum:\n  etcd:\n    endpoints: [%s]\n    ttl: %s\n    prefix: %s\n", strings.Join(ec.Endpoints(), ", "), qfTTL, qfPrefix)
	c.startAllWithConfig(func(n *lab.Node) string {
		s := quorum
		if extra != nil {
			s += extra(c, n)
		}
		return nodeConfig(n, s)
	})
	q.rec = c.RecordHolders(c.ctx)
	t.Cleanup(func() { q.rec.Stop() })
	return q
}

// noTwoHolders fails the test if the kernel readings ever showed two nodes
// with the VIP since the recording began.
func (q *qfLab) noTwoHolders() {
	q.t.Helper()
	for _, o := range q.rec.Observations() {
		if len(o.Holders) > 1 {
			q.t.Errorf("two holders at %s: %v (holder changes: %v)", o.At.Format("15:04:05.000"), o.Holders, q.rec.Changes())
			return
		}
	}
}

// holder waits until exactly one node has the VIP and returns it.
func (q *qfLab) holder() *lab.Node {
	q.t.Helper()
	h := q.waitHolders(lab.ExactlyOne, 30*time.Second, "exactly one holder")
	return q.NodeByName(h[0])
}

func without(name string) func([]string) bool {
	return func(h []string) bool { return len(h) > 0 && !slices.Contains(h, name) }
}

func notHeldBy(name string) func([]string) bool {
	return func(h []string) bool { return !slices.Contains(h, name) }
}

func TestQuorumFaults(t *testing.T) {
	q := newQuorumFaultLab(t, nil)

	// Cut off from etcd only: it still hears the others and they it, so
	// ARP alone would keep it holding. It must drop the VIP (its lease is
	// not renewed), and another node holds once etcd gives it the key.
	t.Run("etcd-cut", func(t *testing.T) {
		h := q.holder()
		if err := h.Inject(lab.Fault{Kind: lab.FaultEtcdCut}); err != nil {
			t.Fatal(err)
		}
		q.waitHolders(notHeldBy(h.Name), 4*qfTTL, h.Name+" cut off from etcd to drop the VIP")
		q.waitHolders(without(h.Name), 6*qfTTL, "another node to hold once the cut-off holder's lease is gone")
		if err := h.Heal(q.ctx, lab.FaultEtcdCut); err != nil {
			t.Fatal(err)
		}
		q.holder()
		q.noTwoHolders()
	})

	// Frozen (SIGSTOP) for twice the TTL: the daemon cannot act, so the
	// kernel's lifetime must remove the VIP while it is still frozen; on
	// waking, with its lease long gone, it must not take it back.
	t.Run("freeze-2xTTL", func(t *testing.T) {
		h := q.holder()
		frozen := time.Now()
		d := q.daemons[h.Name]
		if err := d.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		gone, err := q.WaitHolders(q.ctx, notHeldBy(h.Name), 2*qfTTL-time.Since(frozen))
		if err != nil {
			t.Errorf("the kernel kept the VIP of %s frozen for 2 x TTL (%v): %v", h.Name, 2*qfTTL, gone)
		}
		if err := lab.Sleep(q.ctx, 2*qfTTL-time.Since(frozen)); err != nil {
			t.Fatal(err)
		}
		if err := d.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		now := q.holder()
		// Give the thawed daemon the time to do something wrong: until
		// one TTL after it woke, the holder must stay the one node.
		q.holdsFor([]string{now.Name}, qfTTL, "the holder after "+h.Name+" woke")
		q.noTwoHolders()
	})

	// Two of the three etcd members killed: nobody can renew or be given
	// the key. The holder drops the VIP and no standby claims, however
	// long it lasts (here 2 x TTL); once the members are back, one node
	// holds.
	t.Run("quorum-lost", func(t *testing.T) {
		h := q.holder()
		lost := time.Now()
		if err := h.Inject(lab.Fault{Kind: lab.FaultQuorumLost}); err != nil {
			t.Fatal(err)
		}
		q.waitHolders(func(h []string) bool { return len(h) == 0 }, 4*qfTTL, "the holder to drop the VIP without quorum")
		dropped := time.Now()
		if err := lab.Sleep(q.ctx, max(2*qfTTL-time.Since(lost), qfTTL)); err != nil {
			t.Fatal(err)
		}
		for _, o := range q.rec.Observations() {
			if o.At.After(dropped) && len(o.Holders) > 0 {
				t.Errorf("%v held the VIP at %s while etcd had no quorum", o.Holders, o.At.Format("15:04:05.000"))
			}
		}
		if err := h.Heal(q.ctx, lab.FaultQuorumLost); err != nil {
			t.Fatal(err)
		}
		if err := q.etcd.WaitHealthy(q.ctx, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		q.holder()
		q.noTwoHolders()
	})
}

// TestQuorumFencedTakeover powers the holder off with fencing required and
// a fence command that powers the old holder off and succeeds: the standby
// must be given the key by deleting the old holder's key (guarded by its
// revision), not by waiting for the old lease to expire. etcd shows which:
// fencing deletes the key and leaves the lease; expiry deletes both.
func TestQuorumFencedTakeover(t *testing.T) {
	macs := map[string]string{}
	sock := ""
	q := newQuorumFaultLab(t, func(c *cluster, n *lab.Node) string {
		if len(macs) == 0 {
			var err error
			if sock, err = c.StartPowerSwitch(); err != nil {
				t.Fatal(err)
			}
			for _, m := range c.Nodes() {
				mac, err := m.MAC()
				if err != nil {
					t.Fatal(err)
				}
				macs[m.Name] = mac
			}
		}
		var b strings.Builder
		b.WriteString("peers:\n")
		for _, name := range []string{"n1", "n2", "n3"} {
			fmt.Fprintf(&b, "  %s: %q\n", name, macs[name])
		}
		fmt.Fprintf(&b, "fencing:\n  policy: required\n  command: [%s, lab, fence, --socket, %s]\n  timeout: 5s\n", binary, sock)
		return b.String()
	})
	ctx, cancel := context.WithTimeout(q.ctx, time.Minute)
	defer cancel()

	h := q.holder()
	// etcd's leader elsewhere than on the holder, so that powering the
	// holder off does not also make etcd elect a new leader.
	for _, m := range q.etcd.Members() {
		if m.Name != h.Name {
			if err := q.etcd.MoveLeader(ctx, m); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	cli := q.observer(h.Name)
	resp, err := cli.Get(ctx, qfPrefix+"/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var key string
	var lease clientv3.LeaseID
	for _, kv := range resp.Kvs {
		if string(kv.Value) == h.Name {
			key, lease = string(kv.Key), clientv3.LeaseID(kv.Lease)
		}
	}
	if key == "" || lease == 0 {
		t.Fatalf("no key of %s under %s: %v", h.Name, qfPrefix, resp.Kvs)
	}
	// Watch the old holder's key from now on; when it goes, ask at once
	// whether its lease is still there.
	leaseLeft := make(chan int64, 1)
	wch := cli.Watch(ctx, key, clientv3.WithRev(resp.Header.Revision+1))
	go func() {
		for wr := range wch {
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					ttl, err := cli.TimeToLive(ctx, lease)
					if err != nil {
						leaseLeft <- -2
					} else {
						leaseLeft <- ttl.TTL
					}
					return
				}
			}
		}
	}()

	if err := h.Inject(lab.Fault{Kind: lab.FaultPowerOff}); err != nil {
		t.Fatal(err)
	}
	next := q.waitHolders(without(h.Name), 6*qfTTL, "a standby to take over from the powered-off holder")
	select {
	case ttl := <-leaseLeft:
		if ttl <= 0 {
			t.Errorf("the old holder's key went with its lease (TTL left %d): the takeover waited for the expiry, not for the fence", ttl)
		}
	case <-ctx.Done():
		t.Fatal("the old holder's key was never deleted")
	}
	fenced := false
	for _, l := range q.daemons[next[0]].Lines() {
		if l.Msg() == "fence command finished" && l.Str("node") == h.Name && l.Fields["ok"] == true {
			fenced = true
		}
	}
	if !fenced {
		t.Errorf("%s took over without a successful fence command on %s", next[0], h.Name)
	}
	q.holdsFor(next, time.Second, "the new holder")
	q.noTwoHolders()
}
