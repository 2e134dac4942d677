// Package api is the agent's local HTTP/JSON API: the types of its answers
// (a documented, stable JSON schema, see SCHEMA.md in this directory), the
// Query that selects connection events, and a Client for the CLI and other
// tools. It imports only the standard library, so a tool can talk to an
// agent without linking the agent.
//
// # Endpoints
//
// The agent serves the API on the listener of /metrics, with the same TLS
// and basic-auth configuration (the exporter-toolkit web config file):
//
//	GET /api/v1/connections?since=5m&limit=100&<filters>   JSON array of Connection, oldest first
//	GET /api/v1/connections?follow=1&<filters>             NDJSON stream, one Connection per line
//	GET /api/v1/status                                     Status
//	GET /api/v1/pmtu                                       PMTU
//	GET /api/v1/capture?filter=&duration=&…                pcap stream (CaptureRequest, Client.Capture)
//
// Filters are the fields of Query (see Query.Values for their URL names);
// a bad parameter is answered 400 with a message naming it.
//
// # Connection events
//
// The agent records an event for a connection view when the flow ends (State
// "final") and, while it is active, each time its state changes (State
// "progress": a SYN unanswered, a retransmitted SYN, a SYN-ACK, a RST, a
// FIN, an L7 response, a new hop), checked every second. A fault is thus
// visible within about a second of the packets that show it. A DNATed
// connection has two views on the node that translated it, "pre" (client →
// service address, e.g. on the client pod's veth) and "post" (after the
// DNAT, e.g. on the overlay or the backend's veth), with the same ID. Use
// Latest (latest=1) to keep one event per view.
//
// # Following
//
// A follow stream sends each matching event as it is recorded and flushes
// it at once. The agent never waits for a follower: one that reads too
// slowly misses the events the history overwrote meanwhile (a gap in Seq;
// counted in layerscope_api_follow_events_lost_total), and one whose
// socket stays blocked longer than the write timeout is disconnected
// (layerscope_api_followers_dropped_total).
package api
