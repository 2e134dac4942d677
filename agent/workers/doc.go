// Package workers is the packet half of the agent: one capture ring and one
// pipeline worker per captured interface, all feeding one flow table, and
// the one ticker that keeps the workers' view of the node's paths current.
//
// # Data flow
//
// The attach manager (agent/attach) follows the one link watch and opens a
// ring (agent/capture) for each selected interface; Set starts a worker
// (agent/pipeline) on each new ring. A worker owns its ring's frames and
// its counters: it decodes each frame and updates the flow table
// (agent/flowtable), publishing its counters every PublishInterval. The
// flow table reports ended records to Config.OnRecords, the agent's
// correlate.Fanout. A worker leaves the set when its ring closes; the
// ring's last counters stay in the totals of its role (RingStats), and its
// interface's name is kept for goneKeep so late records still name it
// (LinkOf).
//
// With CaptureConfig.Offload each ring runs the capture's eBPF fast path:
// the worker drains the kernel's per-flow counts after each
// PublishInterval (and once more when the ring closes) into itself and
// the flow table (pipeline.Worker.Merge), and the path ticker gives each
// pod ring its path MTU, so that longer packets reach the path checks. A
// ring that cannot use it captures every frame; the first ring of each
// reason is logged as a warning, and Offload counts them all.
//
// # Link state and the path ticker
//
// Every event of the watch goes first to the Set's links.Current, the one
// published copy of the namespace's links (Links). The path ticker runs at
// once when the links change or a ring attaches, else every PathRefresh:
// it runs the MTU check over the snapshot (mtu.Monitor, whose cached
// result the metrics, the status and diagnose read), tells each pod worker
// its path MTU and the node's local prefixes, and moves the workers' new
// PMTU events into the PMTU log (mtu.PMTULog), attributed through
// conntrack (Config.Translate) to the connection as its client sent it.
// With capture disabled the Set runs the link watch itself, so the MTU
// check still runs.
//
// # Filters
//
// CaptureConfig.Filter is a tcpdump expression compiled by
// Config.CompileFilter (the agent passes ondemand.CompileBPF: one filter
// language for always-on and on-demand capture); CaptureConfig.FilterFile
// is a `tcpdump -dd` program for what the expression subset cannot say.
// Every ring gets the same program.
//
// # Readiness
//
// Started is true once the interfaces present at start were attached (or
// failed once and are retried) and until Run returns; Ready also requires
// that no selected interface has gone without a ring for longer than
// CaptureConfig.PendingGrace (Stuck lists those).
//
// # Concurrency
//
// Run runs the flow table's sweep, the path ticker and the attach manager
// and returns after every worker. The read methods (RingStats, Captured,
// Oversize, LinkOf, Links, Stuck) may be called from any goroutine; one
// mutex guards the live workers.
package workers
