package netstat

import "bytes"

// Counters are one namespace's fragmentation and ICMP counters. Every value
// is a running total since the namespace was created.
type Counters struct {
	IPv4 IPv4
	IPv6 IPv6
	// IPv6Present is false when the kernel has no /proc/net/snmp6 (IPv6
	// compiled out or disabled at boot); IPv6 is then zero.
	IPv6Present bool
}

// IPv4 holds the /proc/net/snmp counters of the Ip and Icmp groups that
// concern fragmentation.
type IPv4 struct {
	// Reassembly of fragments received for this host: fragments that
	// needed reassembly, datagrams reassembled, reassembly failures of any
	// kind (timeouts included), and datagrams whose fragments did not all
	// arrive within the reassembly timeout.
	ReasmReqds, ReasmOKs, ReasmFails, ReasmTimeout uint64
	// Fragmentation of datagrams sent or forwarded: datagrams fragmented,
	// datagrams that needed fragmenting but could not be (DF set: each one
	// answered with "fragmentation needed" when forwarded), and fragments
	// created.
	FragOKs, FragFails, FragCreates uint64
	// ICMP destination unreachable messages (type 3, any code) received
	// and sent.
	InDestUnreachs, OutDestUnreachs uint64
}

// IPv6 holds the /proc/net/snmp6 counters that concern fragmentation and
// path MTU.
type IPv6 struct {
	// Reassembly: as for IPv4 (Ip6ReasmReqds, Ip6ReasmOKs, Ip6ReasmFails,
	// Ip6ReasmTimeout).
	ReasmReqds, ReasmOKs, ReasmFails, ReasmTimeout uint64
	// Fragmentation at the source (IPv6 routers never fragment):
	// Ip6FragOKs, Ip6FragFails, Ip6FragCreates.
	FragOKs, FragFails, FragCreates uint64
	// InTooBigErrors counts packets this node could not forward because
	// they exceeded the outgoing link's MTU (Ip6InTooBigErrors).
	InTooBigErrors uint64
	// ICMPv6 destination unreachable (type 1) and packet too big (type 2),
	// received and sent.
	InDestUnreachs, OutDestUnreachs uint64
	InPktTooBigs, OutPktTooBigs     uint64
}

// ParseSNMP fills c from the content of /proc/net/snmp. Fields absent from b
// are left as they are; callers start from a zero IPv4. On ErrFormat the
// fields of well-formed lines are still set. ParseSNMP does not allocate.
func ParseSNMP(b []byte, c *IPv4) error {
	var err error
	for len(b) > 0 {
		var hdr, vals []byte
		hdr, b = nextLine(b)
		colon := bytes.IndexByte(hdr, ':')
		if colon < 0 {
			if len(bytes.TrimSpace(hdr)) != 0 {
				err = ErrFormat
			}
			continue
		}
		vals, rest := nextLine(b)
		if !bytes.HasPrefix(vals, hdr[:colon+1]) {
			// A header without its values: the next line starts a new pair.
			err = ErrFormat
			continue
		}
		b = rest
		var group int
		switch string(hdr[:colon]) {
		case "Ip":
			group = groupIP
		case "Icmp":
			group = groupICMP
		default:
			continue
		}
		hdr, vals = hdr[colon+1:], vals[colon+1:]
		for {
			var name, val []byte
			name, hdr = nextField(hdr)
			val, vals = nextField(vals)
			if len(name) == 0 || len(val) == 0 {
				if len(name) != len(val) {
					err = ErrFormat
				}
				break
			}
			dst := c.field(group, name)
			if dst == nil {
				continue
			}
			v, ok := parseUint(val)
			if !ok {
				err = ErrFormat
				continue
			}
			*dst = v
		}
	}
	return err
}

const (
	groupIP = iota
	groupICMP
)

func (c *IPv4) field(group int, name []byte) *uint64 {
	if group == groupICMP {
		switch string(name) {
		case "InDestUnreachs":
			return &c.InDestUnreachs
		case "OutDestUnreachs":
			return &c.OutDestUnreachs
		}
		return nil
	}
	switch string(name) {
	case "ReasmReqds":
		return &c.ReasmReqds
	case "ReasmOKs":
		return &c.ReasmOKs
	case "ReasmFails":
		return &c.ReasmFails
	case "ReasmTimeout":
		return &c.ReasmTimeout
	case "FragOKs":
		return &c.FragOKs
	case "FragFails":
		return &c.FragFails
	case "FragCreates":
		return &c.FragCreates
	}
	return nil
}

// ParseSNMP6 fills c from the content of /proc/net/snmp6, with the same
// rules as ParseSNMP. It does not allocate.
func ParseSNMP6(b []byte, c *IPv6) error {
	var err error
	for len(b) > 0 {
		var line, name, val []byte
		line, b = nextLine(b)
		name, line = nextField(line)
		if len(name) == 0 {
			continue
		}
		val, line = nextField(line)
		if len(val) == 0 || len(bytes.TrimSpace(line)) != 0 {
			err = ErrFormat
			continue
		}
		dst := c.field(name)
		if dst == nil {
			continue
		}
		v, ok := parseUint(val)
		if !ok {
			err = ErrFormat
			continue
		}
		*dst = v
	}
	return err
}

func (c *IPv6) field(name []byte) *uint64 {
	switch string(name) {
	case "Ip6ReasmReqds":
		return &c.ReasmReqds
	case "Ip6ReasmOKs":
		return &c.ReasmOKs
	case "Ip6ReasmFails":
		return &c.ReasmFails
	case "Ip6ReasmTimeout":
		return &c.ReasmTimeout
	case "Ip6FragOKs":
		return &c.FragOKs
	case "Ip6FragFails":
		return &c.FragFails
	case "Ip6FragCreates":
		return &c.FragCreates
	case "Ip6InTooBigErrors":
		return &c.InTooBigErrors
	case "Icmp6InDestUnreachs":
		return &c.InDestUnreachs
	case "Icmp6OutDestUnreachs":
		return &c.OutDestUnreachs
	case "Icmp6InPktTooBigs":
		return &c.InPktTooBigs
	case "Icmp6OutPktTooBigs":
		return &c.OutPktTooBigs
	}
	return nil
}

// nextLine splits b at its first newline.
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// nextField returns the first run of non-blank bytes of b and what follows.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' && b[j] != '\r' {
		j++
	}
	return b[i:j], b[j:]
}

// parseUint parses an unsigned decimal number that fits in 64 bits.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, ch := range b {
		d := uint64(ch - '0')
		if d > 9 || v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
