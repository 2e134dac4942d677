package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// natWatch records, from conntrack NEW events of the nodes (read only),
// which backend each TCP connection was DNATed to. Events are needed rather
// than a dump because the kernel deletes the entry of a connection whose
// only reply was a RST, as with a dead backend.
type natWatch struct {
	lab   *Lab
	mu    sync.Mutex
	seen  map[string]map[netip.AddrPort]string // node → original source → backend
	stops []func()
}

func (l *Lab) watchNAT() (*natWatch, error) {
	w := &natWatch{lab: l, seen: map[string]map[netip.AddrPort]string{}}
	for _, n := range l.nodes {
		if err := w.start(n.Name); err != nil {
			w.stop()
			return nil, err
		}
	}
	return w, nil
}

func (w *natWatch) start(node string) error {
	ns, err := w.lab.Namespace(node)
	if err != nil {
		return err
	}
	var c *conntrack.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = conntrack.Dial(nil)
		return err
	}); err != nil {
		return fmt.Errorf("conntrack events in %s: %w", ns.Name(), err)
	}
	_ = c.SetReadBuffer(1 << 20)
	evs := make(chan conntrack.Event, 256)
	errs, err := c.Listen(evs, 1, []netfilter.NetlinkGroup{netfilter.GroupCTNew})
	if err != nil {
		c.Close()
		return fmt.Errorf("conntrack events in %s: %w", ns.Name(), err)
	}
	table := map[netip.AddrPort]string{}
	w.seen[node] = table
	closed := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev := <-evs:
				f := ev.Flow
				if f == nil || f.TupleOrig.Proto.Protocol != unix.IPPROTO_TCP {
					continue
				}
				src := netip.AddrPortFrom(f.TupleOrig.IP.SourceAddress, f.TupleOrig.Proto.SourcePort)
				w.mu.Lock()
				if name := w.lab.nameOf(f.TupleReply.IP.SourceAddress); name != "" {
					table[src] = name
				}
				w.mu.Unlock()
			case err := <-errs:
				w.lab.log.Warn("conntrack event watch stopped", "node", node, "err", err)
			case <-closed:
				return
			}
		}
	}()
	w.stops = append(w.stops, func() {
		_ = c.Close() // workers exit; the loop above keeps draining meanwhile
		close(closed)
		<-done
	})
	return nil
}

// settle waits until no event arrived for a short while, so that the events
// of the last connections are in.
func (w *natWatch) stop() {
	for _, s := range w.stops {
		s()
	}
	w.stops = nil
}

// resolve fills DNATBackend of the requests that went through a DNAT.
func (w *natWatch) resolve(r *Report) error {
	// Events arrive asynchronously, later still on a loaded machine: wait
	// until every translated request has its event, up to a deadline.
	var missing int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		missing = w.fill(r)
		if missing == 0 || time.Now().After(deadline) {
			break
		}
	}
	if missing > 0 {
		return fmt.Errorf("%w: %d requests", ErrNoNATEvent, missing)
	}
	return nil
}

// fill sets the DNAT backend of every translated request whose NEW event
// arrived and returns the number still missing.
func (w *natWatch) fill(r *Report) (missing int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range r.Requests {
		q := &r.Requests[i]
		if q.NATNode == "" || !q.Source.IsValid() {
			continue
		}
		q.DNATBackend = w.seen[q.NATNode][q.Source]
		if q.DNATBackend == "" {
			missing++
		}
	}
	return missing
}

// ErrNoNATEvent reports that the lab could not tell, for some requests,
// which backend the DNAT picked (their conntrack NEW events never came):
// the traffic itself ran, only that part of the ground truth is missing.
var ErrNoNATEvent = errors.New("no conntrack NEW event seen")
