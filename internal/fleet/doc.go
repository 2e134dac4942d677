// Package fleet asks several agents at once and merges their answers: the
// evidence of a diagnosis, connection events in time order (listed or
// followed), and one status line per node, worst first. It imports only the
// standard library, the API client and the verdict engine, so the portable
// operator client links it on every OS.
package fleet
