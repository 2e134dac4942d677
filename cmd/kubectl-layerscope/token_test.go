package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericclioptions"
)

// TestBearerToken reads the token a capture sends the agent through
// client-go's own handling of a kubeconfig: a token, a token file, the
// --token flag over both, an exec plugin's (run for real), and none for
// a user with basic auth or a client certificate.
func TestBearerToken(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kubeconfig := func(user string) string {
		path := filepath.Join(dir, "kubeconfig")
		conf := "apiVersion: v1\nkind: Config\ncurrent-context: c\n" +
			"clusters:\n- name: k\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\n" +
			"contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n" +
			"users:\n- name: u\n  user:\n" + user
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cert, key := clientCert(t)
	for _, tt := range []struct {
		name, user, flag, want string
	}{
		{"token", "    token: a-token\n", "", "a-token"},
		{"token file", "    tokenFile: " + tokenFile + "\n", "", "from-a-file"},
		{"--token", "    token: a-token\n", "from-the-flag", "from-the-flag"},
		{"exec plugin", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      interactiveMode: Never\n" +
			"      args: [\"-c\", \"echo '{\\\"apiVersion\\\":\\\"client.authentication.k8s.io/v1\\\",\\\"kind\\\":\\\"ExecCredential\\\",\\\"status\\\":{\\\"token\\\":\\\"from-a-plugin\\\"}}'\"]\n", "", "from-a-plugin"},
		{"basic auth", "    username: u\n    password: p\n", "", ""},
		{"client certificate", "    client-certificate-data: " + cert + "\n    client-key-data: " + key + "\n", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kf := genericclioptions.NewConfigFlags(true)
			path := kubeconfig(tt.user)
			kf.KubeConfig = &path
			if tt.flag != "" {
				kf.BearerToken = &tt.flag
			}
			c := &cluster{flags: kf}
			got, err := c.bearerToken()
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("token %q, want %q", got, tt.want)
			}
		})
	}
}

// clientCert is a self-signed client certificate and its key, PEM in
// base64 as a kubeconfig holds them.
func clientCert(t *testing.T) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "operator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString
	return enc(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), enc(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
}
