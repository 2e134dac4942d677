// Package links lists and watches the network interfaces of one network
// namespace over rtnetlink and classifies each by kind (veth, vxlan, geneve,
// bridge, device, loopback) and by role in the node's network (pod, overlay,
// uplink, bridge, other).
package links
