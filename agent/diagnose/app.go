package diagnose

import (
	"fmt"
	"strconv"
)

func appVerdict(in *Input, conns []conn, win string) (Verdict, bool) {
	errs, total := 0, 0
	codes := map[string]int{}
	for _, c := range conns {
		if c.c.L7 == nil {
			continue
		}
		total += int(c.c.L7.Responses)
		errs += int(c.c.L7.Errors)
		for _, x := range c.c.L7.Exchanges {
			if x.Failed {
				if x.Status != 0 {
					codes[strconv.Itoa(x.Status)]++
				} else {
					codes[x.Rcode]++
				}
			}
		}
	}
	if errs == 0 {
		return Verdict{}, false
	}
	v := Verdict{Class: App}
	v.Summary = fmt.Sprintf("L7: %d of %d responses from %s to %s were errors (%s) in the last %s; L3 and L4 work", errs, total, in.To.Arg, in.From.Arg, topCounts(codes, 4), win)
	v.Evidence = append(v.Evidence, outcomeLine(conns))
	v.Next = "the network delivers: read the server's logs for the failing requests"
	return v, true
}
