package capture

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/bpf"
)

// Classic BPF opcode pieces used to validate and adjust programs.
const (
	bpfClassMask = 0x07
	bpfJmp       = 0x05
	bpfRet       = 0x06
	bpfOpMask    = 0xf0
	bpfJA        = 0x00
	bpfRetK      = bpfRet // BPF_RET|BPF_K (BPF_K is 0)
	bpfMaxInsns  = 4096
)

// ParseFilter reads a classic BPF program printed by "tcpdump -dd EXPR"
// (lines such as "{ 0x28, 0, 0, 0x0000000c },") or by "tcpdump -ddd EXPR"
// (an instruction count, then "code jt jf k" per line in decimal). Compile
// the expression for the link type of the interface it will run on
// (Ethernet for veth, VXLAN devices and NICs). Blank lines and lines
// starting with '#' are ignored. The program is checked for jumps out of
// range and for a final return.
func ParseFilter(text string) ([]bpf.RawInstruction, error) {
	var prog []bpf.RawInstruction
	count := -1
	sc := bufio.NewScanner(strings.NewReader(text))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		dd := strings.HasPrefix(s, "{")
		s = strings.Trim(s, "{},; \t")
		var fields []string
		if dd {
			fields = strings.Split(s, ",")
		} else {
			fields = strings.Fields(s)
		}
		if !dd && len(fields) == 1 && count < 0 && len(prog) == 0 {
			n, err := strconv.ParseUint(fields[0], 10, 16)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: instruction count %q", ErrFilter, line, fields[0])
			}
			count = int(n)
			continue
		}
		if len(fields) != 4 {
			return nil, fmt.Errorf("%w: line %d: want 4 fields (code, jt, jf, k), got %d", ErrFilter, line, len(fields))
		}
		var v [4]uint64
		for i, f := range fields {
			bits := [4]int{16, 8, 8, 32}[i]
			n, err := strconv.ParseUint(strings.TrimSpace(f), 0, bits)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: field %d %q: %v", ErrFilter, line, i+1, strings.TrimSpace(f), err)
			}
			v[i] = n
		}
		prog = append(prog, bpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFilter, err)
	}
	if count >= 0 && count != len(prog) {
		return nil, fmt.Errorf("%w: header says %d instructions, found %d", ErrFilter, count, len(prog))
	}
	if err := checkProgram(prog); err != nil {
		return nil, err
	}
	return prog, nil
}

// checkProgram rejects empty or oversized programs, jumps past the end and
// programs that can fall off their end.
func checkProgram(prog []bpf.RawInstruction) error {
	n := len(prog)
	if n == 0 || n > bpfMaxInsns {
		return fmt.Errorf("%w: %d instructions (want 1 to %d)", ErrFilter, n, bpfMaxInsns)
	}
	for i, ins := range prog {
		if ins.Op&bpfClassMask != bpfJmp {
			continue
		}
		if ins.Op&bpfOpMask == bpfJA {
			if uint64(i)+1+uint64(ins.K) >= uint64(n) {
				return fmt.Errorf("%w: instruction %d jumps past the end", ErrFilter, i)
			}
			continue
		}
		if i+1+int(ins.Jt) >= n || i+1+int(ins.Jf) >= n {
			return fmt.Errorf("%w: instruction %d jumps past the end", ErrFilter, i)
		}
	}
	if prog[n-1].Op&bpfClassMask != bpfRet {
		return fmt.Errorf("%w: last instruction is not a return", ErrFilter)
	}
	return nil
}

// snapFilter returns the program the socket runs: filter with constant
// returns capped at snapLen, or a lone "ret #snapLen" without a filter.
func snapFilter(filter []bpf.RawInstruction, snapLen int) ([]bpf.RawInstruction, error) {
	if len(filter) == 0 {
		return []bpf.RawInstruction{{Op: bpfRetK, K: uint32(snapLen)}}, nil
	}
	if err := checkProgram(filter); err != nil {
		return nil, err
	}
	out := make([]bpf.RawInstruction, len(filter))
	copy(out, filter)
	for i := range out {
		if out[i].Op == bpfRetK && out[i].K > uint32(snapLen) {
			out[i].K = uint32(snapLen)
		}
	}
	return out, nil
}
