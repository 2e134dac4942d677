package agent

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/agent/pipeline"
)

// pathRefresh is how often the workers' path configuration follows the
// links (MTUs change, pods come and go).
const pathRefresh = time.Second

// refreshPaths tells each worker of a pod interface where the packets its
// pod sends go next: off the node through the overlay (the path MTU is the
// smallest overlay MTU, or the uplink's on a node without overlays), unless
// their destination is local (the node's addresses, the bridges' pod CIDRs
// and the node network).
func (a *Agent) refreshPaths() {
	ls, err := links.List(links.Config{NetNS: a.ns})
	if err != nil {
		a.log.Debug("list links for path checks", "err", err)
		return
	}
	a.mtu.observe(ls, time.Now())
	local, err := a.localPrefixes(ls)
	if err != nil {
		a.log.Debug("list addresses for path checks", "err", err)
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
	c := a.capture
	c.mu.Lock()
	defer c.mu.Unlock()
	for idx, lw := range c.live {
		if lw.link.Role != flow.RolePod {
			continue
		}
		lw.w.SetPath(pipeline.PathConfig{MTU: path, LinkMTU: mtus[idx], Local: local})
	}
}

// localPrefixes returns the destinations that do not leave the node: every
// address of the namespace, and the connected prefixes of its bridges and
// uplinks (pod CIDRs and the node network).
func (a *Agent) localPrefixes(ls []links.Link) ([]netip.Prefix, error) {
	role := map[string]flow.Role{}
	for _, l := range ls {
		role[l.Name] = l.Role
	}
	var out []netip.Prefix
	err := a.ns.Do(func() error {
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

// followPaths refreshes the path configuration, and collects the PMTU
// reports, until ctx is done; at once when an interface is attached.
func (a *Agent) followPaths(ctx context.Context) {
	t := time.NewTicker(pathRefresh)
	defer t.Stop()
	for {
		a.refreshPaths()
		a.collectPMTU()
		now := time.Now()
		if t := a.tracer.Load(); t != nil {
			t.flush(now, false)
		}
		a.capture.forgetGone(now)
		select {
		case <-a.capture.kick:
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
