package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/layerscope/layerscope/agent/api"
)

// Printer writes connection events as table lines or JSON lines.
type Printer struct {
	W       io.Writer
	JSON    bool // one JSON object per line
	Color   bool // ANSI colours
	Compact bool // short times and padded columns (a terminal)
}

func (p *Printer) paint(sgr, s string) string {
	if !p.Color || s == "" {
		return s
	}
	return sgr + s + sgrReset
}

// Print writes one event.
func (p *Printer) Print(c *api.Connection) error {
	if p.JSON {
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		_, err = p.W.Write(append(b, '\n'))
		return err
	}
	_, err := io.WriteString(p.W, p.Line(c)+"\n")
	return err
}

// Line formats one event. Compact (terminal) lines have a short time and
// padded columns; plain lines have the full time and single spaces.
func (p *Printer) Line(c *api.Connection) string {
	ts := c.Time.Format(time.RFC3339Nano)
	if p.Compact {
		ts = c.Time.Format("15:04:05.000")
	}
	path := c.Client.Name()
	if c.Service != nil {
		path += " → " + c.Service.Name()
	}
	path += " → " + c.Backend.Name()
	verdict := make([]string, 0, 4)
	for _, l := range c.Layers {
		s := strings.ToUpper(l.Layer) + " "
		if l.Status == api.StatusOK && l.Layer != "l7" {
			s += "ok"
		} else {
			s += l.Detail
		}
		switch l.Status {
		case api.StatusOK:
			s = p.paint(sgrGreen, s)
		case api.StatusFail:
			s = p.paint(sgrRed+sgrBold, s)
		case api.StatusPending:
			s = p.paint(sgrYellow, s)
		}
		verdict = append(verdict, s)
	}
	if c.NAT != nil && c.NAT.DNAT {
		verdict = append(verdict, "DNAT "+c.NAT.From+"→"+c.NAT.To)
	}
	hops := make([]string, 0, len(c.Hops))
	for _, h := range c.Hops {
		hops = append(hops, fmt.Sprintf("%s(%d/%d)", h.Interface, h.Packets.Client, h.Packets.Server))
	}
	state := c.State
	if c.Failed {
		state += " " + p.paint(sgrRed, c.Outcome)
	} else {
		state += " " + c.Outcome
	}
	if !p.Compact {
		return strings.Join([]string{ts, c.Node, path, c.Protocol, strings.Join(verdict, " · "), "hops " + strings.Join(hops, ","), state}, " ")
	}
	return fmt.Sprintf("%s %-8s %-58s %-4s %s  %s  %s", p.paint(sgrDim, ts), c.Node, path, c.Protocol,
		strings.Join(verdict, " · "), p.paint(sgrDim, strings.Join(hops, " ")), state)
}
