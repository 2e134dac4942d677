package promtest

import (
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
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// WebTLS is what a TLS + basic auth agent needs and what its scrapers use.
type WebTLS struct {
	Dir        string // holds every file below
	CAFile     string // PEM certificate of the CA that signed the server's
	CertFile   string // server certificate for 127.0.0.1
	KeyFile    string // its private key
	WebConfig  string // exporter-toolkit web configuration
	User, Pass string // the basic auth credentials (the config holds the bcrypt hash)
	Pool       *x509.CertPool
}

// NewWebTLS generates, in a temporary directory, a self-signed CA, a server
// certificate for 127.0.0.1 signed by it, a random password and the
// exporter-toolkit web configuration serving TLS with basic auth.
func NewWebTLS(t *testing.T) *WebTLS {
	t.Helper()
	dir := t.TempDir()
	w := &WebTLS{
		Dir:       dir,
		CAFile:    filepath.Join(dir, "ca.pem"),
		CertFile:  filepath.Join(dir, "server.pem"),
		KeyFile:   filepath.Join(dir, "server-key.pem"),
		WebConfig: filepath.Join(dir, "web.yml"),
		User:      "prometheus",
		Pass:      rand.Text(),
		Pool:      x509.NewCertPool(),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "layerscope test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	w.Pool.AddCert(ca)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "layerscope agent"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// The lowest cost: a bcrypt hash all the same, and each check of it
	// takes milliseconds rather than most of a second under -race (the
	// web server checks one password at a time).
	hash, err := bcrypt.GenerateFromPassword([]byte(w.Pass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		path string
		data []byte
	}{
		{w.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})},
		{w.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})},
		{w.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})},
		{w.WebConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\n  min_version: TLS12\nbasic_auth_users:\n  %s: %s\n",
			w.CertFile, w.KeyFile, w.User, hash)},
	} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// Client returns an HTTP client trusting the generated CA. Its timeout
// only keeps a hung server from hanging the test: under -race on a loaded
// host one scrape of an agent's /metrics can take several seconds.
func (w *WebTLS) Client() *http.Client {
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.Pool, MinVersion: tls.VersionTLS12}},
	}
}
