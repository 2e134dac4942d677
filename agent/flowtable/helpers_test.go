package flowtable

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
)

var (
	client = netip.MustParseAddr("10.244.0.5")
	server = netip.MustParseAddr("10.244.1.8")
	node1  = netip.MustParseAddr("10.0.0.10")
	node2  = netip.MustParseAddr("10.0.0.11")
	base   = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano()
)

func tcpKey(sport uint16) flow.Key {
	return flow.Key{Src: client, Dst: server, SrcPort: sport, DstPort: 8080, Proto: flow.ProtoTCP}
}

func udpKey(sport, dport uint16) flow.Key {
	return flow.Key{Src: client, Dst: server, SrcPort: sport, DstPort: dport, Proto: flow.ProtoUDP}
}

// step is one synthetic packet of a flow given by its client → server key.
type step struct {
	at      time.Duration // since base
	srv     bool          // sent by the server
	ifIndex int32         // zero means 1
	dir     flow.Direction
	flags   uint8
	seq     uint32
	payload uint16
	zeroWin bool
	len     uint32 // zero means 60 + payload
	tunnel  flow.Tunnel
	app     flow.App
	resp    bool
	dnsID   uint16
	rcode   uint8
	status  uint16
	// name is the DNS question name; it is cut to flow.MaxDNSName bytes
	// and flagged truncated as the pipeline does.
	name string
}

func (s step) packet(k flow.Key) flow.Packet {
	if s.srv {
		k = k.Reverse()
	}
	p := flow.Packet{
		Key:        k,
		Time:       base + int64(s.at),
		Len:        s.len,
		IfIndex:    s.ifIndex,
		Dir:        s.dir,
		Tunnel:     s.tunnel,
		TCPFlags:   s.flags,
		Seq:        s.seq,
		PayloadLen: s.payload,
		Window:     65535,
		App:        s.app,
		Response:   s.resp,
		DNSID:      s.dnsID,
		DNSRcode:   s.rcode,
		HTTPStatus: s.status,
	}
	n := copy(p.DNSName[:], s.name)
	p.DNSNameLen, p.DNSNameTruncated = uint8(n), n < len(s.name)
	if p.IfIndex == 0 {
		p.IfIndex = 1
	}
	if p.Len == 0 {
		p.Len = 60 + uint32(s.payload)
	}
	if s.zeroWin {
		p.Window = 0
	}
	return p
}

func feed(t *testing.T, tab *Table, k flow.Key, steps []step) {
	t.Helper()
	for i, s := range steps {
		p := s.packet(k)
		if !tab.Update(&p) {
			t.Fatalf("step %d: Update refused the packet", i)
		}
	}
}

// collector gathers the records a table emits, copied.
type collector struct {
	mu      sync.Mutex
	records []flow.Record
	batches []int
}

func (c *collector) add(b []flow.Record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, b...)
	c.batches = append(c.batches, len(b))
}

func (c *collector) take() []flow.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.records
	c.records, c.batches = nil, nil
	return r
}

func newTable(t testing.TB, cfg Config) (*Table, *collector) {
	t.Helper()
	c := &collector{}
	if cfg.OnRecords == nil {
		cfg.OnRecords = c.add
	}
	tab, err := New(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tab, c
}

const (
	syn    = flow.TCPSyn
	ack    = flow.TCPAck
	synack = flow.TCPSyn | flow.TCPAck
	psh    = flow.TCPPsh | flow.TCPAck
	finack = flow.TCPFin | flow.TCPAck
	rstack = flow.TCPRst | flow.TCPAck
	us     = time.Microsecond
	ms     = time.Millisecond
)
