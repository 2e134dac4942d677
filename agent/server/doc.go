// Package server serves the agent's HTTP endpoints (/metrics, the API, the
// probes) and holds the line against hostile and careless clients: every
// listener, connection and response it serves is bounded in number, time
// and memory, and it tells handlers who is asking.
//
// # Listeners
//
// A Server has up to three listeners, all bound by New so that a wrong
// address fails at start:
//
//   - the main TCP listener (Config.Addr), with the exporter-toolkit web
//     configuration (Config.WebConfigFile: TLS, client certificates, basic
//     auth) applied to every request;
//   - an optional health listener (Config.HealthAddr), plain HTTP without
//     authentication, that serves only the health handler (/healthz and
//     /readyz): a kubelet probe cannot send credentials, and the answer
//     reveals nothing but health;
//   - an optional unix socket (Config.SocketPath), created with mode 0660
//     and owned by root and Config.SocketGroup, whose peers are checked at
//     accept with SO_PEERCRED: root, or a process whose group is
//     Config.SocketGroup; any other peer is closed before it is read.
//
// # Who is asking
//
// Identify returns the identity of a request's client as the server
// verified it: a unix-socket peer's uid and gid, a basic-auth user name
// that the web configuration lists, or the subject of a verified client
// certificate. A request without one is anonymous. Handlers that reveal
// payloads (on-demand capture) serve only identified clients.
//
// # Limits
//
// Per connection: headers must arrive within ReadHeaderTimeout and fit in
// MaxHeaderBytes, a whole request within ReadTimeout; a response must be
// written within WriteTimeout (a streaming handler moves its own deadline
// with http.ResponseController); an idle keep-alive connection is closed
// after IdleTimeout. Per listener: at most MaxConns connections are open;
// a new connection beyond that evicts the oldest connection that is idle
// or has not sent a request yet, and is refused (closed) when every open
// connection is busy. Handlers bound their own concurrency with Limit.
//
// # Shutdown
//
// Shutdown first cancels the context of every request in flight (streams
// and captures end cleanly and write their trailers), then waits for the
// handlers to return, up to its context's deadline; connections still open
// then are closed. Shutdown reports no error for connections it had to
// close: the server stopped as asked.
//
// # Concurrency
//
// A Server is safe for concurrent use; Serve runs once.
package server
