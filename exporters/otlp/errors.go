package otlp

import "errors"

var (
	errSampleRatio = errors.New("otlp: sample ratio outside [0, 1]")
	errProtocol    = errors.New("otlp: unknown OTLP protocol")
	errResource    = errors.New("otlp: build resource")
	errClosed      = errors.New("otlp: exporter shut down")
)
