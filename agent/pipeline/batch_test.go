package pipeline

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/flowtable"
	"github.com/layerscope/layerscope/decoders/parser"
)

// A worker handing its packets over in batches leaves the flow table as one
// that hands them over one by one: the same flows with the same records and
// the same counters, once its batch is flushed, for any batch size and
// flushes at any point.
func TestBatchedWorkerEqualsUnbatched(t *testing.T) {
	frames, metas := loadFrames(t, "vxlan.pcap", "geneve.pcap", "dns_tcp.pcap", "dns_udp.pcap", "ipv4_tcp_http_xml.pcap",
		"tcp-handshake-nano.pcap", "accecn_handshake.pcap", "ip6_frag_asan.pcap", "dns_udp_2.pcap", "ipv4_tcp_http_xml_tso.pcap")
	if len(frames) < 50 {
		t.Fatalf("only %d frames", len(frames))
	}
	for _, size := range []int{2, 7, flowtable.MaxBatch, 10 * flowtable.MaxBatch} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			one, tOne := newWorker(t)
			batched, tBatched := newWorker(t)
			batched.SetBatch(size)
			now := time.Now().UnixNano()
			for round := range 3 {
				for i, f := range frames {
					m := metas[i]
					m.Time = now + int64(round*len(frames)+i)*1000
					m.IfIndex = int32(1 + i%2) // two hops of each flow
					one.Handle(f, &m)
					batched.Handle(f, &m)
					if i%97 == 0 {
						batched.Flush() // a ring block's end
					}
				}
			}
			one.Publish()
			batched.Publish() // flushes
			var c1, c2 Counters
			one.AddTo(&c1)
			batched.AddTo(&c2)
			if c1 != c2 {
				t.Error("counters differ")
			}
			if s1, s2 := tOne.Stats(), tBatched.Stats(); s1 != s2 {
				t.Errorf("table stats differ:\n%+v\n%+v", s1, s2)
			}
			r1, r2 := sortedRecords(tOne), sortedRecords(tBatched)
			if len(r1) < 10 {
				t.Fatalf("only %d flows", len(r1))
			}
			if !slices.Equal(r1, r2) {
				t.Errorf("flows differ: %d and %d", len(r1), len(r2))
			}
		})
	}
}

func sortedRecords(t *flowtable.Table) []flow.Record {
	rs := t.Snapshot(nil)
	slices.SortFunc(rs, func(a, b flow.Record) int {
		return cmpString(fmt.Sprint(a.Key), fmt.Sprint(b.Key))
	})
	return rs
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// SetBatch on a worker without a flow table, or with a table that takes no
// batches, leaves it handing packets over one by one.
func TestSetBatchWithoutBatchTable(t *testing.T) {
	w, err := NewWorker(parser.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.SetBatch(64)
	if w.batch != nil {
		t.Error("a worker without a table batches")
	}
}
