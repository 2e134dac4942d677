package ondemand

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

// compileNoPanic is CompileFilter with a panic turned into a test failure.
func compileNoPanic(t *testing.T, expr string) (f Filter, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("CompileFilter(%s) panics: %v", quote(expr), r)
		}
	}()
	return CompileFilter(expr)
}

// Defect 1: a protocol with a direction and no port panicked (index out of
// range) instead of reporting a syntax error.
func TestFilterDirectionWithoutPort(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"tcp src", `column 8 (end): want port after "src"`},
		{"udp dst", `column 8 (end): want port after "dst"`},
		{"not tcp src", `column 12 (end): want port after "src"`},
		{"(sctp dst)", `column 10: want port, not ")"`},
		{"tcp src and udp", `column 9: want port, not "and"`},
		{"tcp port", `column 9 (end): "port" needs a value`},
		{"src", `column 4 (end): want host, net or port after "src"`},
		{"src or dst", `column 11 (end): want host, net or port after "dst"`},
		{"tcp src or dst", `column 15 (end): want port after "dst"`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := compileNoPanic(t, tt.expr)
			if !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrFilter with %q", err, tt.want)
			}
		})
	}
}

// hostile are expressions of a megabyte meant to exhaust the compiler.
func hostile() map[string]string {
	const mb = 1 << 20
	return map[string]string{
		"parentheses":       strings.Repeat("(", mb/2) + "tcp" + strings.Repeat(")", mb/2),
		"open parentheses":  strings.Repeat("(", mb),
		"bangs":             strings.Repeat("!", mb) + "tcp",
		"nots":              strings.Repeat("not ", mb/4) + "tcp",
		"long or chain":     strings.Repeat("tcp or ", mb/7) + "tcp",
		"one long word":     "host " + strings.Repeat("1", mb),
		"bang parentheses":  strings.Repeat("!(", mb/2),
		"depth then length": strings.Repeat("(", MaxFilterDepth) + strings.Repeat("tcp or ", mb/7),
	}
}

// Defect 2: a megabyte of nesting took the agent's memory to more than a
// gigabyte. Now it is refused after a look at its length, the error does
// not quote the expression, and little is allocated.
func TestFilterHostileSize(t *testing.T) {
	for name, expr := range hostile() {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := compileNoPanic(t, expr)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrFilter) {
				t.Fatalf("err = %v, want ErrFilter", err)
			}
			if len(err.Error()) > 200 {
				t.Errorf("error of %d bytes: %.200s", len(err.Error()), err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<10 {
				t.Errorf("compiling allocated %d bytes", alloc)
			}
		})
	}
}

func TestCheckFilter(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("(", n) + "tcp" + strings.Repeat(")", n) }
	tests := []struct {
		name, expr string
		want       string // "" for no error
	}{
		{"empty", "", ""},
		{"at the length limit", strings.Repeat(" ", MaxFilterLen-3) + "tcp", ""},
		{"over the length limit", strings.Repeat(" ", MaxFilterLen-2) + "tcp", fmt.Sprintf("%d bytes, more than %d", MaxFilterLen+1, MaxFilterLen)},
		{"at the depth limit", deep(MaxFilterDepth), ""},
		{"over the depth limit", deep(MaxFilterDepth + 1), fmt.Sprintf("column %d: nested deeper than %d", MaxFilterDepth+1, MaxFilterDepth)},
		{"nots at the limit", strings.Repeat("not ", MaxFilterDepth) + "tcp", ""},
		{"bangs over the limit", strings.Repeat("!", MaxFilterDepth+1) + "tcp", "column 65: nested deeper"},
		{"nots and parentheses", strings.Repeat("!(", MaxFilterDepth/2) + "tcp" + strings.Repeat(")", MaxFilterDepth/2), ""},
		{"nots and parentheses over", strings.Repeat("!(", MaxFilterDepth/2) + "!tcp" + strings.Repeat(")", MaxFilterDepth/2), "nested deeper"},
		{"nots end with their term", strings.Repeat("not udp and ", 100) + "tcp", ""},
		{"siblings do not add up", strings.Repeat("((tcp)) or ", 100) + "tcp", ""},
		{"closing restores the depth", strings.Repeat("!(udp) and ", MaxFilterDepth) + "tcp", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFilter(tt.expr)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := CompileFilter(tt.expr); err != nil {
					t.Fatalf("CheckFilter passes it but CompileFilter: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrFilterTooLarge) || !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrFilterTooLarge with %q", err, tt.want)
			}
			if _, cerr := CompileFilter(tt.expr); cerr == nil || cerr.Error() != err.Error() {
				t.Fatalf("CompileFilter: %v, want the same error", cerr)
			}
		})
	}
}

