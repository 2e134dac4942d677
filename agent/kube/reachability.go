package kube

import (
	"fmt"
	"net/http"
)

// reachability wraps the API client's transport to notice an API server
// that went away: client-go retries a watch whose connection is refused
// without telling the informers' error handlers, so without it an outage
// would go unlogged. A request that fails before any response reports the
// error; one that gets a response (whatever its status) reports nil.
type reachability struct {
	rt     http.RoundTripper
	report func(error)
}

func (r reachability) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	switch {
	case err == nil:
		r.report(nil)
	case req.Context().Err() == nil: // not the agent stopping
		r.report(fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err))
	}
	return resp, err
}

// onTransport logs the first transport error of an outage and the
// recovery, sharing the once-per-streak state of onWatchError.
func (s *Source) onTransport(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil && !s.unreachable:
		s.unreachable = true
		if !s.failed {
			s.failed = true
			s.log.Warn("Kubernetes API not reachable, services and pods keep their last known labels until it is", "err", err)
		}
	case err == nil && s.unreachable:
		s.unreachable = false
		if s.failed {
			s.failed = false
			s.log.Info("Kubernetes metadata available again")
		}
	}
}

// wrapTransport is the rest.Config transport wrapper installing
// reachability.
func (s *Source) wrapTransport(rt http.RoundTripper) http.RoundTripper {
	return reachability{rt: rt, report: s.onTransport}
}
