package ondemand

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"golang.org/x/net/bpf"

	"github.com/layerscope/layerscope/agent/capture"
	"github.com/layerscope/layerscope/internal/testns"
)

// pcapDir holds tcpdump's own test captures (see testdata/README).
const pcapDir = "../../testdata/tcpdump-tests"

// oracleExprs are compiled both here and by tcpdump; the two programs must
// agree on every Ethernet frame of tcpdump's test captures.
var oracleExprs = []string{
	"host 10.244.1.8 and port 8080",
	"tcp", "udp", "icmp", "icmp6", "sctp", "ip", "ip6", "arp",
	"port 53", "src port 53", "dst port 80", "tcp port 80", "udp dst port 53", "tcp src port 443",
	"host 192.168.1.1", "src host 10.0.0.1", "dst host 10.0.0.2",
	"net 10.0.0.0/8", "src net 192.168.0.0/16", "dst net 172.16.0.0/12", "net 0.0.0.0/0",
	"host 2001:db8::1", "net 2001:db8::/32", "src net fe80::/10", "dst host ff02::1",
	"not tcp", "tcp or udp", "!(udp && port 53)", "icmp or (tcp and not port 22)",
	"(host 10.0.0.1 or host 10.0.0.2) and not (port 22 or port 80)",
	"not not ip6", "ip and not (tcp or udp or icmp)",
}

func TestFilterMatchesTcpdump(t *testing.T) {
	testns.Tool{Name: "tcpdump"}.Path(t)
	frames := ethernetFrames(t)
	if len(frames) < 1000 {
		t.Fatalf("only %d Ethernet frames in %s", len(frames), pcapDir)
	}
	for _, expr := range oracleExprs {
		t.Run(expr, func(t *testing.T) {
			out, err := exec.Command("tcpdump", "-y", "EN10MB", "-ddd", expr).Output()
			if err != nil {
				t.Fatalf("tcpdump -ddd %q: %v", expr, err)
			}
			want := vm(t, mustParse(t, string(out)))
			f, err := CompileFilter(expr)
			if err != nil {
				t.Fatal(err)
			}
			got := vm(t, f.Program)
			matched := 0
			for i, fr := range frames {
				w, err := want.Run(fr)
				if err != nil {
					t.Fatal(err)
				}
				g, err := got.Run(fr)
				if err != nil {
					t.Fatal(err)
				}
				if (w > 0) != (g > 0) {
					t.Fatalf("frame %d (%d bytes): tcpdump says %v, we say %v\n%s", i, len(fr), w > 0, g > 0,
						gopacket.NewPacket(fr, layers.LayerTypeEthernet, gopacket.Default).Dump())
				}
				if g > 0 {
					matched++
				}
			}
			t.Logf("%d of %d frames match, %d instructions", matched, len(frames), len(f.Program))
		})
	}
}

func mustParse(t *testing.T, s string) []bpf.RawInstruction {
	t.Helper()
	p, err := capture.ParseFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func vm(t *testing.T, raw []bpf.RawInstruction) *bpf.VM {
	t.Helper()
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatalf("program does not disassemble")
	}
	v, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ethernetFrames reads every frame of the Ethernet captures of pcapDir.
func ethernetFrames(t *testing.T) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(pcapDir, "*.pcap"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in %s: %v", pcapDir, err)
	}
	var out [][]byte
	for _, fn := range files {
		f, err := os.Open(fn)
		if err != nil {
			t.Fatal(err)
		}
		r, err := pcapgo.NewReader(f)
		if err != nil || r.LinkType() != layers.LinkTypeEthernet {
			f.Close()
			continue
		}
		for {
			data, _, err := r.ReadPacketData()
			if err != nil {
				break
			}
			out = append(out, data)
		}
		f.Close()
	}
	return out
}

func TestCompileFilterErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string // in the message
	}{
		{"host 10.244.1.8 and", "column 20 (end)"},
		{"(tcp", "column 1: parenthesis not closed"},
		{"tcp)", `column 4: unexpected ")"`},
		{"port 99999", `column 6: port "99999"`},
		{"hots 1.2.3.4", `column 1: unknown primitive "hots"`},
		{"host example.com", "column 6: host \"example.com\" is not an IPv4 or IPv6 address"},
		{"net 10.1.2.3/8", "has host bits set (did you mean 10.0.0.0/8?)"},
		{"tcp and and udp", `column 9: "and" where a primitive`},
		{"src 10.0.0.1", `column 5: want host, net or port, not "10.0.0.1"`},
		{"port 80 & port 81", `column 9: "&": want "&&"`},
		{"host 10.0.0.1 port 80", `column 15: unexpected "port" after a complete expression`},
		{"tcp src host 1.2.3.4", `column 9: want port, not "host"`},
		{"port $x", `column 6: unexpected character "$"`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := CompileFilter(tt.expr)
			if !errors.Is(err, ErrFilter) {
				t.Fatalf("err = %v, want ErrFilter", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCompileFilterEmpty(t *testing.T) {
	f, err := CompileFilter("  ")
	if err != nil || f.Program != nil {
		t.Fatalf("empty expression: %v, %d instructions; want every frame", err, len(f.Program))
	}
}

// TestFilterOnBuiltFrames checks the program on frames built for the lab's
// service path, independently of tcpdump.
func TestFilterOnBuiltFrames(t *testing.T) {
	build := func(src, dst string, sport, dport uint16, frag bool) []byte {
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst), Options: []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}}
		if frag {
			ip.FragOffset = 100
		}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1000}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, eth, ip, tcp); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	f, err := CompileFilter("host 10.244.1.8 and port 8080")
	if err != nil {
		t.Fatal(err)
	}
	v := vm(t, f.Program)
	tests := []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"to backend", build("10.244.0.5", "10.244.1.8", 40000, 8080, false), true},
		{"from backend", build("10.244.1.8", "10.244.0.5", 8080, 40000, false), true},
		{"other port", build("10.244.0.5", "10.244.1.8", 40000, 9090, false), false},
		{"other host", build("10.244.0.5", "10.244.0.8", 40000, 8080, false), false},
		{"to the VIP", build("10.244.0.5", "10.96.0.42", 40000, 8080, false), false},
		{"later fragment", build("10.244.0.5", "10.244.1.8", 40000, 8080, true), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := v.Run(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if (n > 0) != tt.want {
				t.Fatalf("match = %v, want %v", n > 0, tt.want)
			}
		})
	}
}

func BenchmarkCompileFilter(b *testing.B) {
	var hosts []string
	for i := range 200 {
		hosts = append(hosts, fmt.Sprintf("host 10.244.0.%d", i))
	}
	h := hostile()
	benches := []struct{ name, expr string }{
		{"service", "host 10.244.1.8 and (port 8080 or icmp)"},
		{"never matches", "host 10.244.1.8 and (port 8080 or icmp) and arp"},
		{"200 hosts", strings.Join(hosts, " or ")},
		{"1MB parentheses", h["parentheses"]},
		{"1MB bangs", h["bangs"]},
		{"8KB parentheses", strings.Repeat("(", MaxFilterLen)},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = CompileFilter(bb.expr)
			}
		})
	}
}

func BenchmarkCheckFilter(b *testing.B) {
	expr := strings.Repeat("not (tcp or udp) and ", MaxFilterLen/22) + "ip"
	b.ReportAllocs()
	b.SetBytes(int64(len(expr)))
	for b.Loop() {
		if err := CheckFilter(expr); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLimitsWithin(t *testing.T) {
	caps := Limits{Duration: time.Minute, Packets: 100, Bytes: 1 << 20, SnapLen: 1500}
	tests := []struct {
		name    string
		req     Limits
		want    Limits
		wantErr bool
	}{
		{"zero means the caps", Limits{}, caps, false},
		{"below the caps kept", Limits{Duration: time.Second, Packets: 5, Bytes: 1000, SnapLen: 128}, Limits{Duration: time.Second, Packets: 5, Bytes: 1000, SnapLen: 128}, false},
		{"above the caps lowered", Limits{Duration: time.Hour, Packets: 1e9, Bytes: 1 << 40, SnapLen: 65535}, caps, false},
		{"negative", Limits{Packets: -1}, Limits{}, true},
		{"snap length too small", Limits{SnapLen: 10}, Limits{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.req.Within(caps)
			if tt.wantErr {
				if !errors.Is(err, ErrLimits) {
					t.Fatalf("err = %v, want ErrLimits", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if d := (Limits{}).Caps(); d.Duration != DefaultMaxDuration || d.Packets != DefaultMaxPackets || d.Bytes != DefaultMaxBytes || d.SnapLen != DefaultSnapLen {
		t.Errorf("zero caps: %+v", d)
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(2)
	r1, err1 := l.Acquire()
	r2, err2 := l.Acquire()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := l.Acquire(); !errors.Is(err, ErrBusy) {
		t.Fatalf("third: %v, want ErrBusy", err)
	}
	r1()
	r1() // idempotent: must not free a second slot
	r3, err := l.Acquire()
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := l.Acquire(); !errors.Is(err, ErrBusy) {
		t.Fatalf("double release freed two slots: %v", err)
	}
	r2()
	r3()
}
