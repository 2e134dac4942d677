package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/conntrack"
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/server"
	"github.com/layerscope/layerscope/exporters/metricdef"
	"github.com/layerscope/layerscope/exporters/prom"
)

// APIConfig configures the agent API (/api/v1/connections, /api/v1/status)
// and the history of connection events it answers from. The zero value
// keeps 16,384 events, checks active flows every second and drops a
// follower whose socket stays blocked for 10 s.
type APIConfig struct {
	// HistorySize is the number of connection events kept. Zero means
	// history.DefaultSize (16,384, about 12 MiB).
	HistorySize int
	// ProgressInterval is how often the active flows are checked for a
	// change of state worth an event. Zero means 1 s.
	ProgressInterval time.Duration
	// FollowWriteTimeout disconnects a follower whose stream cannot be
	// written for this long. Zero means 10 s.
	FollowWriteTimeout time.Duration
	// Node names this node in events and the status. Empty means
	// Traces.Node, else the base name of NetNS, else the host name.
	Node string
}

// apiState is the agent's history and the accounting of its followers.
type apiState struct {
	cfg      APIConfig
	ring     *history.Ring
	node     string
	dropped  atomic.Uint64 // followers disconnected on a stalled write
	stopping chan struct{} // closed when Run stops: follow streams end
}

const (
	defaultProgressInterval = time.Second
	defaultFollowTimeout    = 10 * time.Second
	readChunk               = 64 // entries copied out of the ring per lock
	followChunk             = 32 // the same for a follower (up to MaxFollowers of them)
)

func newAPIState(cfg Config) (*apiState, error) {
	c := cfg.API
	if c.ProgressInterval < 0 || c.FollowWriteTimeout < 0 {
		return nil, fmt.Errorf("--api-progress-interval and --api-follow-timeout must not be negative")
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = defaultProgressInterval
	}
	if c.FollowWriteTimeout == 0 {
		c.FollowWriteTimeout = defaultFollowTimeout
	}
	ring, err := history.New(&history.Config{Size: c.HistorySize})
	if err != nil {
		return nil, fmt.Errorf("--api-history-size %d: %w", c.HistorySize, err)
	}
	node := c.Node
	if node == "" {
		node = cfg.Traces.Node
	}
	if node == "" && cfg.NetNS != "" {
		node = filepath.Base(cfg.NetNS)
	}
	if node == "" {
		node, _ = os.Hostname()
	}
	return &apiState{cfg: c, ring: ring, node: node, stopping: make(chan struct{})}, nil
}

// History returns the agent's ring of recent connection events.
func (a *Agent) History() *history.Ring { return a.api.ring }

// recordHistory adds the final records of recs to the history with their
// conntrack translation. It runs on the flow table's sweeping goroutine.
func (a *Agent) recordHistory(recs []flow.Record) {
	ct := a.conntrack.Load()
	now := time.Now().UnixNano()
	for i := range recs {
		if r := &recs[i]; r.End.Final() {
			a.addHistory(history.KindFinal, r, ct, now)
		}
	}
}

func (a *Agent) addHistory(k history.Kind, r *flow.Record, ct *conntrack.Watcher, now int64) {
	var tr *correlate.Translation
	if ct != nil {
		if nat, ok := ct.Lookup(r.Key); ok {
			t := translation(&nat)
			tr = &t
		}
	}
	a.api.ring.Add(k, r, tr, now)
}

// runAPI records the progress of the active flows every ProgressInterval
// until ctx is done, then ends the follow streams.
func (a *Agent) runAPI(ctx context.Context) {
	defer close(a.api.stopping)
	t := time.NewTicker(a.api.cfg.ProgressInterval)
	defer t.Stop()
	p := history.NewProgress()
	var snap []flow.Record
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		snap = a.capture.table.Snapshot(snap[:0])
		ct := a.conntrack.Load()
		now := time.Now().UnixNano()
		p.Changed(snap, func(r *flow.Record) { a.addHistory(history.KindProgress, r, ct, now) })
		if cap(snap) > 4*len(snap) && cap(snap) > 1024 {
			snap = nil // a flood is over: give the memory back
		}
	}
}

// API request limits: requests beyond them get 429 before any work.
const (
	// MaxAPIRequests is the most /api/v1/connections (not following),
	// /api/v1/status and /api/v1/pmtu requests served at once.
	MaxAPIRequests = 8
	// MaxFollowers is the most /api/v1/connections?follow=1 streams.
	MaxFollowers = 32
	// apiWriteTimeout bounds the writing of one whole answer: a client
	// that does not read is cut off after it.
	apiWriteTimeout = 30 * time.Second
)

