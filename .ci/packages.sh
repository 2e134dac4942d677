#!/usr/bin/env bash
# Installs the Debian packages the tests use, when missing: the peers and
# oracles of the lab and kernel tests (iptables, nftables, conntrack,
# tcpdump, tshark, trafgen, …) and the Kubernetes lab's node runtime
# (containerd, runc, the CNI plugins). Idempotent; needs root to install.
set -euo pipefail

need=()
for pkg in iproute2 iptables nftables conntrack tcpdump tshark iperf3 socat netsniff-ng tmux make git curl ca-certificates util-linux containerd runc containernetworking-plugins; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "packages.sh: missing ${need[*]}; run as root (sudo make test) to install them" >&2
	exit 1
fi
echo "packages.sh: installing ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
