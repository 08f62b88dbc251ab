package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Etcd ports on every node's lab address.
const (
	EtcdClientPort = 2379
	EtcdPeerPort   = 2380
)

// EtcdOptions configures StartEtcd.
type EtcdOptions struct {
	// Binary is the etcd server; default "etcd" from PATH (Debian's
	// etcd-server package installs /usr/bin/etcd).
	Binary string
	// Nodes run one member each; default the lab's first three nodes
	// (all of them when it has fewer).
	Nodes []*Node
	// Dir holds the members' data directories; default a new temporary
	// directory on a tmpfs (/dev/shm) when there is one, so that a busy
	// disk's fsync cannot stall the members' heartbeats. Removed by Close
	// only when StartEtcd made it.
	Dir string
	// Ready bounds the wait for the cluster to become healthy; default 20 s.
	Ready time.Duration
	// TLS, when set, serves the client port with TLS and requires client
	// certificates (the peer port stays plain: it is the lab's inside).
	TLS *EtcdTLS
	// V2 also serves etcd's v2 API (--enable-v2), which clients of the v2
	// store need (vip-manager 1.0, the benchmark's comparison, is one). The
	// v2 and v3 key spaces are separate.
	V2 bool
}

// EtcdTLS are the PEM files of a TLS cluster.
type EtcdTLS struct {
	// CAFile signs the members' and the clients' certificates.
	CAFile string
	// CertFile and KeyFile are the members' server certificate, valid for
	// every member's lab address.
	CertFile, KeyFile string
	// ClientCertFile and ClientKeyFile are what the lab's health check
	// presents.
	ClientCertFile, ClientKeyFile string
}

// EtcdCluster is an etcd cluster running in the lab, one member per node,
// listening on the node's address (198.18.0.1X:2379 for clients, :2380
// for peers).
type EtcdCluster struct {
	lab     *Lab
	binary  string
	dir     string
	ownDir  bool
	members []*EtcdMember
	ctx     context.Context // the members' processes end with it
	cancel  context.CancelFunc
	tls     *EtcdTLS
	tlsConf *tls.Config // for the health check
	v2      bool
}

// EtcdMember is one member of an EtcdCluster.
type EtcdMember struct {
	Node    *Node
	Name    string // the node's name
	DataDir string
	c       *EtcdCluster

	mu   sync.Mutex
	proc *Proc // nil while stopped
}

// StartEtcd starts a new etcd cluster in the lab and waits until every
// member reports healthy. On error it stops what it started.
func (l *Lab) StartEtcd(ctx context.Context, o EtcdOptions) (_ *EtcdCluster, err error) {
	if o.Binary == "" {
		o.Binary = "etcd"
	}
	bin, err := lookPath(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("lab: etcd server %q not found (install Debian's etcd-server): %w", o.Binary, err)
	}
	if len(o.Nodes) == 0 {
		o.Nodes = l.Nodes()
		if len(o.Nodes) > 3 {
			o.Nodes = o.Nodes[:3]
		}
	}
	if o.Ready == 0 {
		o.Ready = 20 * time.Second
	}
	c := &EtcdCluster{lab: l, binary: bin, dir: o.Dir, tls: o.TLS, v2: o.V2}
	if o.TLS != nil {
		pair, err := tls.LoadX509KeyPair(o.TLS.ClientCertFile, o.TLS.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("lab: etcd health check's client certificate: %w", err)
		}
		ca, err := os.ReadFile(o.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("lab: etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("lab: etcd CA %s: no PEM certificate", o.TLS.CAFile)
		}
		c.tlsConf = &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if c.dir == "" {
		base := ""
		if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
			base = "/dev/shm"
		}
		if c.dir, err = os.MkdirTemp(base, "floatip-lab-etcd-"+l.Prefix+"-"); err != nil {
			return nil, fmt.Errorf("lab: etcd data directory: %w", err)
		}
		c.ownDir = true
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
		}
	}()
	for _, n := range o.Nodes {
		c.members = append(c.members, &EtcdMember{Node: n, Name: n.Name, DataDir: filepath.Join(c.dir, n.Name), c: c})
	}
	for _, m := range c.members {
		if err := m.Start(); err != nil {
			return nil, err
		}
	}
	if err := c.WaitHealthy(ctx, o.Ready); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.etcd = c
	l.mu.Unlock()
	return c, nil
}

// Etcd is the cluster StartEtcd started in the lab (nil when none, or
// after its Close). The faults that involve etcd (quorum-lost, and power-off's
// heal) act on it.
func (l *Lab) Etcd() *EtcdCluster {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.etcd
}

func lookPath(bin string) (string, error) {
	if strings.Contains(bin, "/") {
		if _, err := os.Stat(bin); err != nil {
			return "", err
		}
		return bin, nil
	}
	return exec.LookPath(bin)
}