// apiLimits bound the API's concurrent requests by kind.
type apiLimits struct {
	api, follow *server.Limiter
}

func newAPILimits() apiLimits {
	return apiLimits{api: server.NewLimiter("api", MaxAPIRequests), follow: server.NewLimiter("follow", MaxFollowers)}
}

// registerAPI adds the API's handlers to mux.
func (a *Agent) registerAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET "+api.PathConnections, a.serveConnections)
	mux.Handle("GET "+api.PathStatus, a.limits.api.Wrap(http.HandlerFunc(a.serveStatus)))
}

// serveConnections answers from the history. The answer is streamed: a
// first pass over the history picks the sequence numbers to send (8 bytes
// per event at most), a second encodes each event as it is written, so
// a request holds at most one event's JSON besides that list however long
// the history is. Events overwritten between the passes are left out.
func (a *Agent) serveConnections(w http.ResponseWriter, r *http.Request) {
	q, err := api.ParseQuery(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if q.Follow {
		if r.Method == http.MethodHead {
			w.Header().Set("Allow", "GET")
			http.Error(w, "follow streams answer GET only", http.StatusMethodNotAllowed)
			return
		}
		release, ok := a.limits.follow.Acquire()
		if !ok {
			server.Busy(w, a.limits.follow.Cap())
			return
		}
		defer release()
		a.follow(w, r, &q)
		return
	}
	release, ok := a.limits.api.Acquire()
	if !ok {
		server.Busy(w, a.limits.api.Cap())
		return
	}
	defer release()
	ctx := r.Context()
	seqs := a.selectConnections(ctx, &q)
	if ctx.Err() != nil {
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Now().Add(apiWriteTimeout))
	w.Header().Set("Content-Type", "application/json")
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	_, _ = bw.WriteString("[")
	buf := make([]history.Entry, 0, readChunk)
	first := true
	for i := 0; i < len(seqs) && ctx.Err() == nil; {
		buf, _, _ = a.api.ring.Read(seqs[i], buf[:0])
		if len(buf) == 0 {
			break
		}
		for j := range buf {
			for i < len(seqs) && seqs[i] < buf[j].Seq {
				i++ // overwritten since the first pass
			}
			if i == len(seqs) {
				break
			}
			if seqs[i] != buf[j].Seq {
				continue
			}
			i++
			c := a.connection(&buf[j])
			if !first {
				_, _ = bw.WriteString(",")
			}
			first = false
			if err := enc.Encode(&c); err != nil {
				return
			}
		}
	}
	_, _ = bw.WriteString("]\n")
	_ = bw.Flush()
}

// selectConnections returns the sequence numbers of the events q asks
// for, oldest first: those matching its filters since q.Since, the newest
// of each connection view with q.Latest, the last q.Limit of them.
func (a *Agent) selectConnections(ctx context.Context, q *api.Query) []uint64 {
	ring := a.api.ring
	from := uint64(0)
	if q.Since > 0 {
		from = ring.SeqAt(time.Now().Add(-q.Since).UnixNano())
	}
	end := ring.Next()
	type view struct{ id, view string }
	var seqs []uint64
	var views []view
	buf := make([]history.Entry, 0, readChunk)
	for from < end && ctx.Err() == nil {
		buf, from, _ = ring.Read(from, buf[:0])
		if len(buf) == 0 {
			break
		}
		for i := range buf {
			if buf[i].Seq >= end {
				break
			}
			c := a.connection(&buf[i])
			if q.Match(&c) {
				seqs = append(seqs, buf[i].Seq)
				if q.Latest {
					views = append(views, view{c.ID, c.View})
				}
			}
		}
	}
	if q.Latest {
		last := make(map[view]int, len(views))
		for i, v := range views {
			last[v] = i
		}
		kept := seqs[:0]
		for i, s := range seqs {
			if last[views[i]] == i {
				kept = append(kept, s)
			}
		}
		seqs = kept
	}
	if q.Limit > 0 && len(seqs) > q.Limit {
		seqs = seqs[len(seqs)-q.Limit:]
	}
	return seqs
}

// follow streams the matching events recorded from now on as NDJSON until
// the client goes, the agent stops, or a write stalls longer than
// FollowWriteTimeout (the follower is then dropped and counted).
func (a *Agent) follow(w http.ResponseWriter, r *http.Request, q *api.Query) {
	sub := a.api.ring.Subscribe()
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	enc := json.NewEncoder(w)
	buf := make([]history.Entry, 0, followChunk)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-a.api.stopping:
			return
		case <-sub.Ready():
		}
		buf, _ = sub.Read(buf[:0])
		wrote := false
		for i := range buf {
			c := a.connection(&buf[i])
			if !q.Match(&c) {
				continue
			}
			_ = rc.SetWriteDeadline(time.Now().Add(a.api.cfg.FollowWriteTimeout))
			if err := enc.Encode(&c); err != nil {
				a.dropFollower(r, err)
				return
			}
			wrote = true
		}
		if wrote {
			if err := rc.Flush(); err != nil {
				a.dropFollower(r, err)
				return
			}
		}
	}
}

