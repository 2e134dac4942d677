#!/usr/bin/env bash
# Builds the OpenTelemetry Collector the OTLP trace tests run against, with the
# official builder (ocb) and the core components listed in
# .ci/otelcol-builder.yaml, into a cache directory keyed by version:
#
#   $TOOLS/otelcol-$OTELCOL_VERSION/otelcol
#
# (TOOLS defaults to $HOME/.cache/layerscope/tools, OTELCOL_VERSION to
# v0.165.0). If the binary is already there the build is skipped. The binary's
# path is the only thing printed on stdout; build output goes to stderr.
#
#   LAYERSCOPE_OTELCOL=$(.ci/otelcol.sh) go test ./exporters/otlp
set -euo pipefail
cd "$(dirname "$0")/.."

version=${OTELCOL_VERSION:-v0.165.0}
tools=${TOOLS:-$HOME/.cache/layerscope/tools}
dir=$tools/otelcol-$version
bin=$dir/otelcol

if [ -x "$bin" ]; then
	echo "$bin"
	exit 0
fi

mkdir -p "$dir"
work=$(mktemp -d "$dir/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

start=$(date +%s)
echo "otelcol: installing the builder $version" >&2
GOBIN="$work/bin" GOFLAGS=-buildvcs=false go install "go.opentelemetry.io/collector/cmd/builder@$version" >&2

sed -e "s|@VERSION@|$version|g" -e "s|@OUTPUT@|$work/dist|g" .ci/otelcol-builder.yaml >"$work/builder.yaml"
echo "otelcol: building the collector $version" >&2
GOFLAGS=-buildvcs=false CGO_ENABLED=0 "$work/bin/builder" --config "$work/builder.yaml" --ldflags='-s -w' >&2

# Rename into place so a concurrent or interrupted build never leaves a
# half-written binary at the cached path.
mv "$work/dist/otelcol" "$bin.tmp.$$"
mv "$bin.tmp.$$" "$bin"
echo "otelcol: built $bin in $(( $(date +%s) - start ))s" >&2
echo "$bin"
