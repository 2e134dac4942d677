package flow

import "time"

// Record is the state of one flow as the flow table reports it: when the
// flow ends (idle, evicted, flushed), periodically for long-lived flows, and
// in snapshots of the active flows.
//
// A Record is a plain value without pointers of its own (netip.Addr values
// only); copying it copies everything. Records handed to a consumer in a
// batch are valid only during that call: copy what you keep.
//
// Orientation: Key runs from the client (the side that initiated the flow,
// known from the first SYN, else guessed from the first packet) to the
// server, and every [2] array is indexed by FromClient and FromServer, the
// side that sent the packets counted there.
type Record struct {
	// Key is the inner transport tuple, client → server.
	Key Key
	// First and Last are the capture times (Unix nanoseconds) of the first
	// and last packet of the flow on any hop.
	First, Last int64
	// End says why the record was emitted.
	End EndReason
	// Outcome is the connection's outcome so far (final when End is final).
	Outcome Outcome
	// Tunnel is the first encapsulation the flow was seen in, if any.
	Tunnel Tunnel
	// Hops are the observation points (interfaces) the flow was seen on, in
	// the order the table first saw them; NumHops are valid.
	Hops    [MaxHops]Hop
	NumHops uint8
	// HopOverflow counts packets seen on interfaces beyond the first
	// MaxHops; they update First/Last and TCP state but no Hop.
	HopOverflow uint32
	// TCP is the TCP state of the flow (zero for other protocols).
	TCP TCP
	// L7 holds the DNS or HTTP exchanges matched within the flow.
	L7 AppInfo
}

// MaxHops is the number of observation points a flow record keeps. One
// node sees a pod-to-pod connection on at most its pod veth, bridge,
// overlay device and NIC.
const MaxHops = 4

// MaxExchanges is the number of L7 exchanges a record keeps in detail.
const MaxExchanges = 4

// MaxDNSName is the number of bytes of a DNS question name a record
// keeps: the first ones, which hold the labels that tell names apart in a
// cluster (<service>.<namespace> of <service>.<namespace>.svc.cluster.local
// fits whole while service and namespace together stay within 44
// characters). A longer name is kept as this prefix with a truncated flag.
const MaxDNSName = 64

// Sides of a flow, the index of every [2] array of a Record.
const (
	FromClient = 0
	FromServer = 1
)

// Hop is one observation point of a flow: one interface of this node.
type Hop struct {
	IfIndex int32
	Role    Role
	// Dir is the direction, at this interface, of the client's packets
	// (DirUnknown when only the server's packets were seen here).
	Dir Direction
	// Encap is the encapsulation the flow was seen in at this interface.
	Encap Encap
	// First and Last are the capture times of the first and last packet
	// seen at this interface (Unix nanoseconds).
	First, Last int64
	// Packets and Bytes (wire length) by sending side.
	Packets, Bytes [2]uint64
	// Retransmits counts TCP segments whose payload starts before the
	// highest sequence already seen from that side at this interface
	// (retransmissions and reordering alike; keep-alives excluded), plus
	// repeated SYN-ACKs for the server side.
	Retransmits [2]uint32
	// ZeroWindows counts TCP segments advertising a zero window.
	ZeroWindows [2]uint32
}

// TCP is the TCP part of a flow record.
type TCP struct {
	// Flags is the union of the TCP flags seen from either side.
	Flags uint8
	// RSTFrom and FINFrom have bit 1<<FromClient and/or 1<<FromServer set
	// when that side sent a RST or a FIN.
	RSTFrom, FINFrom uint8
	// SYNRetransmits counts repeated SYNs from the client at the
	// handshake interface.
	SYNRetransmits uint16
	// ISN is the initial sequence number of the client's SYN (valid when
	// SYN is not zero). Together with the post-DNAT tuple it identifies
	// one connection across nodes.
	ISN uint32
	// HandshakeIfIndex is the interface the handshake was timed at: the
	// one where the table first saw the SYN.
	HandshakeIfIndex int32
	// SYN, SYNACK and ACK are the capture times (Unix nanoseconds) of the
	// first SYN, the first SYN-ACK answering it and the client's first ACK
	// after that, all at HandshakeIfIndex; zero when not seen there.
	SYN, SYNACK, ACK int64
	// Retransmits and ZeroWindows are the largest per-hop counts of each
	// side (the same segment seen on several hops counts once).
	Retransmits, ZeroWindows [2]uint32
}

// ServerRTT is SYN → SYN-ACK at the handshake interface: the round trip
// from there to the server and back. Zero when either was not seen.
func (t *TCP) ServerRTT() time.Duration {
	if t.SYN == 0 || t.SYNACK == 0 {
		return 0
	}
	return time.Duration(t.SYNACK - t.SYN)
}

// ClientRTT is SYN-ACK → ACK at the handshake interface: the round trip
// from there to the client and back. Zero when either was not seen.
func (t *TCP) ClientRTT() time.Duration {
	if t.SYNACK == 0 || t.ACK == 0 {
		return 0
	}
	return time.Duration(t.ACK - t.SYNACK)
}