func (a *Agent) dropFollower(r *http.Request, err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return // the client went away
	}
	a.api.dropped.Add(1)
	a.log.Debug("follower dropped", "remote", r.RemoteAddr, "err", err, "timeout_seconds", a.api.cfg.FollowWriteTimeout.Seconds())
}

// connection converts a history entry to its API form.
func (a *Agent) connection(e *history.Entry) api.Connection {
	r := &e.Record
	c := api.Connection{
		Time: time.Unix(0, e.Time), Seq: e.Seq, Node: a.api.node, State: api.StateFinal, End: r.End.String(),
		Protocol: flow.ProtoName(r.Key.Proto), Outcome: r.Outcome.String(), View: api.ViewDirect,
		Start: time.Unix(0, r.First), Last: time.Unix(0, r.Last),
		Client:  endpoint(netip.AddrPortFrom(r.Key.Src, r.Key.SrcPort)),
		Backend: endpoint(netip.AddrPortFrom(r.Key.Dst, r.Key.DstPort)),
	}
	if e.Kind == history.KindProgress {
		c.State = api.StateProgress
	}
	keys := []flow.Key{r.Key}
	if e.HasNAT && e.NAT.ID != 0 {
		c.ID = "ct:" + strconv.FormatUint(uint64(e.NAT.ID), 10)
	} else {
		h := fnv.New64a()
		k, _ := r.Key.Canonical()
		h.Write([]byte(k.String()))
		h.Write(strconv.AppendInt(nil, r.First, 16))
		c.ID = "flow:" + strconv.FormatUint(h.Sum64(), 16)
	}
	if e.HasNAT {
		t := &e.NAT
		n := &api.NAT{ConntrackID: t.ID, Original: t.Original.String(), Reply: t.Reply.String(), DNAT: t.DNAT(), SNAT: t.SNAT()}
		c.Client = endpoint(netip.AddrPortFrom(t.Original.Src, t.Original.SrcPort))
		if n.DNAT {
			n.From, n.To = t.Service().String(), t.Backend().String()
			svc := endpoint(t.Service())
			c.Service, c.Backend = &svc, endpoint(t.Backend())
			switch t.ViewOf(r.Key) {
			case correlate.ViewPre:
				c.View = api.ViewPre
			case correlate.ViewPost:
				c.View = api.ViewPost
			}
		}
		if n.SNAT {
			n.ClientNAT = netip.AddrPortFrom(t.Reply.Dst, t.Reply.DstPort).String()
		}
		if n.DNAT || n.SNAT {
			c.NAT = n
		}
		keys = append(keys, t.Original)
	}
	for i := range int(min(r.NumHops, flow.MaxHops)) {
		h := &r.Hops[i]
		name, kind, role := a.hopName(h.IfIndex, h.Role)
		c.Hops = append(c.Hops, api.Hop{
			Interface: name, Kind: kind, Role: role, Direction: h.Dir.String(), Encap: h.Encap.String(),
			First: time.Unix(0, h.First), Last: time.Unix(0, h.Last),
			Packets:     api.Sides{Client: h.Packets[flow.FromClient], Server: h.Packets[flow.FromServer]},
			Bytes:       api.Sides{Client: h.Bytes[flow.FromClient], Server: h.Bytes[flow.FromServer]},
			Retransmits: api.Sides{Client: uint64(h.Retransmits[flow.FromClient]), Server: uint64(h.Retransmits[flow.FromServer])},
			ZeroWindows: api.Sides{Client: uint64(h.ZeroWindows[flow.FromClient]), Server: uint64(h.ZeroWindows[flow.FromServer])},
		})
		if h.Packets[flow.FromClient] > c.Packets.Client {
			c.Packets.Client, c.Bytes.Client = h.Packets[flow.FromClient], h.Bytes[flow.FromClient]
		}
		if h.Packets[flow.FromServer] > c.Packets.Server {
			c.Packets.Server, c.Bytes.Server = h.Packets[flow.FromServer], h.Bytes[flow.FromServer]
		}
	}
	if r.Key.Proto == flow.ProtoTCP {
		c.TCP = a.tcpOf(r)
	}
	if r.L7.App != flow.AppNone {
		c.L7 = l7Of(&r.L7)
	}
	a.nameEndpoints(&c, r.Key.Proto)
	c.PMTU = a.pmtuFor(keys)
	c.Layers = layersOf(&c, r)
	c.Failed = r.Outcome.Failed() || slices.ContainsFunc(c.Layers, func(l api.Layer) bool { return l.Status == api.StatusFail })
	c.Summary = summary(&c)
	return c
}