// Members returns the members in node order.
func (c *EtcdCluster) Members() []*EtcdMember { return append([]*EtcdMember(nil), c.members...) }

// Member returns the member on the node called name ("n2"), or nil.
func (c *EtcdCluster) Member(name string) *EtcdMember {
	for _, m := range c.members {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// Endpoints are the members' client URLs (http://198.18.0.11:2379, ...).
func (c *EtcdCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.ClientURL())
	}
	return eps
}

// ClientURL is the member's client URL.
func (m *EtcdMember) ClientURL() string {
	scheme := "http"
	if m.c.tls != nil {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(m.Node.IP.String(), fmt.Sprint(EtcdClientPort)))
}

// PeerURL is the member's peer URL.
func (m *EtcdMember) PeerURL() string {
	return fmt.Sprintf("http://%s", net.JoinHostPort(m.Node.IP.String(), fmt.Sprint(EtcdPeerPort)))
}

// Start starts the member (again), with its data directory as it was; it
// does not wait for it to be healthy (a lone member never is: see
// WaitHealthy). Starting a running member is an error.
func (m *EtcdMember) Start() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc != nil && !m.proc.Exited() {
		return fmt.Errorf("lab: etcd member %s is already running", m.Name)
	}
	var initial []string
	for _, o := range m.c.members {
		initial = append(initial, o.Name+"="+o.PeerURL())
	}
	args := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL(),
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.PeerURL(),
		"--initial-advertise-peer-urls", m.PeerURL(),
		"--initial-cluster", strings.Join(initial, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "floatip-lab-" + m.c.lab.Prefix,
		"--logger", "zap",
		"--log-level", "warn",
		fmt.Sprintf("--enable-v2=%v", m.c.v2),
	}
	if t := m.c.tls; t != nil {
		args = append(args, "--cert-file", t.CertFile, "--key-file", t.KeyFile,
			"--client-cert-auth", "--trusted-ca-file", t.CAFile)
	}
	p, err := m.Node.Start(m.c.ctx, m.c.binary, args...)
	if err != nil {
		return fmt.Errorf("lab: start etcd member %s: %w", m.Name, err)
	}
	m.proc = p
	return nil
}

// Proc is the member's current process (nil while stopped).
func (m *EtcdMember) Proc() *Proc {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

// Running reports whether the member's process is running.
func (m *EtcdMember) Running() bool {
	p := m.Proc()
	return p != nil && !p.Exited()
}

// Stop stops the member gracefully (SIGTERM, then SIGKILL after 5 s).
func (m *EtcdMember) Stop() error {
	return m.end(func(p *Proc) error { return p.Stop(5 * time.Second) })
}

// Kill kills the member (SIGKILL), like a crash.
func (m *EtcdMember) Kill() error { return m.end((*Proc).Kill) }

func (m *EtcdMember) end(f func(*Proc) error) error {
	m.mu.Lock()
	p := m.proc
	m.proc = nil
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	return f(p)
}

// Healthy asks the member's /health endpoint, from inside its node's
// namespace; nil means it has a leader and serves reads.
func (m *EtcdMember) Healthy(ctx context.Context) error {
	hc := &http.Client{Transport: &http.Transport{DialContext: m.Node.DialContext, DisableKeepAlives: true, TLSClientConfig: m.c.tlsConf}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.ClientURL()+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("etcd member %s: %w", m.Name, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if json.Unmarshal(body, &h) != nil || h.Health != "true" {
		return fmt.Errorf("etcd member %s: not healthy: %s", m.Name, strings.TrimSpace(string(body)))
	}
	return nil
}

// WaitHealthy waits until every running member is healthy, or timeout
// passes or ctx ends.
func (c *EtcdCluster) WaitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var errs []error
		for _, m := range c.members {
			if p := m.Proc(); p != nil {
				if p.Exited() {
					return fmt.Errorf("lab: etcd member %s exited: %v; last output: %s", m.Name, p.exitErr(), p.Tail(5))
				}
				actx, acancel := context.WithTimeout(ctx, time.Second)
				errs = append(errs, m.Healthy(actx))
				acancel()
			}
		}
		err := errors.Join(errs...)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab: etcd cluster not healthy after %v: %w", timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close kills every member and removes the data directories it made.
func (c *EtcdCluster) Close() error {
	c.lab.mu.Lock()
	if c.lab.etcd == c {
		c.lab.etcd = nil
	}
	c.lab.mu.Unlock()
	var errs []error
	for _, m := range c.members {
		errs = append(errs, m.Kill())
	}
	c.cancel()
	if c.ownDir {
		errs = append(errs, os.RemoveAll(c.dir))
	}
	return errors.Join(errs...)
}

// DialContext opens a connection from inside the node's network namespace
// (the socket is made there by a thread that entered it), so that code in
// the test process talks to the lab as a process on the node would. It
// fits net.Dialer.DialContext; network "" means "tcp", and an address
// with a scheme (http://h:p) is taken as h:p.
func (n *Node) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if network == "" {
		network = "tcp"
	}
	if _, rest, ok := strings.Cut(addr, "://"); ok {
		addr = rest
	}
	type result struct {
		c   net.Conn
		err error
	}
	rc := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			rc <- result{err: err}
			return
		}
		defer orig.Close()
		ns, err := netns.GetFromName(n.NS)
		if err != nil {
			runtime.UnlockOSThread()
			rc <- result{err: fmt.Errorf("lab: namespace %s: %w", n.NS, err)}
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			rc <- result{err: fmt.Errorf("lab: enter %s: %w", n.NS, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		} // else: stay locked; the thread ends with this goroutine
		rc <- result{c, err}
	}()
	r := <-rc
	return r.c, r.err
}

// Dialer is DialContext in the shape gRPC's WithContextDialer takes.
func (n *Node) Dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) { return n.DialContext(ctx, "tcp", addr) }
}

