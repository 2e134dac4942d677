// Package parser holds the per-worker Parser that decodes a frame through
// every layer into a decoders.Summary.
package parser
