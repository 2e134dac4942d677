#!/usr/bin/env bash
# Installs helm and kustomize, which the manifest tests in deploy/ render the
# Helm chart and the kustomization with, and the Prometheus Operator's
# ServiceMonitor and PrometheusRule CRDs, which the lab cluster's tests apply
# deploy/daemonset against, into version-keyed directories of the tool cache,
# skipping what is already there, and prints their paths:
#
#   .ci/k8stools.sh              -> prints "helm=PATH", "kustomize=PATH" and
#                                   "crds=PATH"
#   eval "$(.ci/k8stools.sh --env)"
#                                -> exports LAYERSCOPE_HELM, LAYERSCOPE_KUSTOMIZE
#                                   and LAYERSCOPE_PROMETHEUS_OPERATOR_CRDS
#
# HELM_VERSION (default v3.22.0), KUSTOMIZE_VERSION (default v5.8.2),
# PROMETHEUS_OPERATOR_VERSION (default v0.89.0) and TOOLS (default
# $HOME/.cache/layerscope/tools) can be overridden. Each missing binary is
# built once with `go install` from the Go module proxy; the CRDs are the
# released YAML of the operator's module (example/prometheus-operator-crd),
# taken from the Go module proxy too.
set -euo pipefail

mode=paths
case "${1:-}" in
"") ;;
--env) mode=env ;;
-h | --help)
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "usage: $0 [--env]" >&2
	exit 2
	;;
esac

export PATH=/usr/local/go/bin:$HOME/go/bin:$PATH
export GOFLAGS=${GOFLAGS:--buildvcs=false}

helm_version=${HELM_VERSION:-v3.22.0}
kustomize_version=${KUSTOMIZE_VERSION:-v5.8.2}
promop_version=${PROMETHEUS_OPERATOR_VERSION:-v0.89.0}
tools=${TOOLS:-$HOME/.cache/layerscope/tools}
crds=$tools/prometheus-operator-crds-$promop_version/prometheus-operator-crds

declare -A dest=(
	[helm]="$tools/helm-$helm_version/helm"
	[kustomize]="$tools/kustomize-$kustomize_version/kustomize"
)
declare -A pkg=(
	[helm]="helm.sh/helm/v3/cmd/helm@$helm_version"
	[kustomize]="sigs.k8s.io/kustomize/kustomize/v5@$kustomize_version"
)

for cmd in helm kustomize; do
	[ -x "${dest[$cmd]}" ] && continue
	command -v go >/dev/null || {
		echo "k8stools.sh: Go is not installed (expected /usr/local/go)" >&2
		exit 1
	}
	mkdir -p "$tools"
	work=$(mktemp -d "$tools/.build.XXXXXX")
	echo "k8stools.sh: building ${pkg[$cmd]}" >&2
	start=$(date +%s)
	# Both are main packages of modules without replace directives, so
	# `go install module@version` builds them as released.
	if ! GOBIN=$work CGO_ENABLED=0 go install -ldflags='-s -w' "${pkg[$cmd]}" >&2; then
		rm -rf "$work"
		exit 1
	fi
	echo "k8stools.sh: built $cmd in $(($(date +%s) - start))s" >&2
	mkdir -p "$(dirname "${dest[$cmd]}")"
	# Rename into place so an interrupted build never leaves a half-written
	# binary at the cached path.
	mv "$work/$cmd" "${dest[$cmd]}.tmp.$$"
	mv "${dest[$cmd]}.tmp.$$" "${dest[$cmd]}"
	rm -rf "$work"
done

# The two CRDs in one YAML stream. The module is 4 MB; its download goes to
# a throwaway module cache.
if [ ! -s "$crds" ]; then
	mkdir -p "$tools"
	work=$(mktemp -d "$tools/.crds.XXXXXX")
	mod=github.com/prometheus-operator/prometheus-operator@$promop_version
	echo "k8stools.sh: downloading $mod for its CRDs" >&2
	if ! dir=$(cd "$work" && GOMODCACHE=$work/mod GOFLAGS=-mod=mod go mod download -json "$mod" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') || [ -z "$dir" ]; then
		GOMODCACHE=$work/mod go clean -modcache 2>/dev/null || true
		rm -rf "$work"
		echo "k8stools.sh: cannot download $mod" >&2
		exit 1
	fi
	for kind in servicemonitors prometheusrules; do
		cat "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml"
		echo ---
	done >"$work/crds.yaml"
	mkdir -p "$(dirname "$crds")"
	mv "$work/crds.yaml" "$crds.tmp.$$"
	mv "$crds.tmp.$$" "$crds"
	GOMODCACHE=$work/mod go clean -modcache
	rm -rf "$work"
fi

if [ "$mode" = env ]; then
	printf 'export LAYERSCOPE_HELM=%q\n' "${dest[helm]}"
	printf 'export LAYERSCOPE_KUSTOMIZE=%q\n' "${dest[kustomize]}"
	printf 'export LAYERSCOPE_PROMETHEUS_OPERATOR_CRDS=%q\n' "$crds"
else
	echo "helm=${dest[helm]}"
	echo "kustomize=${dest[kustomize]}"
	echo "crds=$crds"
fi
