package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// More paths of the agent's listener.
const (
	// PathCapture answers GET with a pcap stream of the packets a
	// CaptureRequest selects (on-demand capture, off unless the agent
	// runs with --capture-api).
	PathCapture = "/api/v1/capture"
	// PathMetrics is the Prometheus exposition.
	PathMetrics = "/metrics"
	// PathHealthz answers while the process runs; PathReadyz once the
	// interfaces present at start are captured.
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// Response headers and trailers of PathCapture.
const (
	HeaderCaptureLimits     = "Layerscope-Capture-Limits"     // the effective limits
	HeaderCaptureInterfaces = "Layerscope-Capture-Interfaces" // comma-separated names
	TrailerCapturePackets   = "Layerscope-Capture-Packets"
	TrailerCaptureBytes     = "Layerscope-Capture-Bytes"
	TrailerCaptureDropped   = "Layerscope-Capture-Dropped"
	TrailerCaptureStop      = "Layerscope-Capture-Stop"
)

// Query keys of PathCapture.
const (
	KeyFilter     = "filter"
	KeyDuration   = "duration"
	KeyMaxPackets = "max_packets"
	KeyMaxBytes   = "max_bytes"
	KeySnapLen    = "snaplen"
	KeyInterface  = "interface"
)

// CaptureRequest asks an agent for an on-demand capture. Zero fields mean
// the agent's caps (Duration, MaxPackets, MaxBytes, SnapLen), every packet
// (Filter) and the pod, overlay and uplink interfaces (Interfaces).
type CaptureRequest struct {
	// Filter is a tcpdump-style expression.
	Filter     string
	Duration   time.Duration
	MaxPackets int64
	MaxBytes   int64
	SnapLen    int
	// Interfaces are interface name globs (path.Match).
	Interfaces []string
}

// Values returns r as URL query parameters of PathCapture.
func (r *CaptureRequest) Values() url.Values {
	q := url.Values{}
	set := func(k, v string, ok bool) {
		if ok {
			q.Set(k, v)
		}
	}
	set(KeyFilter, r.Filter, r.Filter != "")
	set(KeyDuration, r.Duration.String(), r.Duration > 0)
	set(KeyMaxPackets, strconv.FormatInt(r.MaxPackets, 10), r.MaxPackets > 0)
	set(KeyMaxBytes, strconv.FormatInt(r.MaxBytes, 10), r.MaxBytes > 0)
	set(KeySnapLen, strconv.Itoa(r.SnapLen), r.SnapLen > 0)
	set(KeyInterface, strings.Join(r.Interfaces, ","), len(r.Interfaces) > 0)
	return q
}

// ParseCaptureRequest reads a CaptureRequest from URL query parameters.
// Errors name the parameter by the CLI's flag spelling (--duration, …)
// and quote at most MaxQuoted bytes of what the client sent.
func ParseCaptureRequest(q url.Values) (CaptureRequest, error) {
	r := CaptureRequest{Filter: q.Get(KeyFilter)}
	var err error
	if s := q.Get(KeyDuration); s != "" {
		if r.Duration, err = time.ParseDuration(s); err != nil || r.Duration < 0 {
			return r, fmt.Errorf("--duration %s: want a positive duration such as 30s", QuoteShort(s))
		}
	}
	for _, p := range []struct {
		key string
		dst *int64
	}{{KeyMaxPackets, &r.MaxPackets}, {KeyMaxBytes, &r.MaxBytes}} {
		if s := q.Get(p.key); s != "" {
			if *p.dst, err = strconv.ParseInt(s, 10, 64); err != nil || *p.dst < 0 {
				return r, fmt.Errorf("--%s %s: want a non-negative integer", strings.ReplaceAll(p.key, "_", "-"), QuoteShort(s))
			}
		}
	}
	if s := q.Get(KeySnapLen); s != "" {
		if r.SnapLen, err = strconv.Atoi(s); err != nil {
			return r, fmt.Errorf("--snaplen %s: want an integer", QuoteShort(s))
		}
	}
	if s := q.Get(KeyInterface); s != "" {
		r.Interfaces = strings.Split(s, ",")
		for _, g := range r.Interfaces {
			if _, err := path.Match(g, ""); err != nil {
				return r, fmt.Errorf("--interface %s: %w", QuoteShort(g), err)
			}
		}
	}
	return r, nil
}

// MaxQuoted is how much of a client's input an error or a log line quotes.
const MaxQuoted = 128

// Shorten returns s cut to n bytes (at a rune boundary) with "…" when cut.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && (s[n]&0xC0) == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// QuoteShort quotes s cut to MaxQuoted bytes: a client's input in an error
// or a log line never costs more than that.
func QuoteShort(s string) string { return strconv.Quote(Shorten(s, MaxQuoted)) }

// CaptureStream is an on-demand capture as it arrives: Body is the pcap
// stream; after it is read to its end, Result reports the agent's trailers.
type CaptureStream struct {
	// Interfaces and Limits are what the agent captures on and the limits
	// it applies (its caps win over the request).
	Interfaces, Limits string
	Body               interface {
		Read([]byte) (int, error)
		Close() error
	}
	resp *http.Response
}

// CaptureResult is what the agent's trailers say once the stream ended.
// Stop is empty when the stream was cut before the agent finished it.
type CaptureResult struct {
	Packets, Bytes, Dropped, Stop string
}

// Result returns the trailers of the capture; call it after Body returned
// io.EOF.
func (s *CaptureStream) Result() CaptureResult {
	tr := s.resp.Trailer
	return CaptureResult{Packets: tr.Get(TrailerCapturePackets), Bytes: tr.Get(TrailerCaptureBytes),
		Dropped: tr.Get(TrailerCaptureDropped), Stop: tr.Get(TrailerCaptureStop)}
}

// Capture asks the agent for the capture r describes and returns its stream;
// only ctx bounds it. The caller closes the Body.
func (c *Client) Capture(ctx context.Context, r CaptureRequest) (*CaptureStream, error) {
	resp, err := c.get(ctx, PathCapture, r.Values())
	if err != nil {
		return nil, err
	}
	return &CaptureStream{Interfaces: resp.Header.Get(HeaderCaptureInterfaces), Limits: resp.Header.Get(HeaderCaptureLimits),
		Body: resp.Body, resp: resp}, nil
}
