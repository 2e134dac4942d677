#!/usr/bin/env bash
# Installs helm and kustomize, which the manifest tests in deploy/ render the
# Helm chart and the kustomization with, into version-keyed directories of the
# tool cache, skipping what is already there, and prints the two binaries'
# paths:
#
#   .ci/k8stools.sh              -> prints "helm=PATH" and "kustomize=PATH"
#   eval "$(.ci/k8stools.sh --env)"
#                                -> exports LAYERSCOPE_HELM and LAYERSCOPE_KUSTOMIZE
#
# HELM_VERSION (default v3.22.0), KUSTOMIZE_VERSION (default v5.8.2) and TOOLS
# (default $HOME/.cache/layerscope/tools) can be overridden. Each missing
# binary is built once with `go install` from the Go module proxy.
set -euo pipefail

mode=paths
case "${1:-}" in
"") ;;
--env) mode=env ;;
-h | --help)
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
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
tools=${TOOLS:-$HOME/.cache/layerscope/tools}

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

if [ "$mode" = env ]; then
	printf 'export LAYERSCOPE_HELM=%q\n' "${dest[helm]}"
	printf 'export LAYERSCOPE_KUSTOMIZE=%q\n' "${dest[kustomize]}"
else
	echo "helm=${dest[helm]}"
	echo "kustomize=${dest[kustomize]}"
fi
