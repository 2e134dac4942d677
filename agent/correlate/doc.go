// Package correlate joins captured flow records with conntrack NAT state so
// that one connection is one record across DNAT and hops, and hands each
// ended record, enriched once, to the agent's sinks. It does no I/O.
//
// # The fan-out
//
// Fanout.OnRecords is the flow table's callback. For each final record it
// asks the Translator (conntrack.Watcher, through Lazy while conntrack is
// not open) once for the connection's Translation, joins the record with it
// when the connection was DNATed (Join: which view, pre or post DNAT, the
// record is, the client, service and backend), asks Fanout.Policy (when
// set) what the NetworkPolicies say of a connection that failed (Policy),
// and hands the one Enriched
// record to every Sink in order: the history (agent/history), the service
// tallies (Services), the workload tallies (agent/workloads) and the tracer
// (agent/tracing), the way hubble hands a flow to each metrics handler.
// Sinks run on the flow table's sweeping goroutine and must not block.
//
// # Service tallies
//
// Services counts joined connections by service, backend and outcome over
// a sliding window and names the backends whose recent connections all
// failed (dead backends); the metrics and the status read its Snapshot. A
// connection its client alone reset after the backend answered is no
// failure of the backend (Conn.ClientAborted): clients close sockets with
// unread data all the time, and their kernel then resets the connection.
package correlate
