// Package otlp exports connection traces and metrics over OTLP.
package otlp