func TestCheckFilterAllocs(t *testing.T) {
	expr := strings.Repeat("not (tcp or udp) and ", 300) + "ip"
	if n := testing.AllocsPerRun(100, func() { _ = CheckFilter(expr) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// Defect 3: "tcp and udp" compiled to a program that captures nothing;
// tcpdump refuses it ("expression rejects all packets"). The error names
// the term that cannot match.
func TestFilterNeverMatches(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"tcp and udp", `column 9: "udp" can never match together with what precedes it`},
		{"tcp && udp", `column 8: "udp"`},
		{"ip and ip6", `column 8: "ip6"`},
		{"host 10.0.0.1 and ip6", `column 19: "ip6"`},
		{"host 2001:db8::1 and arp", `column 22: "arp"`},
		{"ip6 and (tcp and udp)", `column 18: "udp"`},
		{"(tcp or udp) and icmp", `column 18: "icmp"`},
		{"icmp and (tcp or udp)", `column 10: "(tcp or udp)"`},
		{"tcp and not tcp", `column 9: "not tcp"`},
		{"not (tcp or not tcp)", `column 1: "not (tcp or not tcp)" can never match`},
		{"src port 1 and src port 2", `column 16: "src port 2"`},
		{"src host 10.0.0.1 and src host 10.0.0.2", `column 23: "src host 10.0.0.2"`},
		{"src net 10.0.0.0/8 and src net 11.0.0.0/8", `column 24: "src net 11.0.0.0/8"`},
		{"tcp port 80 and udp", `column 17: "udp"`},
		{"tcp and udp or icmp and ip6", `column 25: "ip6"`},
		{"(ip or ip6) and arp and tcp", `column 17: "arp"`},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := compileNoPanic(t, tt.expr)
			if !errors.Is(err, ErrFilter) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrFilter with %q", err, tt.want)
			}
		})
	}
	for _, ok := range []string{
		"tcp or udp", "port 1 and port 2", "src port 1 and dst port 2", "tcp or (udp and tcp) or udp",
		"src net 10.0.0.0/8 and src host 11.0.0.1", // libpcap does not relate masked and whole words either
		"not tcp and not ip", "host 10.0.0.1 and host 10.0.0.2",
	} {
		if _, err := compileNoPanic(t, ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

// Defect 4: "and" bound tighter than "or"; tcpdump gives them equal
// precedence, left to right, and "not" binds tighter than both.
func TestFilterPrecedence(t *testing.T) {
	udp53 := synthFrame{ether: etherIP4, proto: protoUDP, src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2"), sport: 40000, dport: 53}.bytes()
	tcp80 := synthFrame{ether: etherIP4, proto: protoTCP, src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2"), sport: 40000, dport: 80}.bytes()
	icmp := synthFrame{ether: etherIP4, proto: protoICMP, src: netip.MustParseAddr("10.0.0.1"), dst: netip.MustParseAddr("10.0.0.2")}.bytes()
	tests := []struct {
		expr  string
		frame []byte
		want  bool
	}{
		{"udp or tcp and port 80", udp53, false}, // (udp or tcp) and port 80
		{"udp or tcp and port 80", tcp80, true},
		{"udp || tcp && port 80", udp53, false},
		{"tcp and port 80 or udp", udp53, true}, // (tcp and port 80) or udp
		{"icmp or udp and port 53", icmp, false},
		{"icmp or udp and port 53", udp53, true},
		{"not udp and port 53", udp53, false}, // (not udp) and port 53
		{"not udp or port 53", udp53, true},   // (not udp) or port 53
		{"! tcp and ! udp", icmp, true},
		{"not tcp or udp and port 80", udp53, false}, // ((not tcp) or udp) and port 80
		{"not (tcp or udp) and port 80", tcp80, false},
		{"udp or (tcp and port 80)", udp53, true},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			f, err := compileNoPanic(t, tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			n, err := vm(t, f.Program).Run(tt.frame)
			if err != nil {
				t.Fatal(err)
			}
			if (n > 0) != tt.want {
				t.Fatalf("match = %v, want %v", n > 0, tt.want)
			}
		})
	}
}

// Defect 5: 20 hosts joined by "or" failed ("jump over 476
// instructions"): jumps beyond 255 instructions go through an
// unconditional jump now; only the kernel's limit on program length
// remains.
func TestFilterLongJumps(t *testing.T) {
	hosts := func(n int) (string, []netip.Addr) {
		var b strings.Builder
		var addrs []netip.Addr
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, 244, byte(i / 250), byte(1 + i%250)})
			addrs = append(addrs, a)
			if i > 0 {
				b.WriteString(" or ")
			}
			b.WriteString("host " + a.String())
		}
		return b.String(), addrs
	}
	for _, n := range []int{20, 100, 200} {
		t.Run(fmt.Sprint(n, " hosts"), func(t *testing.T) {
			expr, addrs := hosts(n)
			f, err := compileNoPanic(t, expr)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Program) > MaxFilterInsns {
				t.Fatalf("%d instructions", len(f.Program))
			}
			v := vm(t, f.Program)
			other := netip.MustParseAddr("10.0.0.1")
			for _, a := range []netip.Addr{addrs[0], addrs[n/2], addrs[n-1]} {
				for _, fr := range []synthFrame{
					{ether: etherIP4, proto: protoTCP, src: a, dst: other},
					{ether: etherIP4, proto: protoUDP, src: other, dst: a},
					{ether: etherARP, src: other, dst: a},
				} {
					if m, _ := v.Run(fr.bytes()); m == 0 {
						t.Errorf("%v: no match", fr)
					}
				}
			}
			if m, _ := v.Run(synthFrame{ether: etherIP4, proto: protoTCP, src: other, dst: addrs[n-1].Next().Next().Next()}.bytes()); m != 0 {
				t.Errorf("a frame of other hosts matches")
			}
			t.Logf("%d instructions", len(f.Program))
		})
	}
	expr, _ := hosts(400)
	_, err := compileNoPanic(t, expr)
	if !errors.Is(err, ErrFilterTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("more than %d instructions", MaxFilterInsns)) {
		t.Fatalf("400 hosts: %v, want ErrFilterTooLarge", err)
	}
}