// BlockEtcdClient drops every packet the node sends to an etcd client
// port (its daemon cut off from etcd, while the members keep talking to
// each other on the peer port); UnblockEtcdClient undoes it. Only the
// node's own namespace is touched.
func (n *Node) BlockEtcdClient() error {
	return n.nftInNode(fmt.Sprintf("add table inet lab_etcd_block\n"+
		"add chain inet lab_etcd_block out { type filter hook output priority 0; policy accept; }\n"+
		"add rule inet lab_etcd_block out tcp dport %d drop\n", EtcdClientPort))
}

// UnblockEtcdClient removes BlockEtcdClient's rule.
func (n *Node) UnblockEtcdClient() error { return n.nftInNode("delete table inet lab_etcd_block\n") }

func (n *Node) nftInNode(script string) error {
	cmd := exec.Command("ip", "netns", "exec", n.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("lab: nft in %s: %v: %s", n.NS, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// client is an etcd client in the lab client's namespace (a neutral
// observer), on every member's endpoint.
func (c *EtcdCluster) client() (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 2 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(c.lab.client.Dialer())},
		Logger:      zap.NewNop(),
	}
	if c.tlsConf != nil {
		cfg.TLS = c.tlsConf
	}
	return clientv3.New(cfg)
}

// Leader returns the member that is etcd's leader now, as the running
// members report it.
func (c *EtcdCluster) Leader(ctx context.Context) (*EtcdMember, error) {
	cli, err := c.client()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ids, err := c.memberIDs(ctx, cli)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, m := range c.members {
		if !m.Running() {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := cli.Status(sctx, m.ClientURL())
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l := ids[st.Leader]; l != nil {
			return l, nil
		}
	}
	return nil, fmt.Errorf("lab: no etcd leader: %w", errors.Join(errs...))
}

// MoveLeader makes to etcd's leader (etcd's leadership transfer) and waits
// until the members report it.
func (c *EtcdCluster) MoveLeader(ctx context.Context, to *EtcdMember) error {
	cli, err := c.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ids, err := c.memberIDs(ctx, cli)
	if err != nil {
		return err
	}
	var target uint64
	for id, m := range ids {
		if m == to {
			target = id
		}
	}
	if target == 0 {
		return fmt.Errorf("lab: etcd member %s not in the member list", to.Name)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := c.Leader(ctx)
		if err == nil && l == to {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab: etcd leadership did not move to %s (leader %v, %v)", to.Name, l, err)
		}
		if err == nil {
			// Only the leader transfers its leadership.
			lcli, cerr := clientv3.New(clientv3.Config{Endpoints: []string{l.ClientURL()}, DialTimeout: 2 * time.Second,
				DialOptions: []grpc.DialOption{grpc.WithContextDialer(c.lab.client.Dialer())}, Logger: zap.NewNop(), TLS: c.tlsConf})
			if cerr == nil {
				mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				_, _ = lcli.MoveLeader(mctx, target)
				cancel()
				lcli.Close()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// memberIDs maps etcd's member IDs to the members, by name.
func (c *EtcdCluster) memberIDs(ctx context.Context, cli *clientv3.Client) (map[uint64]*EtcdMember, error) {
	mctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	resp, err := cli.MemberList(mctx)
	if err != nil {
		return nil, fmt.Errorf("lab: etcd member list: %w", err)
	}
	ids := map[uint64]*EtcdMember{}
	for _, mm := range resp.Members {
		if m := c.Member(mm.Name); m != nil {
			ids[mm.ID] = m
		}
	}
	return ids, nil
}
