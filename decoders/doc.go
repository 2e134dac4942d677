// Package decoders defines the fixed-size Summary a frame is decoded into,
// the per-layer decoder interface and the sentinel errors decoders count.
package decoders
