package api

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Query selects connection events. The zero value selects every event the
// agent holds. As URL parameters of PathConnections (see Values) it is the
// agent's filter; Match applies the same filter to a Connection.
type Query struct {
	// Since keeps events recorded within this long before the query
	// (URL: since=5m). Zero means the whole history.
	Since time.Duration
	// Limit keeps the newest Limit matching events (URL: limit=N). Zero
	// means no limit; a follow stream ignores it.
	Limit int
	// Follow streams the events recorded from now on (URL: follow=1).
	Follow bool
	// Latest keeps only the newest event of each connection view (same ID
	// and View): one event per view instead of its whole progress
	// (URL: latest=1). A follow stream ignores it.
	Latest bool
	// Pod keeps events whose client or backend is this pod: "name" or
	// "namespace/name" (URL: pod=).
	Pod string
	// Namespace keeps events with an end in this namespace (URL:
	// namespace=).
	Namespace string
	// Service keeps events to this service: a name ("name" or
	// "namespace/name") or an address ("10.96.0.42" or
	// "10.96.0.42:8080"), matched against the service address and the
	// backend's service (URL: service=).
	Service string
	// IP keeps events with an end at this address (URL: ip=).
	IP string
	// Port keeps events whose service or backend port is Port (URL:
	// port=).
	Port uint16
	// Protocol keeps one protocol: tcp, udp, icmp, … (URL: protocol=).
	Protocol string
	// Outcomes keeps these outcomes; "failed" stands for every failed
	// connection (URL: outcome=a,b).
	Outcomes []string
	// Layer keeps events whose verdict at this layer (l3, l4, l7) is fail
	// or pending (URL: layer=).
	Layer string
	// State keeps "final" or "progress" events (URL: state=).
	State string
	// View keeps "pre", "post" or "direct" events (URL: view=).
	View string
}

// Values returns q as URL query parameters.
func (q *Query) Values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Since > 0 {
		v.Set("since", q.Since.String())
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Follow {
		v.Set("follow", "1")
	}
	if q.Latest {
		v.Set("latest", "1")
	}
	if q.Port != 0 {
		v.Set("port", strconv.Itoa(int(q.Port)))
	}
	set("pod", q.Pod)
	set("namespace", q.Namespace)
	set("service", q.Service)
	set("ip", q.IP)
	set("protocol", q.Protocol)
	set("outcome", strings.Join(q.Outcomes, ","))
	set("layer", q.Layer)
	set("state", q.State)
	set("view", q.View)
	return v
}

// Outcome names a Query may select (and "failed").
var outcomeNames = []string{
	"unknown", "syn_sent", "timeout", "refused", "established", "reset", "closed", "replied", "unreplied", "failed",
}

// ParseQuery reads a Query from URL parameters and checks it. Errors name
// the parameter.
func ParseQuery(v url.Values) (Query, error) {
	q := Query{
		Pod: v.Get("pod"), Namespace: v.Get("namespace"), Service: v.Get("service"), IP: v.Get("ip"),
		Protocol: strings.ToLower(v.Get("protocol")), Layer: strings.ToLower(v.Get("layer")),
		State: v.Get("state"), View: v.Get("view"),
	}
	var err error
	if s := v.Get("since"); s != "" {
		if q.Since, err = time.ParseDuration(s); err != nil || q.Since < 0 {
			return q, fmt.Errorf("since=%q: want a duration such as 5m", s)
		}
	}
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return q, fmt.Errorf("limit=%q: want a count", s)
		}
	}
	if s := v.Get("port"); s != "" {
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return q, fmt.Errorf("port=%q: want 1 to 65535", s)
		}
		q.Port = uint16(p)
	}
	q.Follow = truthy(v.Get("follow"))
	q.Latest = truthy(v.Get("latest"))
	if s := v.Get("outcome"); s != "" {
		for _, o := range strings.Split(s, ",") {
			o = strings.TrimSpace(o)
			if !slices.Contains(outcomeNames, o) {
				return q, fmt.Errorf("outcome=%q: want one of %s", o, strings.Join(outcomeNames, ", "))
			}
			q.Outcomes = append(q.Outcomes, o)
		}
	}
	if q.Layer != "" && q.Layer != "l3" && q.Layer != "l4" && q.Layer != "l7" {
		return q, fmt.Errorf("layer=%q: want l3, l4 or l7", q.Layer)
	}
	if q.State != "" && q.State != StateFinal && q.State != StateProgress {
		return q, fmt.Errorf("state=%q: want final or progress", q.State)
	}
	if q.View != "" && q.View != ViewPre && q.View != ViewPost && q.View != ViewDirect {
		return q, fmt.Errorf("view=%q: want pre, post or direct", q.View)
	}
	if q.IP != "" {
		if _, err := netip.ParseAddr(q.IP); err != nil {
			return q, fmt.Errorf("ip=%q: %w", q.IP, err)
		}
	}
	return q, nil
}

