package web

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/history"
	"github.com/layerscope/layerscope/agent/server"
)

// serveConnections answers from the history. The answer is streamed: a
// first pass over the history picks the sequence numbers to send (8 bytes
// per event at most), a second encodes each event as it is written, so
// a request holds at most one event's JSON besides that list however long
// the history is. Events overwritten between the passes are left out.
func (h *Handlers) serveConnections(w http.ResponseWriter, r *http.Request) {
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
		release, ok := h.follow.Acquire()
		if !ok {
			server.Busy(w, h.follow.Cap())
			return
		}
		defer release()
		h.followStream(w, r, &q)
		return
	}
	release, ok := h.api.Acquire()
	if !ok {
		server.Busy(w, h.api.Cap())
		return
	}
	defer release()
	ctx := r.Context()
	seqs := h.selectConnections(ctx, &q)
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
		buf, _, _ = h.cfg.History.Read(seqs[i], buf[:0])
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
			c := h.connection(&buf[j])
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
func (h *Handlers) selectConnections(ctx context.Context, q *api.Query) []uint64 {
	ring := h.cfg.History
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
			c := h.connection(&buf[i])
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
func (h *Handlers) followStream(w http.ResponseWriter, r *http.Request, q *api.Query) {
	sub := h.cfg.History.Subscribe()
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
		case <-h.stopping:
			return
		case <-sub.Ready():
		}
		buf, _ = sub.Read(buf[:0])
		wrote := false
		for i := range buf {
			c := h.connection(&buf[i])
			if !q.Match(&c) {
				continue
			}
			_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.FollowWriteTimeout))
			if err := enc.Encode(&c); err != nil {
				h.dropFollower(r, err)
				return
			}
			wrote = true
		}
		if wrote {
			if err := rc.Flush(); err != nil {
				h.dropFollower(r, err)
				return
			}
		}
	}
}

func (h *Handlers) dropFollower(r *http.Request, err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return // the client went away
	}
	h.dropped.Add(1)
	h.log.Debug("follower dropped", "remote", r.RemoteAddr, "err", err, "timeout_seconds", h.cfg.FollowWriteTimeout.Seconds())
}
