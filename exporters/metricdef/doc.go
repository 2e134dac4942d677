// Package metricdef is the one table of every metric layerscope exports, with
// its Prometheus and OpenTelemetry names, help, unit and labels.
package metricdef
