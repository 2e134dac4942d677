package agent

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/layerscope/layerscope/agent/attach"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/ondemand"
)

// OnDemandConfig bounds the captures clients ask for on /api/v1/capture.
// The zero value allows DefaultMaxConcurrent captures of at most 5 minutes,
// 1,000,000 packets and 256 MiB each, 65535-byte snapshots.
type OnDemandConfig struct {
	// Disabled turns /api/v1/capture off (404).
	Disabled bool
	// Caps are the most a client may ask for; zero fields mean the
	// ondemand package defaults. Requests above a cap are lowered to it.
	Caps ondemand.Limits
	// MaxConcurrent is the number of captures run at once; more get 429.
	// 0 means ondemand.DefaultMaxConcurrent.
	MaxConcurrent int
}

// Response headers and trailers of /api/v1/capture.
const (
	HeaderCaptureLimits     = "Layerscope-Capture-Limits"     // the effective limits
	HeaderCaptureInterfaces = "Layerscope-Capture-Interfaces" // comma-separated names
	TrailerCapturePackets   = "Layerscope-Capture-Packets"
	TrailerCaptureBytes     = "Layerscope-Capture-Bytes"
	TrailerCaptureDropped   = "Layerscope-Capture-Dropped"
	TrailerCaptureStop      = "Layerscope-Capture-Stop"
)

// serveCapture answers GET /api/v1/capture with a pcap stream. Query
// parameters: filter (tcpdump-style expression), duration (Go duration),
// max_packets, max_bytes, snaplen, interface (comma-separated globs; default
// the pod, overlay and uplink interfaces). Errors: 400 for a bad parameter
// (the message names it and, for filter, the column), 429 when the agent
// already runs its maximum of captures, 503 when a ring cannot be opened.
func (a *Agent) serveCapture(w http.ResponseWriter, r *http.Request) {
	cfg := a.cfg.OnDemand
	if cfg.Disabled {
		http.Error(w, "on-demand capture is disabled on this agent", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	var req ondemand.Limits
	var err error
	bad := func(format string, args ...any) {
		http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
	}
	if s := q.Get("duration"); s != "" {
		if req.Duration, err = time.ParseDuration(s); err != nil || req.Duration < 0 {
			bad("--duration %q: want a positive duration such as 30s", s)
			return
		}
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"max_packets", &req.Packets}, {"max_bytes", &req.Bytes}} {
		if s := q.Get(p.name); s != "" {
			if *p.dst, err = strconv.ParseInt(s, 10, 64); err != nil || *p.dst < 0 {
				bad("--%s %q: want a non-negative integer", strings.ReplaceAll(p.name, "_", "-"), s)
				return
			}
		}
	}
	if s := q.Get("snaplen"); s != "" {
		if req.SnapLen, err = strconv.Atoi(s); err != nil {
			bad("--snaplen %q: want an integer", s)
			return
		}
	}
	lim, err := req.Within(cfg.Caps)
	if err != nil {
		bad("capture limits: %v", err)
		return
	}
	filter, err := ondemand.CompileFilter(q.Get("filter"))
	if err != nil {
		bad("--filter %q: %v", q.Get("filter"), err)
		return
	}
	var globs []string
	if s := q.Get("interface"); s != "" {
		globs = strings.Split(s, ",")
		for _, g := range globs {
			if _, err := path.Match(g, ""); err != nil {
				bad("--interface %q: %v", g, err)
				return
			}
		}
	}
	ifcs, err := a.captureInterfaces(globs)
	if err != nil {
		http.Error(w, fmt.Sprintf("list interfaces: %v", err), http.StatusInternalServerError)
		return
	}
	if len(ifcs) == 0 {
		bad("--interface %q: %v in the agent's namespace", q.Get("interface"), ondemand.ErrNoInterface)
		return
	}
	release, err := a.ondemand.Acquire()
	if err != nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	defer release()

	names := make([]string, len(ifcs))
	for i, ifc := range ifcs {
		names[i] = ifc.Name
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.tcpdump.pcap")
	h.Set(HeaderCaptureLimits, fmt.Sprintf("duration=%s packets=%d bytes=%d snaplen=%d", lim.Duration, lim.Packets, lim.Bytes, lim.SnapLen))
	h.Set(HeaderCaptureInterfaces, strings.Join(names, ","))
	h.Set("Trailer", strings.Join([]string{TrailerCapturePackets, TrailerCaptureBytes, TrailerCaptureDropped, TrailerCaptureStop}, ", "))
	rc := http.NewResponseController(w)
	started := false
	flush := func() { _ = rc.Flush() }
	log := a.log.With("filter", filter.Expr, "interfaces", names, "remote", r.RemoteAddr)
	res, err := ondemand.Run(r.Context(), w, flush, &ondemand.Request{
		NetNS:      a.ns,
		Interfaces: ifcs,
		Filter:     filter,
		Limits:     lim,
		Ready:      func() { started = true },
	})
	if err != nil && !started {
		h.Del("Trailer")
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		log.Warn("on-demand capture failed", "err", err)
		return
	}
	h.Set(TrailerCapturePackets, strconv.FormatInt(res.Packets, 10))
	h.Set(TrailerCaptureBytes, strconv.FormatInt(res.Bytes, 10))
	h.Set(TrailerCaptureDropped, strconv.FormatUint(res.Dropped, 10))
	h.Set(TrailerCaptureStop, string(res.Stop))
	log.Info("on-demand capture", "packets", res.Packets, "bytes", res.Bytes, "dropped", res.Dropped, "stop", res.Stop)
}

// captureInterfaces returns the interfaces of the agent's namespace whose
// name matches one of globs, or, without globs, those of the default
// capture roles.
func (a *Agent) captureInterfaces(globs []string) ([]ondemand.Interface, error) {
	ls, err := links.List(links.Config{NetNS: a.ns})
	if err != nil {
		return nil, err
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
