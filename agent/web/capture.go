package web

import (
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/attach"
	"github.com/layerscope/layerscope/agent/ondemand"
	"github.com/layerscope/layerscope/agent/server"
)

// OnDemandConfig says whether clients may ask for captures on
// /api/v1/capture and bounds them. The zero value serves none; enabled, it
// allows DefaultMaxConcurrent captures of at most 5 minutes, 1,000,000
// packets and 256 MiB each, 65535-byte snapshots, on at most
// DefaultCaptureInterfaces interfaces, with DefaultCaptureRingMemory of
// rings in all.
//
// Captures hand out whole packets, payloads included: they are served
// only to clients the HTTP server identified (a unix-socket peer that is
// root or of the socket's group, a basic-auth user of the web
// configuration, a verified client certificate, or with Kubernetes a
// bearer token the API server vouches for and whose user may capture on
// this node: KubeAuth). The agent refuses Enabled when no client could be
// identified.
type OnDemandConfig struct {
	// Enabled serves /api/v1/capture; otherwise it answers 404.
	Enabled bool
	// Caps are the most a client may ask for; zero fields mean the
	// ondemand package defaults. Requests above a cap are lowered to it.
	Caps ondemand.Limits
	// MaxConcurrent is the number of captures run at once; more get 429.
	// 0 means ondemand.DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxInterfaces is the most interfaces one capture may take; a
	// request matching more gets 400. 0 means DefaultCaptureInterfaces.
	MaxInterfaces int
	// RingMemory is the ring memory of all on-demand captures together:
	// each of the MaxConcurrent captures gets its share, divided among
	// its interfaces (ondemand.RingBytes). 0 means
	// DefaultCaptureRingMemory.
	RingMemory int64
	// KubeAuth, when not nil, identifies a client the server did not by
	// the bearer token it sends, checked with the Kubernetes API: no token
	// gets 401, an invalid one 401, a user without the permission 403.
	KubeAuth *KubeAuth
}

// Defaults of OnDemandConfig.
const (
	DefaultCaptureInterfaces = 32
	DefaultCaptureRingMemory = 32 << 20
	// CaptureWriteGrace is how long after its duration a capture may
	// still be writing to a slow client before the connection is cut.
	CaptureWriteGrace = 5 * time.Second
)

// check checks c and fills in its defaults.
func (c *OnDemandConfig) check() error {
	if l := c.Caps; l.Duration < 0 || l.Packets < 0 || l.Bytes < 0 || l.SnapLen < 0 || c.MaxConcurrent < 0 || c.MaxInterfaces < 0 || c.RingMemory < 0 {
		return fmt.Errorf("--capture-api-max-duration, --capture-api-max-packets, --capture-api-max-bytes, --capture-api-snaplen, --capture-api-concurrent, --capture-api-max-interfaces and --capture-api-ring-memory must not be negative")
	}
	if c.MaxInterfaces == 0 {
		c.MaxInterfaces = DefaultCaptureInterfaces
	}
	if c.RingMemory == 0 {
		c.RingMemory = DefaultCaptureRingMemory
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = ondemand.DefaultMaxConcurrent
	}
	// Every interface of a capture gets at least MinRingBytes: the
	// budget must hold that for the most interfaces of every capture.
	if need := int64(c.MaxConcurrent) * int64(c.MaxInterfaces) * ondemand.MinRingBytes; c.RingMemory < need {
		return fmt.Errorf("--capture-api-ring-memory %d: below %d bytes, the least ring of %d interfaces of %d concurrent captures (--capture-api-max-interfaces, --capture-api-concurrent)",
			c.RingMemory, need, c.MaxInterfaces, c.MaxConcurrent)
	}
	return nil
}

