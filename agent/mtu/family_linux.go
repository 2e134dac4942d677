package mtu

import (
	"errors"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/layerscope/layerscope/agent/links"
	"github.com/layerscope/layerscope/internal/nsenter"
)

// Families returns the underlay address family of every VXLAN and Geneve
// device in ls, read over rtnetlink in ns (nil: the caller's namespace):
// an overlay is IPv6 when its local or remote (group) address is IPv6
// (IFLA_VXLAN_LOCAL6, IFLA_VXLAN_GROUP6, IFLA_GENEVE_REMOTE6), else IPv4.
// An overlay that vanished since ls was listed is left out. The result is
// Config.Families.
func Families(ns *nsenter.NS, ls []links.Link) (map[int]Family, error) {
	out := map[int]Family{}
	err := ns.Do(func() error {
		var h *netlink.Handle
		for i := range ls {
			l := &ls[i]
			if l.Kind != links.KindVXLAN && l.Kind != links.KindGeneve {
				continue
			}
			if h == nil {
				var err error
				if h, err = netlink.NewHandle(); err != nil {
					return &OpError{Op: "open", Err: err}
				}
				defer h.Close()
			}
			link, err := h.LinkByIndex(l.Index)
			if err != nil {
				var nf netlink.LinkNotFoundError
				if errors.As(err, &nf) {
					continue
				}
				return &OpError{Op: "get link", Index: l.Index, Err: err}
			}
			out[l.Index] = linkFamily(link)
		}
		return nil
	})
	return out, err
}

// linkFamily derives the underlay family from a tunnel's addresses. The
// library keeps each address with the length the kernel sent: 4 bytes for
// the IPv4 attribute, 16 for the IPv6 one.
func linkFamily(l netlink.Link) Family {
	var addrs []net.IP
	switch t := l.(type) {
	case *netlink.Vxlan:
		addrs = []net.IP{t.SrcAddr, t.Group}
	case *netlink.Geneve:
		addrs = []net.IP{t.Remote}
	}
	for _, a := range addrs {
		if len(a) == net.IPv6len {
			return IPv6
		}
	}
	return IPv4
}
