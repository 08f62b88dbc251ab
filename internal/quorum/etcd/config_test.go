package etcd

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/floatip/floatip/internal/quorum"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "floatip-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func TestLoadTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeCert(t, dir)
	base := quorum.EtcdConfig{Endpoints: []string{"https://127.0.0.1:2379"}}.WithDefaults()

	c := base
	c.CertFile, c.KeyFile, c.CAFile = cert, key, cert
	tc, err := loadTLS(c)
	if err != nil {
		t.Fatalf("valid files: %v", err)
	}
	if len(tc.Certificates) != 1 || tc.RootCAs == nil {
		t.Errorf("tls.Config has %d certificates, roots %v", len(tc.Certificates), tc.RootCAs)
	}

	notPEM := filepath.Join(dir, "junk.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, tc := range []struct {
		name      string
		cert, key string
		ca        string
		want      string
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), key, "", "quorum.etcd.tls: client certificate"},
		{"key mismatch", cert, notPEM, "", "quorum.etcd.tls: client certificate"},
		{"missing ca", "", "", filepath.Join(dir, "nope.pem"), "quorum.etcd.tls: ca:"},
		{"ca not PEM", "", "", notPEM, "no PEM certificate in it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.CertFile, c.KeyFile, c.CAFile = tc.cert, tc.key, tc.ca
			if _, err := loadTLS(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadTLS: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(quorum.EtcdConfig{}, Options{Name: "n1"}); err == nil || !strings.Contains(err.Error(), "quorum.etcd.endpoints") {
		t.Errorf("no endpoints: %v", err)
	}
	if _, err := New(quorum.EtcdConfig{Endpoints: []string{"127.0.0.1:1"}}, Options{}); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("no name: %v", err)
	}
	// A backend that cannot reach anyone (loopback port 1) still starts,
	// refuses bad group names, reports itself connecting and closes.
	b, err := New(quorum.EtcdConfig{Endpoints: []string{"127.0.0.1:1"}}, Options{Name: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"", "a/b", "a b"} {
		if _, err := b.Elector(g); err == nil {
			t.Errorf("group name %q accepted", g)
		}
	}
	e, err := b.Elector("web")
	if err != nil {
		t.Fatal(err)
	}
	if e2, _ := b.Elector("web"); e2 != e {
		t.Error("a second Elector for the same group is a different one")
	}
	e.Campaign()
	if st := b.Status(); st.State != quorum.StateConnecting || st.Reachable || !st.Deadline.IsZero() {
		t.Errorf("status without etcd: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := b.Status(); st.State != quorum.StateClosed {
		t.Errorf("status after Close: %v", st.State)
	}
	if _, err := b.Elector("other"); err == nil {
		t.Error("Elector after Close succeeded")
	}
}

// A retried attempt stays short for as many attempts as there are other
// members (one of them may be a powered-off member's connection), then
// doubles up to attemptTimeout.
func TestTryTimeoutShortOncePerMember(t *testing.T) {
	b := &Backend{ttl: 5 * time.Second, cfg: quorum.EtcdConfig{Endpoints: []string{"a:2379", "b:2379", "c:2379"}}}
	full := b.attemptTimeout()
	want := []time.Duration{full / 4, full / 4, full / 4, full / 2, full, full}
	for i, w := range want {
		if got := b.tryTimeout(i); got != w {
			t.Errorf("after %d timeouts: %v, want %v", i, got, w)
		}
	}
}
