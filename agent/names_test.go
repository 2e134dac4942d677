package agent

import (
	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/agent/web"
	"github.com/layerscope/layerscope/agent/workers"
)

// Names the tests use, defined by the parts that own them.
const (
	publishInterval   = workers.PublishInterval
	pathRefresh       = workers.PathRefresh
	captureWriteGrace = web.CaptureWriteGrace
	MaxAPIRequests    = web.MaxAPIRequests
)

type (
	PMTUReport     = api.PMTUReport
	OversizeReport = api.OversizeReport
)