// nameEndpoints fills the Kubernetes names of a connection's client,
// service and backend from the metadata store, when there is one: pods by
// IP (this node's from their Pod objects, other nodes' from the
// EndpointSlices that list them) and Services by address and port.
func (a *Agent) nameEndpoints(c *api.Connection, proto uint8) {
	if a.kube == nil {
		return
	}
	store := a.kube.Store()
	if store == nil {
		return
	}
	named := func(e *api.Endpoint) {
		ap, err := netip.ParseAddrPort(e.Addr)
		if err != nil {
			return
		}
		if p, ok := store.Pod(ap.Addr()); ok {
			e.Namespace, e.Pod, e.Workload = p.Namespace, p.Name, p.Workload
			return
		}
		if ep, ok := store.Endpoint(ap.Addr()); ok && ep.Pod != "" {
			e.Namespace, e.Pod = ep.Namespace, ep.Pod
			return
		}
		if v, ok := store.Service(ap, proto); ok {
			e.Namespace, e.Service = v.Namespace, v.Name
		}
	}
	named(&c.Client)
	named(&c.Backend)
	if c.Service != nil {
		named(c.Service)
	}
}

func endpoint(ap netip.AddrPort) api.Endpoint {
	return api.Endpoint{Addr: ap.String(), IP: ap.Addr().String(), Port: ap.Port()}
}

func (a *Agent) hopName(idx int32, role flow.Role) (name, kind, roleName string) {
	if l, ok := a.capture.linkOf(int(idx)); ok {
		return l.Name, l.Kind.String(), l.Role.String()
	}
	return "if" + strconv.Itoa(int(idx)), "", role.String()
}

var tcpFlagNames = [...]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

func (a *Agent) tcpOf(r *flow.Record) *api.TCP {
	t := &r.TCP
	out := &api.TCP{
		SYNACK:       t.SYNACK != 0 || r.Outcome == flow.OutcomeEstablished || r.Outcome == flow.OutcomeClosed,
		ServerRTT:    t.ServerRTT().Seconds(),
		ClientRTT:    t.ClientRTT().Seconds(),
		HandshakeRTT: t.HandshakeRTT().Seconds(),
		Retransmits:  api.Sides{Client: uint64(t.Retransmits[0]), Server: uint64(t.Retransmits[1])},
		ZeroWindows:  api.Sides{Client: uint64(t.ZeroWindows[0]), Server: uint64(t.ZeroWindows[1])},
	}
	for i, n := range tcpFlagNames {
		if t.Flags&(1<<i) != 0 {
			out.Flags = append(out.Flags, n)
		}
	}
	if t.SYN != 0 || t.Flags&flow.TCPSyn != 0 {
		out.SYNs = 1 + int(t.SYNRetransmits)
	}
	out.RSTFrom, out.FINFrom = sides(t.RSTFrom), sides(t.FINFrom)
	if t.HandshakeIfIndex != 0 {
		out.HandshakeInterface, _, _ = a.hopName(t.HandshakeIfIndex, flow.RoleOther)
	}
	return out
}

func sides(bits uint8) []string {
	var out []string
	if bits&(1<<flow.FromClient) != 0 {
		out = append(out, "client")
	}
	if bits&(1<<flow.FromServer) != 0 {
		out = append(out, "server")
	}
	return out
}

var dnsRcodeNames = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE"}

func rcodeName(c uint16) string {
	if int(c) < len(dnsRcodeNames) {
		return dnsRcodeNames[c]
	}
	return "RCODE" + strconv.Itoa(int(c))
}

