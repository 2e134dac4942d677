package netstat

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/layerscope/layerscope/lab"
)

// The fixtures were read on this kernel (6.18) from three namespaces a → r →
// b, r forwarding onto a 1280-byte link, after UDP to b without and with DF
// over IPv4 and IPv6 (see TestFixtures' comments for what each counted), and
// from the root namespace.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err, "committed fixture")
	return b
}

func TestParseSNMPFixtures(t *testing.T) {
	tests := []struct {
		file string
		want IPv4
	}{
		// a sent 2 of 3000 bytes without DF over its 1500 link: 1
		// fragmented into 3 (the other write failed with the port
		// unreachable of an earlier datagram); 4 unreachables came back.
		{"snmp-a", IPv4{FragOKs: 1, FragCreates: 3, InDestUnreachs: 4}},
		// r fragmented 2 forwarded datagrams into 4 and refused 1 with DF,
		// sending one frag-needed.
		{"snmp-r", IPv4{FragOKs: 2, FragFails: 1, FragCreates: 4, OutDestUnreachs: 1}},
		// b reassembled 3 datagrams from 7 fragments and answered each
		// with port unreachable.
		{"snmp-b", IPv4{ReasmReqds: 7, ReasmOKs: 3, OutDestUnreachs: 3}},
		{"snmp-root", IPv4{InDestUnreachs: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := fixture(t, tt.file)
			var c IPv4
			require.NoError(t, ParseSNMP(b, &c))
			require.Equal(t, tt.want, c)
			// The same values as the lab's independent parser.
			m := lab.ParseSNMP(b)
			require.Equal(t, ipv4FromMap(m), c)
		})
	}
}

func ipv4FromMap(m map[string]int64) IPv4 {
	return IPv4{
		ReasmReqds: uint64(m["Ip.ReasmReqds"]), ReasmOKs: uint64(m["Ip.ReasmOKs"]), ReasmFails: uint64(m["Ip.ReasmFails"]),
		ReasmTimeout: uint64(m["Ip.ReasmTimeout"]), FragOKs: uint64(m["Ip.FragOKs"]), FragFails: uint64(m["Ip.FragFails"]),
		FragCreates: uint64(m["Ip.FragCreates"]), InDestUnreachs: uint64(m["Icmp.InDestUnreachs"]),
		OutDestUnreachs: uint64(m["Icmp.OutDestUnreachs"]),
	}
}

func TestParseSNMP6Fixtures(t *testing.T) {
	tests := []struct {
		file string
		want IPv6
	}{
		// a fragmented 2 datagrams of 3000 bytes into 6 and got one packet
		// too big (from r) and 2 port unreachables (from b).
		{"snmp6-a", IPv6{FragOKs: 2, FragCreates: 6, InDestUnreachs: 2, InPktTooBigs: 1}},
		// b reassembled 2 datagrams from 6 fragments.
		{"snmp6-b", IPv6{ReasmReqds: 6, ReasmOKs: 2, OutDestUnreachs: 2}},
		// r could not forward one packet onto its 1280 link.
		{"snmp6-r", IPv6{InTooBigErrors: 1, FragFails: 1, OutPktTooBigs: 1}},
		{"snmp6-root", IPv6{InDestUnreachs: 1, OutDestUnreachs: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := fixture(t, tt.file)
			var c IPv6
			require.NoError(t, ParseSNMP6(b, &c))
			require.Equal(t, tt.want, c)
			// Cross-check with a plain field split.
			m := map[string]uint64{}
			for line := range strings.Lines(string(b)) {
				f := strings.Fields(line)
				require.Len(t, f, 2, "%q", line)
				v, err := strconv.ParseUint(f[1], 10, 64)
				require.NoError(t, err)
				m[f[0]] = v
			}
			require.Equal(t, IPv6{
				ReasmReqds: m["Ip6ReasmReqds"], ReasmOKs: m["Ip6ReasmOKs"], ReasmFails: m["Ip6ReasmFails"],
				ReasmTimeout: m["Ip6ReasmTimeout"], FragOKs: m["Ip6FragOKs"], FragFails: m["Ip6FragFails"],
				FragCreates: m["Ip6FragCreates"], InTooBigErrors: m["Ip6InTooBigErrors"],
				InDestUnreachs: m["Icmp6InDestUnreachs"], OutDestUnreachs: m["Icmp6OutDestUnreachs"],
				InPktTooBigs: m["Icmp6InPktTooBigs"], OutPktTooBigs: m["Icmp6OutPktTooBigs"],
			}, c)
		})
	}
}

