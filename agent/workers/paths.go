package workers

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/mtu"
	"github.com/layerscope/layerscope/agent/pipeline"
)

// PathRefresh is the period of the path ticker: the workers' path
// configuration follows the links (MTUs change, pods come and go), the MTU
// check runs and the PMTU reports are collected. It also runs at once when
// the links change or an interface is attached.
const PathRefresh = time.Second

// followPaths is the path ticker. It runs until ctx is done.
func (c *Set) followPaths(ctx context.Context) {
	t := time.NewTicker(PathRefresh)
	defer t.Stop()
	changed := c.links.Changed()
	for {
		now := time.Now()
		if ls, ok := c.links.Links(); ok {
			if c.cfg.MTU != nil {
				c.cfg.MTU.Observe(ls, now)
			}
			c.refreshPaths(ls)
		}
		c.collectPMTU()
		c.forgetGone(now)
		select {
		case <-c.kick:
		case <-changed:
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshPaths tells each worker of a pod interface where the packets its
// pod sends go next: off the node through the overlay (the path MTU is the
// smallest overlay MTU, or the uplink's on a node without overlays), unless
// their destination is local (the node's addresses, the bridges' pod CIDRs
// and the node network).
func (c *Set) refreshPaths(ls []links.Link) {
	local, err := c.localPrefixes(ls)
	if err != nil {
		c.log.Debug("list addresses for path checks", "err", err)
		return
	}
	overlay, uplink := 0, 0
	mtus := map[int]int{}
	for _, l := range ls {
		mtus[l.Index] = l.MTU
		switch l.Role {
		case flow.RoleOverlay:
			if overlay == 0 || l.MTU < overlay {
				overlay = l.MTU
			}
		case flow.RoleUplink:
			if uplink == 0 || l.MTU < uplink {
				uplink = l.MTU
			}
		}
	}
	path := overlay
	if path == 0 {
		path = uplink
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for idx, lw := range c.live {
		if lw.link.Role != flow.RolePod {
			continue
		}
		lw.w.SetPath(pipeline.PathConfig{MTU: path, LinkMTU: mtus[idx], Local: local})
		if lw.off != nil {
			// Longer packets reach the worker's path checks.
			_ = lw.off.SetMaxLen(path)
		}
	}
}

// localPrefixes returns the destinations that do not leave the node: every
// address of the namespace, and the connected prefixes of its bridges and
// uplinks (pod CIDRs and the node network).
func (c *Set) localPrefixes(ls []links.Link) ([]netip.Prefix, error) {
	role := map[string]flow.Role{}
	for _, l := range ls {
		role[l.Name] = l.Role
	}
	var out []netip.Prefix
	err := c.cfg.NetNS.Do(func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, ifc := range ifs {
			addrs, err := ifc.Addrs()
			if err != nil {
				return err
			}
			for _, ad := range addrs {
				ipn, ok := ad.(*net.IPNet)
				if !ok {
					continue
				}
				ip, _ := netip.AddrFromSlice(ipn.IP)
				ip = ip.Unmap()
				bits, _ := ipn.Mask.Size()
				out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
				if r := role[ifc.Name]; r == flow.RoleBridge || r == flow.RoleUplink {
					out = append(out, netip.PrefixFrom(ip, bits).Masked())
				}
			}
		}
		return nil
	})
	return out, err
}

// collectPMTU reads the workers' new PMTU events and adds each to the PMTU
// log, attributed through conntrack to its connection's original direction.
func (c *Set) collectPMTU() {
	if c.cfg.PMTU == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, lw := range c.live {
		c.pmtuBuf = lw.w.PMTUEvents(c.pmtuBuf[:0], lw.pmtu)
		for i := range c.pmtuBuf {
			ev := &c.pmtuBuf[i]
			lw.pmtu = ev.Seq
			r := mtu.PMTUReport{
				Time: time.Unix(0, ev.Time), Interface: lw.link.Name, Reporter: ev.Reporter,
				MTU: ev.MTU, Quoted: ev.Inner, Flow: ev.Inner, Count: 1, V6: ev.Family == 6,
			}
			if c.cfg.Translate != nil && ev.Quoted && ev.InnerPorts {
				if tr, ok := c.cfg.Translate.Translate(ev.Inner); ok {
					r.Flow, r.Attributed, r.Translated = tr.Original, true, tr.DNAT()
				}
			}
			c.cfg.PMTU.Add(r)
		}
	}
}
