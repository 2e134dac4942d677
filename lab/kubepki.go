package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubePKI is the control plane's certificate authority and the files made
// from it at lab start: the API server's serving certificate, the service
// account signing key pair and one client certificate and kubeconfig per
// component. Everything lives in the lab's Kubernetes state directory and
// is valid for two days.
type kubePKI struct {
	dir    string
	server string // https://IP:port of the API server
	caPEM  []byte
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	// clients holds each component's certificate and key in PEM.
	clients map[string][2][]byte
}

// Kubernetes identities of the lab's clients: the user name (CN) and groups
// (O) the API server's RBAC sees.
var kubeIdentities = map[string][2]string{
	"admin":                   {"layerscope-lab-admin", "system:masters"},
	"kube-controller-manager": {"system:kube-controller-manager", ""},
	"kube-scheduler":          {"system:kube-scheduler", ""},
	"kube-proxy":              {"system:kube-proxy", ""},
}

// newKubePKI makes the certificates; components reach the API server at
// apiIP. The admin's kubeconfig is written by writeAdminKubeconfig.
func newKubePKI(dir string, apiIP net.IP) (*kubePKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kubernetes pki: %w", err)
	}
	p := &kubePKI{dir: dir, server: fmt.Sprintf("https://%s", net.JoinHostPort(apiIP.String(), fmt.Sprint(APIServerPort))), clients: map[string][2][]byte{}}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("kubernetes pki: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "layerscope-lab-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(48 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("kubernetes pki: %w", err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = caKey
	p.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := p.write("ca.crt", p.caPEM); err != nil {
		return nil, err
	}
	// The API server's certificate names every address a client may use:
	// its lab address, the kubernetes Service's ClusterIP and loopback.
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{apiIP, KubernetesServiceIP.AsSlice(), net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	crt, key, err := p.issue(serving, 2)
	if err != nil {
		return nil, err
	}
	if err := p.write("apiserver.crt", crt); err != nil {
		return nil, err
	}
	if err := p.write("apiserver.key", key); err != nil {
		return nil, err
	}
	// Service account tokens are signed with an ECDSA key (ES256).
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("kubernetes pki: %w", err)
	}
	saDER, err := x509.MarshalECPrivateKey(saKey)
	if err != nil {
		return nil, fmt.Errorf("kubernetes pki: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("kubernetes pki: %w", err)
	}
	if err := p.write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: saDER})); err != nil {
		return nil, err
	}
	if err := p.write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})); err != nil {
		return nil, err
	}
	// The API server's client certificate at the kubelets.
	crt, key, err = p.issue(&x509.Certificate{Subject: pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, 3)
	if err != nil {
		return nil, err
	}
	if err := p.write("kubelet-client.crt", crt); err != nil {
		return nil, err
	}
	if err := p.write("kubelet-client.key", key); err != nil {
		return nil, err
	}
	serial := int64(4)
	for name, id := range kubeIdentities {
		if name == "admin" {
			// Its kubeconfig names the relay (writeAdminKubeconfig).
			crt, key, err := p.issue(&x509.Certificate{Subject: pkix.Name{CommonName: id[0], Organization: []string{id[1]}},
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, serial)
			if err != nil {
				return nil, err
			}
			serial++
			p.clients[name] = [2][]byte{crt, key}
			continue
		}
		subj := pkix.Name{CommonName: id[0]}
		if id[1] != "" {
			subj.Organization = []string{id[1]}
		}
		crt, key, err := p.issue(&x509.Certificate{Subject: subj, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, serial)
		if err != nil {
			return nil, err
		}
		serial++
		p.clients[name] = [2][]byte{crt, key}
		if err := p.writeKubeconfig(name); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// addClient issues a client certificate for the user cn in group org and
// writes its kubeconfig, named name; it returns the kubeconfig's path.
func (p *kubePKI) addClient(name, cn, org string) (string, error) {
	crt, key, err := p.issue(&x509.Certificate{Subject: pkix.Name{CommonName: cn, Organization: []string{org}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, time.Now().UnixNano())
	if err != nil {
		return "", err
	}
	p.clients[name] = [2][]byte{crt, key}
	return p.kubeconfigPath(name), p.writeKubeconfig(name)
}

// issue signs tmpl with the CA for a fresh P-256 key and returns the
// certificate and key in PEM.
func (p *kubePKI) issue(tmpl *x509.Certificate, serial int64) (crt, key []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes pki: %w", err)
	}
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore = p.ca.NotBefore
	tmpl.NotAfter = p.ca.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes pki: certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes pki: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func (p *kubePKI) write(name string, data []byte) error {
	if err := os.WriteFile(filepath.Join(p.dir, name), data, 0o600); err != nil {
		return fmt.Errorf("kubernetes pki: %w", err)
	}
	return nil
}

// kubeconfigPath is the kubeconfig file of a component (a key of
// kubeIdentities).
func (p *kubePKI) kubeconfigPath(name string) string {
	return filepath.Join(p.dir, name+".kubeconfig")
}

func (p *kubePKI) writeKubeconfig(name string) error { return p.writeKubeconfigFor(name, p.server) }

// writeAdminKubeconfig writes the admin's kubeconfig for the API server at
// server (the relay on the host's loopback).
func (p *kubePKI) writeAdminKubeconfig(server string) error {
	return p.writeKubeconfigFor("admin", server)
}

func (p *kubePKI) writeKubeconfigFor(name, server string) error {
	c := clientcmdapi.NewConfig()
	c.Clusters["lab"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: p.caPEM}
	c.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: p.clients[name][0], ClientKeyData: p.clients[name][1]}
	c.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: name}
	c.CurrentContext = "lab"
	if err := clientcmd.WriteToFile(*c, p.kubeconfigPath(name)); err != nil {
		return fmt.Errorf("kubernetes pki: kubeconfig of %s: %w", name, err)
	}
	return nil
}

// restConfig is the admin's client configuration.
func (p *kubePKI) restConfig() *rest.Config {
	return &rest.Config{
		Host: p.server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: p.caPEM, CertData: p.clients["admin"][0], KeyData: p.clients["admin"][1],
		},
		UserAgent: "layerscope-lab",
	}
}
