#!/usr/bin/env bash
# Builds the real Kubernetes control plane and node components that the
# Kubernetes lab (lab.Config{Kubernetes: true}, `layerscope lab up
# --kubernetes`) runs: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy, kubelet and kubectl, from the Go module proxy,
# into one version-keyed directory of the tool cache, skipping the build when
# every binary is already there, and prints that directory:
#
#   .ci/kubernetes.sh            -> prints "k8s-bin=DIR"
#   eval "$(.ci/kubernetes.sh --env)"
#                                -> exports LAYERSCOPE_K8S_BIN
#
# K8S_VERSION (default v1.37.2), ETCD_VERSION (default v3.7.4) and TOOLS
# (default $HOME/.cache/layerscope/tools) can be overridden. A cold build
# takes about 13 minutes of CPU and 2.5 GB of memory; it compiles in a
# throwaway GOCACHE (about 3.5 GB) that is deleted afterwards.
set -euo pipefail

mode=paths
case "${1:-}" in
"") ;;
--env) mode=env ;;
-h | --help)
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "usage: $0 [--env]" >&2
	exit 2
	;;
esac

export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
export GOFLAGS=-buildvcs=false GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0

version=${K8S_VERSION:-v1.37.2}
etcd_version=${ETCD_VERSION:-v3.7.4}
tools=${TOOLS:-$HOME/.cache/layerscope/tools}
dest="$tools/kubernetes-$version-etcd-$etcd_version"
cmds=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet kubectl)

missing=0
for cmd in "${cmds[@]}" etcd; do
	[ -x "$dest/$cmd" ] || missing=1
done

if [ "$missing" = 1 ]; then
	command -v go >/dev/null || {
		echo "kubernetes.sh: Go is not installed (expected /usr/local/go)" >&2
		exit 1
	}
	mkdir -p "$tools"
	work=$(mktemp -d "$tools/.build.XXXXXX")
	trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
	export GOCACHE="$work/gocache"
	start=$(date +%s)

	# k8s.io/kubernetes cannot be built with `go install module@version`: its
	# go.mod replaces the k8s.io/* staging modules with ./staging/src/...,
	# which module zips leave out. Copy the module, point every staging
	# replace at the published module of the matching v0 version and build
	# the commands from that copy.
	echo "kubernetes.sh: building Kubernetes $version" >&2
	dir=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[ -d "$dir" ] || {
		echo "kubernetes.sh: k8s.io/kubernetes@$version did not download" >&2
		exit 1
	}
	cp -r "$dir" "$work/kubernetes"
	chmod -R u+w "$work/kubernetes"
	cd "$work/kubernetes"
	rm -rf go.work go.work.sum vendor
	staging=v0.${version#v1.}
	replaces=()
	for m in $(sed -n '/^replace (/,/^)/p' go.mod | awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}'); do
		replaces+=("-replace=$m=$m@$staging")
	done
	[ ${#replaces[@]} -gt 0 ] || {
		echo "kubernetes.sh: no staging replace directives found in go.mod" >&2
		exit 1
	}
	go mod edit "${replaces[@]}"
	minor=$(echo "$version" | cut -d. -f2)
	ld="-s -w -X k8s.io/component-base/version.gitVersion=$version"
	ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
	ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
	ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"
	ld+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
	mkdir -p "$work/bin"
	pkgs=()
	for cmd in "${cmds[@]}"; do
		pkgs+=("./cmd/$cmd")
	done
	GOFLAGS="$GOFLAGS -mod=mod" nice -n 10 go build -trimpath -ldflags="$ld" -o "$work/bin/" "${pkgs[@]}" >&2

	# etcd's server module also carries replace directives; a main module of
	# its own that calls etcdmain.Main builds the same server.
	echo "kubernetes.sh: building etcd $etcd_version" >&2
	mkdir -p "$work/etcd"
	cd "$work/etcd"
	cat >main.go <<'EOF'
// Command etcd runs the etcd server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
	go mod init layerscope.local/etcd >/dev/null 2>&1
	go get "go.etcd.io/etcd/server/v3@$etcd_version" >/dev/null 2>&1
	go mod tidy >/dev/null 2>&1
	nice -n 10 go build -trimpath -ldflags='-s -w' -o "$work/bin/etcd" . >&2
	echo "kubernetes.sh: built in $(($(date +%s) - start))s" >&2

	cd /
	# Rename into place so an interrupted build never leaves a half-filled
	# directory at the cached path.
	rm -rf "$dest.tmp.$$"
	mv "$work/bin" "$dest.tmp.$$"
	rm -rf "$dest"
	mv "$dest.tmp.$$" "$dest"
fi

if [ "$mode" = env ]; then
	printf 'export LAYERSCOPE_K8S_BIN=%q\n' "$dest"
else
	echo "k8s-bin=$dest"
fi
