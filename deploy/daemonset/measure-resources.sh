#!/usr/bin/env bash
# Measures the node agent's memory and CPU in the lab, the numbers the
# DaemonSet's resource requests and limits are set from (see bench/README.md,
# "DaemonSet resources"). Needs root and a built binary (make build).
#
#   sudo deploy/daemonset/measure-resources.sh
#
# It brings up a lab (prefix PREFIX, default "lsres-"), runs the agent in
# node-1's namespace as the DaemonSet runs it (JSON logs, metrics on a port),
# scrapes it every SCRAPE seconds like Prometheus, and drives every scenario
# with more traffic than the tests use; it samples the agent's resident set
# (VmRSS) every 100 ms and its CPU time (utime + stime) around each phase,
# and prints one line per phase: peak RSS so far, RSS at the end, CPU
# seconds used, the phase's wall time, and from the agent's own metrics the
# conntrack entries it tracks and its Go heap in use. FLOOD (default 20000) is the number
# of connections of the conntrack-flood phase; nf_conntrack_max is left alone.
# The environment reaches the agent: GOMEMLIMIT=128MiB measures it under a
# memory limit.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${BIN:-bin/layerscope}
prefix=${PREFIX:-lsres-}
scrape=${SCRAPE:-5}
flood=${FLOOD:-20000}
port=${PORT:-19431}
idle=${IDLE:-60}

[ "$(id -u)" = 0 ] || { echo "measure-resources.sh: needs root" >&2; exit 1; }
[ -x "$bin" ] || { echo "measure-resources.sh: $bin missing (make build)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	"$bin" lab down --prefix "$prefix" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

"$bin" lab up --prefix "$prefix" >"$work/lab.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	grep -q serving "$work/lab.log" && break
	sleep 0.2
done
grep -q serving "$work/lab.log" || { cat "$work/lab.log" >&2; exit 1; }

ip netns exec "${prefix}node-1" "$bin" agent --metrics-addr "127.0.0.1:$port" --log-format json \
	>/dev/null 2>"$work/agent.log" &
agent=$!
pids+=("$agent")

metrics() { ip netns exec "${prefix}node-1" curl -sf "http://127.0.0.1:$port/$1"; }
for _ in $(seq 100); do
	metrics readyz >/dev/null 2>&1 && break
	sleep 0.2
done
metrics readyz >/dev/null || { cat "$work/agent.log" >&2; exit 1; }

# The RSS sampler and the scraper run for the whole measurement.
(
	while kill -0 "$agent" 2>/dev/null; do
		awk '/^VmRSS/ {print $2}' "/proc/$agent/status" 2>/dev/null || true
		sleep 0.1
	done
) >"$work/rss" &
pids+=($!)
(
	while kill -0 "$agent" 2>/dev/null; do
		metrics metrics >/dev/null 2>&1 || true
		sleep "$scrape"
	done
) &
pids+=($!)

hz=$(getconf CLK_TCK)
cpu() { awk -v hz="$hz" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$agent/stat"; }
rss_now() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$agent/status"; }
rss_peak() { sort -n "$work/rss" | tail -1 | awk '{printf "%.1f", $1 / 1024}'; }

# The agent's own view at the end of a phase: conntrack entries and the Go
# heap in use (go_memstats_heap_inuse_bytes), beside the RSS.
gauge() { metrics metrics | awk -v m="$1" '$1 == m {printf "%.0f", $2}'; }
printf '%-28s %14s %12s %10s %8s %10s %12s\n' phase peak-RSS-MiB end-RSS-MiB cpu-s wall-s ct-entries heap-MiB
phase() {
	local name=$1
	shift
	local c0 t0
	c0=$(cpu)
	t0=$(date +%s.%N)
	"$@" >/dev/null
	sleep 1
	printf '%-28s %14s %12s %10.2f %8.1f %10s %12.1f\n' "$name" "$(rss_peak)" "$(rss_now)" \
		"$(echo "$(cpu) - $c0" | bc)" "$(echo "$(date +%s.%N) - $t0" | bc)" \
		"$(gauge layerscope_conntrack_entries)" "$(echo "$(gauge go_memstats_heap_inuse_bytes) / 1048576" | bc -l)"
}
lab() { "$bin" lab traffic --prefix "$prefix" "$@"; }

phase "start (ready)" true
phase "idle ${idle}s" sleep "$idle"
phase "service x300" lab service --count 300
phase "dead-backend x100" lab dead-backend --count 100
phase "mtu x200" lab mtu --count 200
phase "dns x200" lab dns --count 200
phase "http x100" lab http --count 100
phase "tls x50" lab tls --count 50
phase "conntrack-flood x$flood" lab conntrack-flood --count "$flood" --concurrency 32
phase "idle ${idle}s after" sleep "$idle"
phase "scrape" metrics metrics
