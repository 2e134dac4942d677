#!/usr/bin/env bash
# Installs the Prometheus server and promtool used by the metrics tests into
# version-keyed directories of the tool cache, skipping what is already there,
# and prints the two binaries' paths:
#
#   .ci/prometheus.sh            -> prints "prometheus=PATH" and "promtool=PATH"
#   eval "$(.ci/prometheus.sh --env)"
#                                -> exports LAYERSCOPE_PROMETHEUS and LAYERSCOPE_PROMTOOL
#
# PROMETHEUS_VERSION (default v0.316.0, the Go module version of the
# Prometheus 3 release) and TOOLS (default $HOME/.cache/layerscope/tools)
# can be overridden. When both binaries are missing they are built by one
# `go install`, which compiles the shared packages once, with Prometheus's
# own build tags leaving out every service discovery but Kubernetes (the
# only one the tests use): the cloud SDKs are most of a cold build.
set -euo pipefail

mode=paths
case "${1:-}" in
"") ;;
--env) mode=env ;;
-h | --help)
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "usage: $0 [--env]" >&2
	exit 2
	;;
esac

export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}

version=${PROMETHEUS_VERSION:-v0.316.0}
tools=${TOOLS:-$HOME/.cache/layerscope/tools}
module=github.com/prometheus/prometheus

declare -A dest=(
	[prometheus]="$tools/prometheus-$version/prometheus"
	[promtool]="$tools/promtool-$version/promtool"
)

missing=()
for cmd in prometheus promtool; do
	[ -x "${dest[$cmd]}" ] || missing+=("$cmd")
done

if [ ${#missing[@]} -gt 0 ]; then
	command -v go >/dev/null || {
		echo "prometheus.sh: Go is not installed (expected /usr/local/go)" >&2
		exit 1
	}
	mkdir -p "$tools"
	work=$(mktemp -d "$tools/.build.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	pkgs=()
	for cmd in "${missing[@]}"; do
		pkgs+=("$module/cmd/$cmd@$version")
	done
	echo "prometheus.sh: building ${missing[*]} $version" >&2
	start=$(date +%s)
	GOBIN=$work go install -tags remove_all_sd,enable_kubernetes_sd "${pkgs[@]}"
	echo "prometheus.sh: built in $(($(date +%s) - start))s" >&2
	for cmd in "${missing[@]}"; do
		mkdir -p "$(dirname "${dest[$cmd]}")"
		mv "$work/$cmd" "${dest[$cmd]}"
	done
fi

if [ "$mode" = env ]; then
	printf 'export LAYERSCOPE_PROMETHEUS=%q\n' "${dest[prometheus]}"
	printf 'export LAYERSCOPE_PROMTOOL=%q\n' "${dest[promtool]}"
else
	echo "prometheus=${dest[prometheus]}"
	echo "promtool=${dest[promtool]}"
fi