// HandshakeRTT is SYN → ACK at the handshake interface, the sum of
// ServerRTT and ClientRTT. Zero unless the whole handshake was seen there.
func (t *TCP) HandshakeRTT() time.Duration {
	if t.SYN == 0 || t.SYNACK == 0 || t.ACK == 0 {
		return 0
	}
	return time.Duration(t.ACK - t.SYN)
}

// AppInfo is the application part of a flow record: DNS queries matched to
// responses by message ID, or HTTP/1.x requests matched to responses in
// order, all at one interface (IfIndex, the first one an L7 message of the
// flow was seen on) so the same message seen on several hops counts once.
type AppInfo struct {
	App     App
	IfIndex int32
	// Requests and Responses count the messages seen; Errors counts
	// responses with a DNS rcode other than NOERROR or an HTTP status of
	// 500 or above; Unanswered counts requests no response matched.
	Requests, Responses, Errors, Unanswered uint32
	// Exchanges are the first matched exchanges, except that an error
	// replaces the last one when none of those kept is an error.
	Exchanges    [MaxExchanges]Exchange
	NumExchanges uint8
	// NameTruncated says the DNS question name was longer than
	// MaxDNSName bytes: Name holds its prefix.
	NameTruncated bool
	// NameLen is the length of Name; zero for HTTP and when no DNS
	// message of the flow had a readable question.
	NameLen uint8
	// Name is the DNS question name of the flow's first DNS message with
	// one (its first NameLen bytes, dotted, without the final dot). A
	// resolver asks for one name per socket (the A and AAAA queries of
	// one lookup share it), so this is the name of every exchange of the
	// flow except those marked Exchange.OtherName.
	Name [MaxDNSName]byte
}

// DNSName returns the question name of the flow's DNS messages (see Name)
// and whether it was truncated; "" when none was seen.
func (a *AppInfo) DNSName() (name string, truncated bool) {
	n := min(int(a.NameLen), len(a.Name))
	return string(a.Name[:n]), a.NameTruncated
}

// Exchange is one matched request and response.
type Exchange struct {
	// Start is the capture time of the request (Unix nanoseconds).
	Start int64
	// Latency is the time from request to response at AppInfo.IfIndex.
	Latency time.Duration
	// ID is the DNS message ID (zero for HTTP).
	ID uint16
	// Code is the DNS rcode or the HTTP status code.
	Code uint16
	// OtherName is true when the DNS query asked for another name than
	// the flow's (AppInfo.Name), as on a forwarder's long-lived socket:
	// the exchange's name is not kept.
	OtherName bool
}

// Failed reports whether the exchange's response is an error (DNS rcode
// other than NOERROR, HTTP status 500 or above) for protocol app.
func (x Exchange) Failed(app App) bool {
	if app == AppHTTP {
		return x.Code >= 500
	}
	return x.Code != 0
}

// EndReason says why a record was emitted.
type EndReason uint8

// End reasons.
const (
	EndActive  EndReason = iota // the flow is still active (snapshot or active-timeout report)
	EndIdle                     // idle longer than the timeout: removed
	EndEvicted                  // removed to make room for a new flow
	EndFlushed                  // removed by a flush (shutdown, end of a replay)
	NumEndReasons
)

var endNames = [NumEndReasons]string{"active", "idle", "evicted", "flushed"}

// String returns the reason's label value.
func (e EndReason) String() string {
	if e < NumEndReasons {
		return endNames[e]
	}
	return "unknown"
}

// Final reports whether the flow was removed from the table with this
// record (no further record of it will follow).
func (e EndReason) Final() bool { return e != EndActive }

// Outcome is what became of a connection.
type Outcome uint8

// Outcomes. For TCP they follow the handshake and teardown; other
// protocols are Replied or Unreplied.
const (
	OutcomeUnknown     Outcome = iota // TCP without an observed SYN (picked up mid-stream), still open
	OutcomeSynSent                    // SYN seen, no answer yet (flow still active)
	OutcomeTimeout                    // SYN never answered before the flow ended
	OutcomeRefused                    // SYN answered by a RST
	OutcomeEstablished                // SYN-ACK seen, not closed
	OutcomeReset                      // RST after the SYN-ACK (or mid-stream) before both FINs
	OutcomeClosed                     // FIN seen, without RST before both sides' FINs
	OutcomeReplied                    // non-TCP: both sides sent packets
	OutcomeUnreplied                  // non-TCP: only the client sent packets
	NumOutcomes
)

var outcomeNames = [NumOutcomes]string{
	"unknown", "syn_sent", "timeout", "refused", "established", "reset", "closed", "replied", "unreplied",
}

// String returns the outcome's label value.
func (o Outcome) String() string {
	if o < NumOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// Failed reports whether the outcome is a failed connection (timeout,
// refused, reset).
func (o Outcome) Failed() bool {
	return o == OutcomeTimeout || o == OutcomeRefused || o == OutcomeReset
}
