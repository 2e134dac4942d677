package lab

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Response headers of the backends' HTTP servers.
const (
	HeaderBackend   = "X-Backend"    // pod name
	HeaderBackendIP = "X-Backend-IP" // pod IP
)

// pki holds one self-signed ECDSA certificate per backend pod, made at lab
// start, and a pool trusting them all for the lab's TLS clients.
type pki struct {
	certs map[string]tls.Certificate // by pod name
	pems  map[string][]byte          // certificate PEM by pod name
	pool  *x509.CertPool
}

func newPKI(pods []Pod) (*pki, error) {
	k := &pki{certs: map[string]tls.Certificate{}, pems: map[string][]byte{}, pool: x509.NewCertPool()}
	for _, p := range pods {
		if !p.Backend {
			continue
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("certificate key: %w", err)
		}
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial,
			Subject:               pkix.Name{CommonName: p.Name, Organization: []string{"layerscope lab"}},
			DNSNames:              []string{p.Name, "my-service.default.svc.cluster.local"},
			IPAddresses:           []net.IP{p.IP.AsSlice(), ServiceVIP.AsSlice()},
			NotBefore:             time.Now().Add(-time.Minute),
			NotAfter:              time.Now().Add(7 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return nil, fmt.Errorf("certificate of %s: %w", p.Name, err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		k.certs[p.Name] = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
		k.pems[p.Name] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		k.pool.AddCert(leaf)
	}
	return k, nil
}

// save writes the certificates (not the keys) so that an attached process
// can verify the servers.
func (k *pki) save(dir string) error {
	var all []byte
	for _, p := range k.pems {
		all = append(all, p...)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), all, 0o644); err != nil {
		return fmt.Errorf("save lab certificates: %w", err)
	}
	return nil
}

func loadPKI(dir string) (*pki, error) {
	b, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	k := &pki{pool: x509.NewCertPool()}
	if !k.pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no certificates in ca.pem")
	}
	return k, nil
}

// CertPool returns a pool trusting the backends' TLS certificates, or nil.
func (l *Lab) CertPool() *x509.CertPool {
	if l.pki == nil {
		return nil
	}
	return l.pki.pool
}

// servers runs the HTTP, TLS and DNS servers of the pods as goroutines of
// the lab process. Each listening socket is opened inside its pod's
// namespace and keeps it.
type servers struct {
	lab  *Lab
	mu   sync.Mutex
	http map[string]*podServer // by pod name
	dns  []*dns.Server
	wg   sync.WaitGroup
}

// podServer is the HTTP and TLS server pair of one backend.
type podServer struct {
	pod        Pod
	plain, tls *http.Server
}

func (s *servers) start() error {
	for _, p := range s.lab.pods {
		if p.Backend {
			if err := s.startPod(p.Name); err != nil {
				return err
			}
		}
	}
	return s.startDNS()
}

func (s *servers) listen(member, network, addr string) (net.Listener, net.PacketConn, error) {
	ns := s.lab.ns[member]
	var ln net.Listener
	var pc net.PacketConn
	err := ns.Do(func() error {
		var err error
		if network == "udp" {
			pc, err = net.ListenPacket("udp4", addr)
		} else {
			ln, err = net.Listen("tcp4", addr)
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s %s in %s: %w", network, addr, ns.Name(), err)
	}
	return ln, pc, nil
}

// startPod starts the HTTP (:8080) and TLS (:8443) servers of a backend.
func (s *servers) startPod(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.http[name]; ok {
		return nil
	}
	p, _ := s.lab.Pod(name)
	errLog := log.New(io.Discard, "", 0)
	h := backendHandler(p)
	plainLn, _, err := s.listen(p.Name, "tcp", netAddr(p.IP.String(), ServicePort))
	if err != nil {
		return err
	}
	tlsLn, _, err := s.listen(p.Name, "tcp", netAddr(p.IP.String(), TLSPort))
	if err != nil {
		plainLn.Close()
		return err
	}
	cert := s.lab.pki.certs[p.Name]
	ps := &podServer{
		pod:   p,
		plain: &http.Server{Handler: h, ErrorLog: errLog, ReadHeaderTimeout: 5 * time.Second},
		tls: &http.Server{Handler: h, ErrorLog: errLog, ReadHeaderTimeout: 5 * time.Second,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}},
	}
	s.http[name] = ps
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = ps.plain.Serve(plainLn) }()
	go func() { defer s.wg.Done(); _ = ps.tls.ServeTLS(tlsLn, "", "") }()
	return nil
}

// stopPod closes a backend's servers: new connections are refused.
func (s *servers) stopPod(name string) error {
	s.mu.Lock()
	ps, ok := s.http[name]
	delete(s.http, name)
	s.mu.Unlock()
	if !ok {
		return nil
	}
	return errors.Join(ps.plain.Close(), ps.tls.Close())
}

func (s *servers) running(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.http[name]
	return ok
}

func (s *servers) startDNS() error {
	addr := netAddr(DNSServerIP.String(), DNSPort)
	_, pc, err := s.listen(PodDNS, "udp", addr)
	if err != nil {
		return err
	}
	ln, _, err := s.listen(PodDNS, "tcp", addr)
	if err != nil {
		pc.Close()
		return err
	}
	h := dns.HandlerFunc(dnsHandler)
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.dns = append(s.dns, srv)
		s.wg.Add(1)
		go func() { defer s.wg.Done(); _ = srv.ActivateAndServe() }()
		<-started
	}
	return nil
}

func (s *servers) close() error {
	var errs []error
	s.mu.Lock()
	names := make([]string, 0, len(s.http))
	for n := range s.http {
		names = append(names, n)
	}
	s.mu.Unlock()
	for _, n := range names {
		errs = append(errs, s.stopPod(n))
	}
	for _, d := range s.dns {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		errs = append(errs, d.ShutdownContext(ctx))
		cancel()
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// backendHandler answers every request with the pod's name and IP (headers
// and body). /status/NNN answers with status NNN; /missing with 404.
func backendHandler(p Pod) http.Handler {
	body := fmt.Sprintf("%s %s\n", p.Name, p.IP)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderBackend, p.Name)
		w.Header().Set(HeaderBackendIP, p.IP.String())
		w.Header().Set("Content-Type", "text/plain")
		code := http.StatusOK
		switch {
		case strings.HasPrefix(r.URL.Path, "/status/"):
			if c, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/")); err == nil && c >= 200 && c < 600 {
				code = c
			}
		case r.URL.Path == "/missing":
			code = http.StatusNotFound
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
	})
}

// dnsHandler is the cluster DNS of the lab: the Service name resolves to the
// ClusterIP, names under BrokenZone fail with SERVFAIL, anything else is
// NXDOMAIN.
func dnsHandler(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) == 1 {
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		switch {
		case name == ServiceName:
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30},
					A:   ServiceVIP.AsSlice(),
				})
			}
		case dns.IsSubDomain(BrokenZone, name):
			m.Rcode = dns.RcodeServerFailure
			m.Authoritative = false
		default:
			m.Rcode = dns.RcodeNameError
		}
	} else {
		m.Rcode = dns.RcodeFormatError
	}
	_ = w.WriteMsg(m)
}

func netAddr(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
