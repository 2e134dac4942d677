// Package pipeline runs the per-worker loop: frame → decoders.Summary →
// flow.Key → flow table, with per-worker counters and no locks, allocation or
// Prometheus calls on the per-packet path.
package pipeline