// serveCapture answers GET /api/v1/capture with a pcap stream. Query
// parameters: filter (tcpdump-style expression), duration (Go duration),
// max_packets, max_bytes, snaplen, interface (comma-separated globs; default
// the pod, overlay and uplink interfaces). Errors: 403 for a client the
// server did not identify (with KubeAuth: 401 without a valid bearer
// token, 403 for a user without the permission), 405 for HEAD, 400 for a bad parameter (the
// message names it and, for filter, the column), 429 when the agent
// already runs its maximum of captures, 503 when a ring cannot be opened.
// Everything a client controls is checked before a capture slot is taken;
// the filter is compiled after its size and nesting were checked.
func (h *Handlers) serveCapture(w http.ResponseWriter, r *http.Request) {
	cfg := h.cfg.OnDemand
	if !cfg.Enabled {
		http.Error(w, "on-demand capture is disabled on this agent (--capture-api)", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "captures answer GET only", http.StatusMethodNotAllowed)
		return
	}
	var who server.Identity
	if id := h.who.Load(); id != nil {
		who = (*id).Identify(r)
	}
	if who.Kind == "" && cfg.KubeAuth != nil {
		tok, ok := bearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="layerscope capture"`)
			http.Error(w, "on-demand capture reveals packet payloads: send a Kubernetes bearer token (Authorization: Bearer) whose user has "+
				cfg.KubeAuth.Permission()+"; kubectl layerscope capture sends your kubeconfig's", http.StatusUnauthorized)
			return
		}
		id, code, msg := cfg.KubeAuth.Review(r.Context(), tok)
		if code != 0 {
			switch code {
			case http.StatusUnauthorized:
				w.Header().Set("WWW-Authenticate", `Bearer realm="layerscope capture", error="invalid_token"`)
			case http.StatusTooManyRequests:
				w.Header().Set("Retry-After", "1")
			case http.StatusServiceUnavailable:
				h.log.Warn("capture client not checked", "remote", r.RemoteAddr, "err", msg)
			}
			http.Error(w, msg, code)
			return
		}
		who = id
	}
	if who.Kind == "" {
		http.Error(w, "on-demand capture reveals packet payloads and needs an authenticated client: "+
			"basic auth or a client certificate as the agent's web configuration asks, or the agent's unix socket", http.StatusForbidden)
		return
	}
	bad := func(format string, args ...any) {
		http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
	}
	q := r.URL.Query()
	cr, perr := api.ParseCaptureRequest(q)
	expr := cr.Filter
	if err := ondemand.CheckFilter(expr); err != nil {
		bad("--filter %s: %v", api.QuoteShort(expr), err)
		return
	}
	if perr != nil {
		bad("%v", perr)
		return
	}
	req := ondemand.Limits{Duration: cr.Duration, Packets: cr.MaxPackets, Bytes: cr.MaxBytes, SnapLen: cr.SnapLen}
	lim, err := req.Within(cfg.Caps)
	if err != nil {
		bad("capture limits: %v", err)
		return
	}
	ifcs, err := h.captureInterfaces(cr.Interfaces)
	if err != nil {
		http.Error(w, fmt.Sprintf("list interfaces: %v", err), http.StatusInternalServerError)
		return
	}
	shown := api.QuoteShort(q.Get(api.KeyInterface))
	if len(ifcs) == 0 {
		bad("--interface %s: %v in the agent's namespace", shown, ondemand.ErrNoInterface)
		return
	}
	if len(ifcs) > cfg.MaxInterfaces {
		bad("--interface %s: matches %d interfaces; one capture takes at most %d (--capture-api-max-interfaces)", shown, len(ifcs), cfg.MaxInterfaces)
		return
	}
	release, err := h.capture.Acquire()
	if err != nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	defer release()
	filter, err := ondemand.CompileFilter(expr)
	if err != nil {
		bad("--filter %s: %v", api.QuoteShort(expr), err)
		return
	}

	names := make([]string, len(ifcs))
	for i, ifc := range ifcs {
		names[i] = ifc.Name
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/vnd.tcpdump.pcap")
	hdr.Set(api.HeaderCaptureLimits, fmt.Sprintf("duration=%s packets=%d bytes=%d snaplen=%d", lim.Duration, lim.Packets, lim.Bytes, lim.SnapLen))
	hdr.Set(api.HeaderCaptureInterfaces, strings.Join(names, ","))
	hdr.Set("Trailer", strings.Join([]string{api.TrailerCapturePackets, api.TrailerCaptureBytes, api.TrailerCaptureDropped, api.TrailerCaptureStop}, ", "))
	rc := http.NewResponseController(w)
	// A client that stops reading loses its capture (and its slot and
	// rings) at most CaptureWriteGrace after the capture's duration.
	_ = rc.SetWriteDeadline(time.Now().Add(lim.Duration + CaptureWriteGrace))
	started := false
	flush := func() { _ = rc.Flush() }
	log := h.log.With("filter", api.Shorten(filter.Expr, api.MaxQuoted), "interfaces", len(names), "remote", r.RemoteAddr, "client", who.String())
	res, err := ondemand.Run(r.Context(), w, flush, &ondemand.Request{
		NetNS:      h.cfg.NetNS,
		Interfaces: ifcs,
		Filter:     filter,
		Limits:     lim,
		RingBytes:  ondemand.RingBytes(cfg.RingMemory/int64(cfg.MaxConcurrent), len(ifcs)),
		Ready:      func() { started = true },
	})
	if err != nil && !started {
		hdr.Del("Trailer")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		log.Warn("on-demand capture failed", "err", err)
		return
	}
	hdr.Set(api.TrailerCapturePackets, strconv.FormatInt(res.Packets, 10))
	hdr.Set(api.TrailerCaptureBytes, strconv.FormatInt(res.Bytes, 10))
	hdr.Set(api.TrailerCaptureDropped, strconv.FormatUint(res.Dropped, 10))
	hdr.Set(api.TrailerCaptureStop, string(res.Stop))
	log.Info("on-demand capture", "packets", res.Packets, "bytes", res.Bytes, "dropped", res.Dropped, "stop", res.Stop)
}

var errNoLinks = errors.New("the agent's link watch has not listed the interfaces yet")

// captureInterfaces returns the interfaces of the agent's namespace whose
// name matches one of globs, or, without globs, those of the default
// capture roles.
func (h *Handlers) captureInterfaces(globs []string) ([]ondemand.Interface, error) {
	ls, ok := h.cfg.Links.Links()
	if !ok {
		return nil, errNoLinks
	}
	var out []ondemand.Interface
	for _, l := range ls {
		ok := false
		if len(globs) == 0 {
			ok = slices.Contains(attach.DefaultRoles, l.Role)
		}
		for _, g := range globs {
			if m, _ := path.Match(g, l.Name); m {
				ok = true
			}
		}
		if ok {
			out = append(out, ondemand.Interface{Name: l.Name, Index: l.Index})
		}
	}
	return out, nil
}