func truthy(s string) bool { return s == "1" || s == "true" || s == "yes" }

// Match reports whether c passes every filter of q (Since, Limit, Follow
// and Latest are not filters of one event).
func (q *Query) Match(c *Connection) bool {
	ends := [...]*Endpoint{&c.Client, &c.Backend, c.Service}
	if q.Pod != "" && !anyEnd(ends[:], func(e *Endpoint) bool {
		return e.Pod != "" && (e.Pod == q.Pod || e.Namespace+"/"+e.Pod == q.Pod)
	}) {
		return false
	}
	if q.Namespace != "" && !anyEnd(ends[:], func(e *Endpoint) bool { return e.Namespace == q.Namespace }) {
		return false
	}
	if q.Service != "" && !q.matchService(c) {
		return false
	}
	if q.IP != "" && !anyEnd(ends[:], func(e *Endpoint) bool { return e.IP == q.IP }) {
		return false
	}
	if q.Port != 0 && c.Backend.Port != q.Port && (c.Service == nil || c.Service.Port != q.Port) {
		return false
	}
	if q.Protocol != "" && c.Protocol != q.Protocol {
		return false
	}
	if len(q.Outcomes) > 0 && !slices.ContainsFunc(q.Outcomes, func(o string) bool {
		return o == c.Outcome || (o == "failed" && c.Failed)
	}) {
		return false
	}
	if q.Layer != "" && !slices.ContainsFunc(c.Layers, func(l Layer) bool {
		return l.Layer == q.Layer && (l.Status == StatusFail || l.Status == StatusPending)
	}) {
		return false
	}
	if q.State != "" && c.State != q.State {
		return false
	}
	if q.View != "" && c.View != q.View {
		return false
	}
	return true
}

func (q *Query) matchService(c *Connection) bool {
	s := q.Service
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return c.Service != nil && c.Service.Addr == ap.String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return c.Service != nil && c.Service.IP == a.String()
	}
	for _, e := range []*Endpoint{c.Service, &c.Backend} {
		if e != nil && e.Service != "" && (e.Service == s || e.Namespace+"/"+e.Service == s) {
			return true
		}
	}
	return false
}

func anyEnd(ends []*Endpoint, f func(*Endpoint) bool) bool {
	for _, e := range ends {
		if e != nil && f(e) {
			return true
		}
	}
	return false
}

// Latest returns the newest event of each connection view (same ID and
// View) of cs, in the order of those newest events. cs must be oldest
// first, as the agent returns events.
func Latest(cs []Connection) []Connection {
	type key struct{ id, view string }
	idx := make(map[key]int, len(cs))
	for i := range cs {
		idx[key{cs[i].ID, cs[i].View}] = i
	}
	out := make([]Connection, 0, len(idx))
	for i := range cs {
		if idx[key{cs[i].ID, cs[i].View}] == i {
			out = append(out, cs[i])
		}
	}
	return out
}

// ParseStatusSince reads the since= parameter of PathStatus: empty means
// StatusSince; the error names the parameter.
func ParseStatusSince(v url.Values) (time.Duration, error) {
	s := v.Get("since")
	if s == "" {
		return StatusSince, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > MaxStatusSince {
		return 0, fmt.Errorf("since=%s: want a duration from 1s to %v", QuoteShort(s), MaxStatusSince)
	}
	return d, nil
}
