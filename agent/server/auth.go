package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/sys/unix"
)

// Identity is a client as the server verified it.
type Identity struct {
	// Kind is how the client was verified: "socket" (SO_PEERCRED),
	// "basic" (a user the web configuration lists) or "cert" (a verified
	// client certificate). Empty means anonymous.
	Kind string
	// Name is the user name, the certificate's subject, or "uid=U gid=G".
	Name string
}

func (id Identity) String() string {
	if id.Kind == "" {
		return "anonymous"
	}
	return id.Kind + ":" + id.Name
}

// Identify returns the verified identity of r's client: the unix-socket
// peer, the subject of a verified client certificate, or the basic-auth
// user when the web configuration lists users (exporter-toolkit has then
// checked the password before any handler runs). It re-reads the web
// configuration, so a configuration that stopped listing users no longer
// identifies anyone.
func (s *Server) Identify(r *http.Request) Identity {
	if id, ok := r.Context().Value(ctxKey{}).(Identity); ok {
		return id
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return Identity{Kind: "cert", Name: r.TLS.VerifiedChains[0][0].Subject.String()}
	}
	if u, _, ok := r.BasicAuth(); ok && s.cfg.WebConfigFile != "" {
		if a, err := loadWebAuth(s.cfg.WebConfigFile); err == nil && a.users[u] {
			return Identity{Kind: "basic", Name: u}
		}
	}
	return Identity{}
}

// webAuth is what the web configuration says about authentication.
type webAuth struct {
	users      map[string]bool
	clientCert bool // client certificates are verified
}

func (a *webAuth) identifies() bool { return len(a.users) > 0 || a.clientCert }

// loadWebAuth reads the authentication settings of an exporter-toolkit
// web configuration; exporter-toolkit itself validates and applies it.
func loadWebAuth(path string) (*webAuth, error) {
	a := &webAuth{users: map[string]bool{}}
	if path == "" {
		return a, nil
	}
	if err := web.Validate(path); err != nil {
		return nil, fmt.Errorf("--web-config-file %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--web-config-file: %w", err)
	}
	var c web.Config
	if err := yaml.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("--web-config-file %s: %w", path, err)
	}
	for u := range c.Users {
		a.users[u] = true
	}
	switch c.TLSConfig.ClientAuth {
	case "RequireAndVerifyClientCert", "VerifyClientCertIfGiven":
		a.clientCert = c.TLSConfig.ClientCAs != "" || c.TLSConfig.ClientCAsText != ""
	}
	return a, nil
}

// listenUnix creates the socket at path with mode 0660, owned by root and
// group, and returns the check of its peers: root, or a process whose
// primary group is group.
func listenUnix(path, group string) (net.Listener, peerCheck, error) {
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: --api-socket-group %q: %w", ErrConfig, group, err)
		}
		gid = g
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, nil, fmt.Errorf("%w: --api-socket %s: exists and is not a socket", ErrConfig, path)
		}
		if err := os.Remove(path); err != nil {
			return nil, nil, fmt.Errorf("--api-socket %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, nil, fmt.Errorf("--api-socket %s: %w", path, err)
	}
	// The socket is created 0600 and opened to the group only once its
	// owner is set: no window where others could connect.
	old := unix.Umask(0o177)
	l, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, nil, fmt.Errorf("--api-socket %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, 0, gid); err != nil {
			_ = l.Close()
			return nil, nil, fmt.Errorf("--api-socket %s: %w", path, err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			_ = l.Close()
			return nil, nil, fmt.Errorf("--api-socket %s: %w", path, err)
		}
	}
	check := func(nc net.Conn) (Identity, error) {
		uc, ok := nc.(*net.UnixConn)
		if !ok {
			return Identity{}, errors.New("not a unix connection")
		}
		cred, err := peerCred(uc)
		if err != nil {
			return Identity{}, err
		}
		id := Identity{Kind: "socket", Name: "uid=" + strconv.Itoa(int(cred.Uid)) + " gid=" + strconv.Itoa(int(cred.Gid))}
		if cred.Uid == 0 || (gid >= 0 && int(cred.Gid) == gid) {
			return id, nil
		}
		return Identity{}, fmt.Errorf("%w: pid %d %s", ErrPeer, cred.Pid, id.Name)
	}
	return l, check, nil
}

// ErrPeer is the error of a unix-socket peer that may not use the socket.
var ErrPeer = errors.New("peer is neither root nor of the socket's group")

func peerCred(uc *net.UnixConn) (*unix.Ucred, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_PEERCRED: %w", serr)
	}
	return cred, nil
}

func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(strings.TrimSpace(name))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}