func l7Of(ai *flow.AppInfo) *api.L7 {
	out := &api.L7{App: ai.App.String(), Requests: ai.Requests, Responses: ai.Responses, Errors: ai.Errors, Unanswered: ai.Unanswered}
	if ai.App == flow.AppDNS {
		out.Name, out.NameTruncated = ai.DNSName()
	}
	for i := range int(min(ai.NumExchanges, flow.MaxExchanges)) {
		x := ai.Exchanges[i]
		e := api.Exchange{Time: time.Unix(0, x.Start), Latency: x.Latency.Seconds(), ID: x.ID, Failed: x.Failed(ai.App)}
		if ai.App == flow.AppDNS {
			e.Rcode = rcodeName(x.Code)
			if !x.OtherName {
				e.Name, e.NameTruncated = out.Name, out.NameTruncated
			}
		} else {
			e.Status = int(x.Code)
		}
		out.Exchanges = append(out.Exchanges, e)
	}
	return out
}

// pmtuFor returns the PMTU reports about the connection of any of keys.
func (a *Agent) pmtuFor(keys []flow.Key) []api.PMTUReport {
	p := &a.pmtu
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []api.PMTUReport
	for i := range p.reports {
		if r := &p.reports[i]; slices.Contains(keys, r.key) {
			out = append(out, apiPMTU(r))
		}
	}
	return out
}

func apiPMTU(r *PMTUReport) api.PMTUReport {
	return api.PMTUReport{Time: r.Time, Interface: r.Interface, Reporter: r.Reporter, MTU: r.MTU, Quoted: r.Quoted,
		Flow: r.Flow, Translated: r.Translated, Attributed: r.Attributed, Count: r.Count}
}

// layersOf gives the verdict of each layer from what the record shows.
func layersOf(c *api.Connection, r *flow.Record) []api.Layer {
	active := c.State == api.StateProgress
	l3 := api.Layer{Layer: "l3", Status: api.StatusOK}
	switch {
	case len(c.PMTU) > 0:
		l3.Status, l3.Detail = api.StatusFail, "frag-needed MTU "+strconv.Itoa(int(c.PMTU[len(c.PMTU)-1].MTU))
	case c.Packets.Server > 0:
	case active:
		l3.Status, l3.Detail = api.StatusPending, "no reply yet"
	default:
		l3.Status, l3.Detail = api.StatusUnknown, "no reply"
	}
	l4 := api.Layer{Layer: "l4", Status: api.StatusOK}
	syns := "SYN"
	if c.TCP != nil && c.TCP.SYNs > 1 {
		syns = "SYN×" + strconv.Itoa(c.TCP.SYNs)
	}
	switch r.Outcome {
	case flow.OutcomeSynSent:
		l4.Status, l4.Detail = api.StatusPending, syns+" no SYN-ACK"
	case flow.OutcomeTimeout:
		l4.Status, l4.Detail = api.StatusFail, syns+" no SYN-ACK"
	case flow.OutcomeRefused:
		l4.Status, l4.Detail = api.StatusFail, syns+" → RST"
	case flow.OutcomeReset:
		l4.Status, l4.Detail = api.StatusFail, "RST from "+strings.Join(c.TCP.RSTFrom, "+")
	case flow.OutcomeEstablished, flow.OutcomeClosed:
		l4.Detail = r.Outcome.String()
		if c.TCP.HandshakeRTT > 0 {
			l4.Detail += ", handshake " + fmtSeconds(c.TCP.HandshakeRTT)
		}
	case flow.OutcomeReplied:
		l4.Detail = "replied"
	case flow.OutcomeUnreplied:
		l4.Status, l4.Detail = api.StatusUnknown, "no reply"
		if active {
			l4.Status = api.StatusPending
		}
	default:
		l4.Status, l4.Detail = api.StatusUnknown, "picked up mid-stream"
	}
	if c.TCP != nil && c.TCP.Retransmits != (api.Sides{}) {
		l4.Detail += fmt.Sprintf(" (retrans %d/%d)", c.TCP.Retransmits.Client, c.TCP.Retransmits.Server)
	}
	out := []api.Layer{l3, l4}
	if c.L7 != nil {
		out = append(out, l7Layer(c.L7, active))
	}
	return out
}

