package leanauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	leanauth "github.com/leanauth/leanauth/clients/go"
)

// pemPair is a certificate and its key in PEM.
type pemPair struct {
	cert, key []byte
	x509      *x509.Certificate
	priv      *ecdsa.PrivateKey
}

// newCert makes a certificate for cn signed by parent (self-signed CA when
// parent is nil).
func newCert(t *testing.T, cn string, parent *pemPair, client bool) *pemPair {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	signer, signerKey := tmpl, priv
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	} else {
		signer, signerKey = parent.x509, parent.priv
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		if client {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		} else {
			tmpl.DNSNames = []string{cn}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &priv.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(priv)
	return &pemPair{
		cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		x509: parsed, priv: priv,
	}
}

func TestTLS(t *testing.T) {
	e := newEnv(t)
	ca := newCert(t, "leanauth test CA", nil, false)
	server := newCert(t, "localhost", ca, false)
	client := newCert(t, "trader", ca, true)
	write := func(name string, b []byte) string {
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	e.cfg["listen"].(map[string]any)["rpc"] = "tls+tcp://127.0.0.1:0"
	e.cfg["listen"].(map[string]any)["tls"] = map[string]any{
		"cert_file": write("server.crt", server.cert), "key_file": write("server.key", server.key),
		"ca_file": write("ca.crt", ca.cert), "require_client_cert": true,
	}
	e.start()
	if !strings.HasPrefix(e.rpcURL, "tls+tcp://") {
		t.Fatalf("rpc URL %s", e.rpcURL)
	}
	good := &leanauth.TLSConfig{RootCAs: ca.cert, Certificate: client.cert, Key: client.key, ServerName: "localhost"}
	c, err := leanauth.Dial(e.rpcURL, leanauth.WithTLS(good), leanauth.WithConnectTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tok, err := c.GetAccessToken(ctxTimeout(t, 10*time.Second), "")
	if err != nil || tok.Generation != 1 {
		t.Fatalf("over TLS: %v %v", tok, err)
	}

	// Files work the same.
	fromFiles, err := leanauth.TLSConfigFromFiles(write("ca2.crt", ca.cert),
		write("client.crt", client.cert), write("client.key", client.key))
	if err != nil {
		t.Fatal(err)
	}
	fromFiles.ServerName = "localhost"
	c2, err := leanauth.Dial(e.rpcURL, leanauth.WithTLS(fromFiles), leanauth.WithConnectTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("TLS from files: %v", err)
	}
	c2.Close()

	otherCA := newCert(t, "someone else", nil, false)
	refused := map[string]*leanauth.TLSConfig{
		"unknown CA":       {RootCAs: otherCA.cert, Certificate: client.cert, Key: client.key, ServerName: "localhost"},
		"wrong name":       {RootCAs: ca.cert, Certificate: client.cert, Key: client.key, ServerName: "elsewhere"},
		"no client cert":   {RootCAs: ca.cert, ServerName: "localhost"},
		"plain tcp to TLS": nil,
	}
	for name, cfg := range refused {
		opts := []leanauth.Option{leanauth.WithConnectTimeout(300 * time.Millisecond)}
		url := e.rpcURL
		if cfg != nil {
			opts = append(opts, leanauth.WithTLS(cfg))
		} else {
			url = "tcp://" + strings.TrimPrefix(url, "tls+tcp://")
		}
		if c, err := leanauth.Dial(url, opts...); !errors.Is(err, leanauth.ErrUnavailable) {
			if c != nil {
				c.Close()
			}
			t.Errorf("%s: Dial = %v, want Unavailable", name, err)
		}
	}
}