func TestParseSNMPTolerance(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    IPv4
		wantErr bool
	}{
		{
			name: "columns reordered, unknown ones added, CRLF",
			in: "Ip: NewThing FragCreates Forwarding FragOKs\r\nIp: 7 12 1 6\r\n" +
				"Icmp: OutDestUnreachs InFuture\r\nIcmp: 3 9\r\n",
			want: IPv4{FragCreates: 12, FragOKs: 6, OutDestUnreachs: 3},
		},
		{
			name: "fields the kernel does not print read as zero",
			in:   "Ip: Forwarding DefaultTTL\nIp: 1 64\n",
		},
		{
			name: "negative values of fields not kept are fine",
			in:   "Tcp: MaxConn\nTcp: -1\nIp: FragFails\nIp: 2\n",
			want: IPv4{FragFails: 2},
		},
		{
			name: "largest counter",
			in:   "Ip: ReasmFails\nIp: 18446744073709551615\n",
			want: IPv4{ReasmFails: 1<<64 - 1},
		},
		{name: "empty", in: ""},
		{
			name:    "overflow",
			in:      "Ip: ReasmFails FragOKs\nIp: 18446744073709551616 5\n",
			want:    IPv4{FragOKs: 5},
			wantErr: true,
		},
		{
			name:    "not a number",
			in:      "Ip: FragOKs FragCreates\nIp: x1 4\n",
			want:    IPv4{FragCreates: 4},
			wantErr: true,
		},
		{
			name:    "fewer values than names",
			in:      "Ip: FragOKs FragCreates\nIp: 2\nIcmp: InDestUnreachs\nIcmp: 8\n",
			want:    IPv4{FragOKs: 2, InDestUnreachs: 8},
			wantErr: true,
		},
		{
			name:    "header without values: the next pair still parses",
			in:      "Ip: FragOKs\nIcmp: InDestUnreachs\nIcmp: 8\n",
			want:    IPv4{InDestUnreachs: 8},
			wantErr: true,
		},
		{
			name:    "truncated after a header",
			in:      "Icmp: InDestUnreachs\nIcmp: 8\nIp: FragOKs",
			want:    IPv4{InDestUnreachs: 8},
			wantErr: true,
		},
		{
			name:    "line without group",
			in:      "garbage\nIp: FragOKs\nIp: 1\n",
			want:    IPv4{FragOKs: 1},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c IPv4
			err := ParseSNMP([]byte(tt.in), &c)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrFormat)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.want, c)
		})
	}
}

func TestParseSNMP6Tolerance(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    IPv6
		wantErr bool
	}{
		{
			name: "unknown names, spaces or tabs, blank lines",
			in:   "Ip6Future 5\nIp6FragCreates\t\t9\n\nIcmp6OutPktTooBigs   4\r\n",
			want: IPv6{FragCreates: 9, OutPktTooBigs: 4},
		},
		{name: "empty", in: ""},
		{
			name:    "name without value",
			in:      "Ip6FragOKs\nIp6FragCreates 3\n",
			want:    IPv6{FragCreates: 3},
			wantErr: true,
		},
		{
			name:    "extra column",
			in:      "Ip6FragOKs 1 2\nIp6ReasmOKs 3\n",
			want:    IPv6{ReasmOKs: 3},
			wantErr: true,
		},
		{
			name:    "not a number",
			in:      "Ip6ReasmFails -1\nIp6ReasmOKs 3\n",
			want:    IPv6{ReasmOKs: 3},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c IPv6
			err := ParseSNMP6([]byte(tt.in), &c)
			if tt.wantErr {
				require.ErrorIs(t, err, ErrFormat)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.want, c)
		})
	}
}

func TestReadFilesWithoutIPv6(t *testing.T) {
	var c Counters
	require.NoError(t, readFiles(&c, "testdata/snmp-r", "testdata/no-such-snmp6"))
	require.False(t, c.IPv6Present)
	require.Equal(t, IPv6{}, c.IPv6)
	require.Equal(t, uint64(4), c.IPv4.FragCreates)

	c = Counters{}
	require.NoError(t, readFiles(&c, "testdata/snmp-r", "testdata/snmp6-r"))
	require.True(t, c.IPv6Present)
	require.Equal(t, uint64(1), c.IPv6.OutPktTooBigs)

	c = Counters{}
	err := readFiles(&c, "testdata/no-such-snmp", "testdata/snmp6-r")
	var op *OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "open", op.Op)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"snmp-r", "snmp6-a"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte("Ip: FragOKs\nIp: 99999999999999999999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c4 IPv4
		var c6 IPv6
		err4 := ParseSNMP(b, &c4)
		err6 := ParseSNMP6(b, &c6)
		// Parsing is deterministic and only ever fails with ErrFormat.
		var d4 IPv4
		var d6 IPv6
		require.Equal(t, err4, ParseSNMP(b, &d4))
		require.Equal(t, err6, ParseSNMP6(b, &d6))
		require.Equal(t, c4, d4)
		require.Equal(t, c6, d6)
		if err4 != nil {
			require.ErrorIs(t, err4, ErrFormat)
		}
		if err6 != nil {
			require.ErrorIs(t, err6, ErrFormat)
		}
	})
}

func BenchmarkParseSNMP(b *testing.B) {
	in := fixture(b, "snmp-r")
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var c IPv4
		if err := ParseSNMP(in, &c); err != nil || c.FragCreates != 4 {
			b.Fatal(err, c)
		}
	}
}

func BenchmarkParseSNMP6(b *testing.B) {
	in := fixture(b, "snmp6-a")
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		var c IPv6
		if err := ParseSNMP6(in, &c); err != nil || c.FragCreates != 6 {
			b.Fatal(err, c)
		}
	}
}
