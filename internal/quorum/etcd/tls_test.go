package etcd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/floatip/floatip/internal/lab"
	"github.com/floatip/floatip/internal/quorum"
	"github.com/floatip/floatip/internal/testutil"
)

// pki is a test CA and the certificates it signed, as PEM files.
type pki struct {
	dir      string
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	serial   int64
	CAFile   string
	certPool *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "floatip test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey, p.serial = k, 1
	p.CAFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// issue signs a certificate for cn (and ips) usable for usages.
func (p *pki) issue(t *testing.T, cn string, ips []net.IP, usages ...x509.ExtKeyUsage) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn}, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usages,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, cn+".pem", "CERTIFICATE", der), p.write(t, cn+"-key.pem", "EC PRIVATE KEY", kder)
}

// A cluster with TLS client certificates and etcd's user/password auth:
// the backend connects with both and campaigns; a wrong password gets no
// lease and says why.
func TestTLSAndAuth(t *testing.T) {
	testutil.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{Prefix: fmt.Sprintf("qt%d", os.Getpid()%1000000), Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Down() })
	p := newPKI(t)
	var ips []net.IP
	for _, n := range l.Nodes() {
		ips = append(ips, n.IP.AsSlice())
	}
	srvCert, srvKey := p.issue(t, "etcd", ips, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	cliCert, cliKey := p.issue(t, "floatip", nil, x509.ExtKeyUsageClientAuth)
	c, err := l.StartEtcd(ctx, lab.EtcdOptions{TLS: &lab.EtcdTLS{
		CAFile: p.CAFile, CertFile: srvCert, KeyFile: srvKey, ClientCertFile: cliCert, ClientKeyFile: cliKey,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	// Turn on auth: a root user, and user floatip allowed only under its prefix.
	const prefix = "/floatip-tls"
	pair, err := tls.LoadX509KeyPair(cliCert, cliKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	admin, err := clientv3.New(clientv3.Config{
		Endpoints: c.Endpoints(), TLS: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool},
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(l.Node(3).Dialer())}, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	steps := []func() error{
		func() error { _, err := admin.RoleAdd(ctx, "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "floatip"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "floatip", prefix+"/", clientv3.GetPrefixRangeEnd(prefix+"/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "floatip", "secret"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "floatip", "floatip"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	}
	for i, s := range steps {
		if err := s(); err != nil {
			t.Fatalf("auth setup step %d: %v", i, err)
		}
	}

	cfg := quorum.EtcdConfig{
		Endpoints: c.Endpoints(), TTL: 3 * time.Second, Prefix: prefix,
		CertFile: cliCert, KeyFile: cliKey, CAFile: p.CAFile, Username: "floatip", Password: "secret",
	}
	a := newNodeCfg(t, l.Node(1), cfg)
	a.e.Campaign()
	a.wait(0, 10*time.Second, "Granted", isGranted)

	bad := cfg
	bad.Password = "wrong"
	log := testLogger(t, "n2")
	b, err := New(bad, Options{Name: "n2", Logger: log, Dialer: l.Node(2).Dialer()})
	if err != nil {
		t.Fatalf("New does not wait for the cluster, so a wrong password is not its error: %v", err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	deadline := time.Now().Add(10 * time.Second)
	for st := b.Status(); !strings.Contains(st.Err, "authentication failed") || st.State != quorum.StateConnecting; st = b.Status() {
		if time.Now().After(deadline) {
			t.Fatalf("wrong password: status %+v, want connecting with an authentication error", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("wrong password: %s", b.Status().Err)
}
