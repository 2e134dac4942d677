#!/usr/bin/env bash
# Builds sigs.k8s.io/kube-network-policies, the NetworkPolicy enforcer that
# the Kubernetes lab runs per node (lab.Lab.StartNetworkPolicies), from the
# Go module proxy into a version-keyed directory of the tool cache, skipping
# the build when the binary is already there, and prints its path:
#
#   .ci/kube-network-policies.sh        -> prints "kube-network-policies=PATH"
#   eval "$(.ci/kube-network-policies.sh --env)"
#                                       -> exports LAYERSCOPE_KUBE_NETWORK_POLICIES
#
# KNP_VERSION (default v0.8.0) and TOOLS (default
# $HOME/.cache/layerscope/tools) can be overridden. The build compiles in a
# throwaway GOCACHE that is deleted afterwards.
set -euo pipefail

mode=paths
case "${1:-}" in
"") ;;
--env) mode=env ;;
-h | --help)
	sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "usage: $0 [--env]" >&2
	exit 2
	;;
esac

export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
export GOFLAGS=-buildvcs=false GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0

version=${KNP_VERSION:-v0.8.0}
tools=${TOOLS:-$HOME/.cache/layerscope/tools}
dest="$tools/kube-network-policies-$version"
bin="$dest/kube-network-policies"

if [ ! -x "$bin" ]; then
	command -v go >/dev/null || {
		echo "kube-network-policies.sh: Go is not installed (expected /usr/local/go)" >&2
		exit 1
	}
	mkdir -p "$tools"
	work=$(mktemp -d "$tools/.build.XXXXXX")
	trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
	export GOCACHE="$work/gocache" GOBIN="$work/bin"
	start=$(date +%s)
	echo "kube-network-policies.sh: building kube-network-policies $version" >&2
	# The module has no replace directives: go install builds its command
	# (package .../cmd, installed as "cmd") exactly as released.
	nice -n 10 go install -trimpath -ldflags='-s -w' "sigs.k8s.io/kube-network-policies/cmd@$version" >&2
	mv "$work/bin/cmd" "$work/bin/kube-network-policies"
	echo "kube-network-policies.sh: built in $(($(date +%s) - start))s" >&2
	# Rename into place so an interrupted build never leaves a half-filled
	# directory at the cached path.
	rm -rf "$dest.tmp.$$"
	mv "$work/bin" "$dest.tmp.$$"
	rm -rf "$dest"
	mv "$dest.tmp.$$" "$dest"
fi

if [ "$mode" = env ]; then
	printf 'export LAYERSCOPE_KUBE_NETWORK_POLICIES=%q\n' "$bin"
else
	echo "kube-network-policies=$bin"
fi
