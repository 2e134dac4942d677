package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

// agentServer serves an agent's API answers: conns for a listing, the
// same events one by one (spaced by gap) for a follow stream, and st.
func agentServer(t *testing.T, node string, conns []api.Connection, gap time.Duration, st *api.Status) Agent {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case api.PathStatus:
			if st == nil {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			_ = json.NewEncoder(w).Encode(st)
		case api.PathConnections:
			if r.URL.Query().Get("follow") == "" {
				_ = json.NewEncoder(w).Encode(conns)
				return
			}
			for _, c := range conns {
				_ = json.NewEncoder(w).Encode(c)
				w.(http.Flusher).Flush()
				select {
				case <-time.After(gap):
				case <-r.Context().Done():
					return
				}
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := api.NewClient(api.ClientConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return Agent{Node: node, Client: c}
}

func events(node string, base time.Time, offsets ...int) []api.Connection {
	var out []api.Connection
	for i, o := range offsets {
		out = append(out, api.Connection{Time: base.Add(time.Duration(o) * time.Millisecond), Seq: uint64(i + 1), Node: node})
	}
	return out
}

func TestConnectionsMergedInTimeOrder(t *testing.T) {
	base := time.Now().Truncate(time.Second)
	a := agentServer(t, "node-1", events("node-1", base, 0, 20, 40), 0, nil)
	b := agentServer(t, "node-2", events("", base, 10, 30), 0, nil) // no node name: the agent's
	got, err := Connections(context.Background(), []Agent{a, b}, api.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, c := range got {
		order = append(order, c.Node+"@"+c.Time.Sub(base).String())
	}
	want := []string{"node-1@0s", "node-2@10ms", "node-1@20ms", "node-2@30ms", "node-1@40ms"}
	if !slices.Equal(order, want) {
		t.Errorf("merged %v, want %v", order, want)
	}
	got, _ = Connections(context.Background(), []Agent{a, b}, api.Query{Limit: 2})
	if len(got) != 2 || !got[0].Time.Equal(base.Add(30*time.Millisecond)) {
		t.Errorf("limit 2 kept %v, want the newest two", got)
	}
	down := agentServer(t, "node-3", nil, 0, nil)
	down.Client, _ = api.NewClient(api.ClientConfig{URL: "http://127.0.0.1:1"})
	got, err = Connections(context.Background(), []Agent{a, down}, api.Query{})
	var ne *NodeError
	if len(got) != 3 || !errors.As(err, &ne) || ne.Node != "node-3" {
		t.Errorf("one agent down: %d events, error %v; want node-1's three and node-3 named", len(got), err)
	}
}

// TestFollowReorders follows two nodes whose streams interleave in time but
// arrive out of order (node-2's stream lags): the merged output is in time
// order.
func TestFollowReorders(t *testing.T) {
	now := time.Now()
	a := agentServer(t, "node-1", events("node-1", now, 0, 100, 200), 50*time.Millisecond, nil)
	b := agentServer(t, "node-2", events("node-2", now.Add(-time.Second), 1050, 1150), 100*time.Millisecond, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var got []time.Time
	err := Follow(ctx, []Agent{a, b}, api.Query{}, 300*time.Millisecond, func(c *api.Connection) error {
		got = append(got, c.Time)
		if len(got) == 5 {
			cancel()
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || !slices.IsSortedFunc(got, time.Time.Compare) {
		t.Errorf("followed %v: want five events in time order", got)
	}
}

func TestStatusesWorstFirst(t *testing.T) {
	eta := 120.0
	healthy := &api.Status{Node: "node-a", Ready: true, Conntrack: &api.ConntrackStatus{Fill: 0.1}}
	filling := &api.Status{Node: "node-b", Ready: true, Conntrack: &api.ConntrackStatus{Fill: 0.8, ETA: &eta}}
	dead := &api.Status{Node: "node-c", Ready: true, Services: []api.ServiceStatus{{Service: "default/my-service", Backend: "10.244.1.8:8080", Dead: true}}}
	agents := []Agent{
		agentServer(t, "node-a", nil, 0, healthy),
		agentServer(t, "node-b", nil, 0, filling),
		agentServer(t, "node-c", nil, 0, dead),
		agentServer(t, "node-d", nil, 0, nil),
	}
	var order []string
	for _, n := range Statuses(context.Background(), agents) {
		order = append(order, n.Node)
	}
	if want := []string{"node-d", "node-c", "node-b", "node-a"}; !slices.Equal(order, want) {
		t.Errorf("order %v, want %v (unreachable, dead backend, conntrack full soon, healthy)", order, want)
	}
}
