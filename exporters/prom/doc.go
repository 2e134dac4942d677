// Package prom exposes the agent's aggregates as Prometheus collectors that
// read them at scrape time.
package prom
