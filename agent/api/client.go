package api

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ClientConfig says how to reach an agent. Only URL is required.
type ClientConfig struct {
	// URL is the agent's base URL, e.g. http://127.0.0.1:9431,
	// https://node-1:9431 or unix:///run/layerscope/api.sock (the agent's
	// --api-socket). A bare host:port means http://host:port. Credentials
	// in the URL (http://user:pass@host) are used for basic auth and never
	// shown: Client.URL redacts them.
	URL string
	// CAFile is a PEM file of the certificate authorities that sign the
	// agent's certificate; empty means the system's.
	CAFile string
	// CertFile and KeyFile are a client certificate and key (both or
	// neither), for agents that require one.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the agent's certificate.
	ServerName string
	// InsecureSkipVerify accepts any agent certificate.
	InsecureSkipVerify bool
	// Username and Password are HTTP basic auth credentials; PasswordFile,
	// when set, holds the password (one line; trailing newline ignored).
	Username, Password, PasswordFile string
	// Timeout bounds a request that is not a follow stream. Zero means
	// 30 s.
	Timeout time.Duration
	// HTTPClient, when not nil, is used instead of one built from the
	// fields above (tests).
	HTTPClient *http.Client
}

// Client talks to one agent's API. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	shown   string // the URL as the user gave it, password redacted
	hc      *http.Client
	user    string
	pass    string
	timeout time.Duration
}

// NewClient checks cfg and returns a client. Errors name the field's flag
// spelling (--agent, --ca-file, …).
func NewClient(cfg ClientConfig) (*Client, error) {
	raw := cfg.URL
	if raw == "" {
		return nil, fmt.Errorf("%w: --agent is required", ErrConfig)
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: --agent: want http(s)://host:port or unix:///path", ErrConfig)
	}
	socket := ""
	switch {
	case u.Scheme == "unix" && u.Path != "":
		socket = u.Path
	case (u.Scheme == "http" || u.Scheme == "https") && u.Host != "":
	default:
		return nil, fmt.Errorf("%w: --agent %q: want http(s)://host:port or unix:///path", ErrConfig, u.Redacted())
	}
	c := &Client{shown: u.Redacted(), hc: cfg.HTTPClient, user: cfg.Username, pass: cfg.Password, timeout: cfg.Timeout}
	if u.User != nil {
		if c.user == "" {
			c.user = u.User.Username()
			c.pass, _ = u.User.Password()
		}
		u.User = nil
	}
	if socket != "" {
		u = &url.URL{Scheme: "http", Host: "agent"}
	}
	c.base = u
	if c.timeout == 0 {
		c.timeout = 30 * time.Second
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --password-file: %w", ErrConfig, err)
		}
		c.pass = strings.TrimRight(string(b), "\r\n")
	}
	if (c.pass != "") && c.user == "" {
		return nil, fmt.Errorf("%w: --password or --password-file without --user", ErrConfig)
	}
	if c.hc != nil {
		return c, nil
	}
	tc := &tls.Config{ServerName: cfg.ServerName, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // an explicit flag
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --ca-file: %w", ErrConfig, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: --ca-file %s: no PEM certificate in it", ErrConfig, cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, fmt.Errorf("%w: --cert-file and --key-file go together", ErrConfig)
	}
	if cfg.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: --cert-file/--key-file: %w", ErrConfig, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	if socket != "" {
		var d net.Dialer
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", socket)
		}
	}
	c.hc = &http.Client{Transport: tr}
	return c, nil
}

// URL returns the agent's URL as given, its password redacted.
func (c *Client) URL() string { return c.shown }

func (c *Client) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, &StatusError{Code: resp.StatusCode, Path: path, Message: strings.TrimSpace(string(b))}
	}
	return resp, nil
}

// Stream GETs path with the query q for a long-lived response (a pcap, a
// stream of events): no whole-request timeout, only ctx ends it. A status
// other than 200 is a *StatusError; the caller closes the body.
func (c *Client) Stream(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	return c.get(ctx, path, q)
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: %w: %w", path, ErrBadResponse, err)
	}
	return nil
}

// Connections returns the events of the agent's history that match q,
// oldest first (q.Follow is ignored).
func (c *Client) Connections(ctx context.Context, q Query) ([]Connection, error) {
	q.Follow = false
	var out []Connection
	err := c.getJSON(ctx, PathConnections, q.Values(), &out)
	return out, err
}

// Follow streams the events that match q as the agent records them and
// calls fn for each, until ctx is done (then it returns nil), the stream
// ends, or fn returns an error (returned).
func (c *Client) Follow(ctx context.Context, q Query, fn func(*Connection) error) error {
	q.Follow = true
	resp, err := c.get(ctx, PathConnections, q.Values())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var conn Connection
		if err := json.Unmarshal(sc.Bytes(), &conn); err != nil {
			return fmt.Errorf("%s: %w: %w", PathConnections, ErrBadResponse, err)
		}
		if err := fn(&conn); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: stream: %w", PathConnections, err)
	}
	return fmt.Errorf("%s: %w", PathConnections, ErrStreamEnded)
}

// Status returns the node's status summary.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return c.StatusSince(ctx, 0)
}

// StatusSince returns the node's status with its recent counts over since
// (0: the agent's default, StatusSince).
func (c *Client) StatusSince(ctx context.Context, since time.Duration) (*Status, error) {
	var q url.Values
	if since > 0 {
		q = url.Values{"since": {since.String()}}
	}
	var s Status
	if err := c.getJSON(ctx, PathStatus, q, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// PMTU returns the node's PMTU reports.
func (c *Client) PMTU(ctx context.Context) (*PMTU, error) {
	var p PMTU
	if err := c.getJSON(ctx, PathPMTU, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// StatusError is an answer of the agent other than 200 OK.
type StatusError struct {
	Code    int
	Path    string
	Message string
}

func (e *StatusError) Error() string {
	if e.Code == http.StatusUnauthorized {
		return fmt.Sprintf("%s: 401 unauthorized (check --user and --password)", e.Path)
	}
	return fmt.Sprintf("%s: %d %s: %s", e.Path, e.Code, http.StatusText(e.Code), e.Message)
}

// IsStatus reports whether err is an agent's answer with HTTP status code.
func IsStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}
