package flowtable

import (
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

// TestL7RetransmitCountedOnce: an HTTP message in a retransmitted segment
// (one starting before the highest sequence number its side sent) is the
// message already counted, also when the sequence numbers wrap around 2^32
// between messages; a message after a gap in the capture still counts.
func TestL7RetransmitCountedOnce(t *testing.T) {
	const wrap = 0xffffffc0 // the client's second request crosses 2^32
	handshake := func(isn uint32) []step {
		return []step{
			{flags: syn, seq: isn},
			{at: 100 * us, srv: true, flags: synack, seq: 5000},
			{at: 200 * us, flags: ack, seq: isn + 1},
		}
	}
	req := func(at int, seq uint32) step {
		return step{at: msd(at), flags: psh, seq: seq, payload: 80, app: flow.AppHTTP}
	}
	resp := func(at int, seq uint32, status uint16) step {
		return step{at: msd(at), srv: true, flags: psh, seq: seq, payload: 100, app: flow.AppHTTP, resp: true, status: status}
	}
	for _, tt := range []struct {
		name          string
		isn           uint32
		steps         func(isn uint32) []step
		requests      uint64
		responses2xx  uint64
		responses5xx  uint64
		exchanges     uint8
		unanswered    uint32
		retransmitted uint32 // the client's retransmitted segments
	}{
		{"request and response retransmitted", 1000, func(c uint32) []step {
			return []step{req(1, c+1), req(201, c+1), resp(202, 5001, 200), resp(402, 5001, 200), resp(602, 5001, 200)}
		}, 1, 1, 0, 1, 0, 1},
		{"keep-alive, wrapping", wrap, func(c uint32) []step {
			return []step{
				req(1, c+1), resp(2, 5001, 200),
				req(3, c+81), req(203, c+81), resp(204, 5101, 503), resp(404, 5101, 503),
				req(405, c+161), resp(406, 5201, 200),
			}
		}, 3, 2, 1, 3, 0, 1},
		{"gap in the capture", wrap, func(c uint32) []step {
			return []step{req(1, c+1), req(2, c+1001), resp(3, 5001, 200)}
		}, 2, 1, 0, 1, 1, 0},
		{"repacketized: old and new data in one segment", 1000, func(c uint32) []step {
			return []step{req(1, c+1), {at: msd(201), flags: psh, seq: c + 1, payload: 160, app: flow.AppHTTP}, resp(202, 5001, 200)}
		}, 1, 1, 0, 1, 0, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tab, col := newTable(t, Config{})
			feed(t, tab, tcpKey(40000), append(handshake(tt.isn), tt.steps(tt.isn)...))
			st := tab.Stats()
			if st.Requests[flow.AppHTTP] != tt.requests || st.Responses[flow.AppHTTP][2] != tt.responses2xx || st.Responses[flow.AppHTTP][5] != tt.responses5xx {
				t.Errorf("requests %d, responses 2xx %d 5xx %d; want %d, %d, %d", st.Requests[flow.AppHTTP],
					st.Responses[flow.AppHTTP][2], st.Responses[flow.AppHTTP][5], tt.requests, tt.responses2xx, tt.responses5xx)
			}
			tab.Flush()
			rs := col.take()
			if len(rs) != 1 {
				t.Fatalf("%d records", len(rs))
			}
			r := rs[0]
			if uint64(r.L7.Requests) != tt.requests || r.L7.NumExchanges != tt.exchanges || r.L7.Unanswered != tt.unanswered {
				t.Errorf("record: requests %d exchanges %d unanswered %d; want %d, %d, %d", r.L7.Requests, r.L7.NumExchanges, r.L7.Unanswered, tt.requests, tt.exchanges, tt.unanswered)
			}
			if r.TCP.Retransmits[0] != tt.retransmitted {
				t.Errorf("client retransmits %d, want %d", r.TCP.Retransmits[0], tt.retransmitted)
			}
		})
	}
}

func msd(n int) time.Duration { return time.Duration(n) * ms }