func l7Layer(x *api.L7, active bool) api.Layer {
	l := api.Layer{Layer: "l7", Status: api.StatusOK}
	name := strings.ToUpper(x.App)
	for _, e := range x.Exchanges {
		if e.Failed {
			l.Status = api.StatusFail
			if e.Rcode != "" {
				l.Detail = name + " " + e.Rcode + dnsNameSuffix(e.Name, e.NameTruncated)
			} else {
				l.Detail = name + " " + strconv.Itoa(e.Status)
			}
			return l
		}
	}
	switch {
	case x.Errors > 0:
		l.Status, l.Detail = api.StatusFail, fmt.Sprintf("%s %d errors", name, x.Errors)
	case x.Unanswered > 0 || x.Requests > x.Responses:
		n := max(x.Unanswered, x.Requests-min(x.Responses, x.Requests))
		l.Status, l.Detail = api.StatusFail, fmt.Sprintf("%s %d unanswered", name, n)+dnsNameSuffix(x.Name, x.NameTruncated)
		if active {
			l.Status = api.StatusPending
		}
	case len(x.Exchanges) > 0:
		e := x.Exchanges[0]
		if e.Rcode != "" {
			l.Detail = name + " " + e.Rcode + dnsNameSuffix(e.Name, e.NameTruncated)
		} else {
			l.Detail = name + " " + strconv.Itoa(e.Status)
		}
	default:
		l.Status, l.Detail = api.StatusUnknown, name+dnsNameSuffix(x.Name, x.NameTruncated)
	}
	return l
}

// dnsNameSuffix is " name" for a layer detail ("DNS NXDOMAIN my-svc.default"),
// with "…" after a truncated name; "" without a name.
func dnsNameSuffix(name string, truncated bool) string {
	if name == "" {
		return ""
	}
	if truncated {
		name += "…"
	}
	return " " + name
}

func fmtSeconds(s float64) string {
	d := time.Duration(s * 1e9)
	switch {
	case d < time.Millisecond:
		return strconv.FormatFloat(s*1e6, 'f', 0, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(s*1e3, 'f', 2, 64) + "ms"
	}
	return strconv.FormatFloat(s, 'f', 2, 64) + "s"
}

// summary is the one-line layer verdict observe prints.
func summary(c *api.Connection) string {
	parts := make([]string, 0, 4)
	for _, l := range c.Layers {
		s := strings.ToUpper(l.Layer) + " "
		switch {
		case l.Layer == "l7" || l.Status != api.StatusOK:
			s += l.Detail
		default:
			s += "ok"
		}
		parts = append(parts, s)
	}
	if c.NAT != nil && c.NAT.DNAT {
		parts = append(parts, "DNAT "+c.NAT.From+"→"+c.NAT.To)
	}
	return strings.Join(parts, " · ")
}

// apiSource exports the history's and the followers' accounting.
func (a *Agent) apiSource() prom.Source {
	return prom.SourceFunc{SourceName: "api", Fn: func(e *prom.Emitter) error {
		s := a.api.ring.Stats()
		e.Gauge(metricdef.APIHistoryEntries, float64(s.Len))
		e.Gauge(metricdef.APIHistoryCapacity, float64(s.Size))
		for k := range history.NumKinds {
			e.Counter(metricdef.APIHistoryEvents, float64(s.Added[k]), k.String())
		}
		e.Counter(metricdef.APIHistoryOverwritten, float64(s.Overwritten))
		e.Gauge(metricdef.APIFollowers, float64(s.Subscribers))
		e.Counter(metricdef.APIFollowLost, float64(s.FollowerLost))
		e.Counter(metricdef.APIFollowersDropped, float64(a.api.dropped.Load()))
		for _, l := range []*server.Limiter{a.limits.api, a.limits.follow} {
			if l != nil {
				e.Counter(metricdef.APIRequestsRejected, float64(l.Rejected()), l.Name())
			}
		}
		if a.ondemand != nil {
			e.Counter(metricdef.APIRequestsRejected, float64(a.ondemand.Rejected()), "capture")
		}
		if a.srv != nil {
			for _, st := range a.srv.Stats() {
				e.Gauge(metricdef.HTTPConnections, float64(st.Open), st.Listener)
				e.Counter(metricdef.HTTPConnectionsClosed, float64(st.Evicted), st.Listener, "evicted")
				e.Counter(metricdef.HTTPConnectionsClosed, float64(st.Refused), st.Listener, "refused")
				if st.Listener == "socket" {
					e.Counter(metricdef.HTTPConnectionsClosed, float64(st.PeerRefused), st.Listener, "peer")
				}
			}
		}
		return nil
	}}
}
