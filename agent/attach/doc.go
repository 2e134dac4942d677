// Package attach keeps a capture ring on every interface of a network
// namespace whose role is selected, following the interface set as links
// come, change role and go.
//
// # Selection
//
// An interface is captured when its role (see package links) is one of
// Config.Roles (default: pod, overlay, uplink), its name matches one of
// Config.Include (default: any) and none of Config.Exclude. Roles change with
// topology (a new veth becomes a pod when it is enslaved to a bridge), and
// the Manager attaches or detaches as they do: a pod veth is captured within
// one rtnetlink notification of its becoming a pod.
//
// # Failures
//
// Opening a ring can fail for reasons that pass: the process ran out of
// descriptors (EMFILE), the kernel of memory (ENOMEM). A selected interface
// whose ring cannot be opened is Pending and is tried again, after
// RetryMin, then twice as long each time up to RetryMax (each delay drawn
// from the upper half of its interval, so that many interfaces failing
// together do not retry together), until it is attached, removed or no
// longer selected. Pending lists them, for metrics and readiness.
//
// # Ring sizes
//
// Unless Config.Ring says otherwise, pod rings are 1 MiB (8 blocks of
// 128 KiB: one pod's traffic), overlay and uplink rings 8 MiB (32 blocks of
// 256 KiB: the node's whole traffic crosses them), others the capture
// default.
//
// # Callbacks and ownership
//
// OnAttach receives the link and its open ring; the callee starts reading it
// (typically a goroutine running ring.Run). On detach the Manager closes the
// ring first, which makes that Run return capture.ErrClosed at once and
// release the ring's descriptors and memory, then calls OnDetach. Both
// callbacks run on one of the Manager's two goroutines (link events,
// retries), one at a time, never concurrently, and should not block. When Run returns, every ring it attached has been closed and
// OnDetach called for it.
//
// OnEvent receives every event of the Manager's link watch before the
// Manager acts on it, on the same goroutine: the agent feeds it to
// links.Current, so the one watch is the agent's one source of link state.
package attach
