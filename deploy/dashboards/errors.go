package dashboards

import "errors"

// Problems Lint reports; every error it returns wraps one of them.
var (
	ErrJSON       = errors.New("not a dashboard JSON document")
	ErrDashboard  = errors.New("dashboard field missing or invalid") // uid, title, schemaVersion
	ErrPanelID    = errors.New("panel id missing or duplicate")
	ErrGridPos    = errors.New("panel grid position invalid")
	ErrDatasource = errors.New("panel does not use the ${datasource} variable")
	ErrUnit       = errors.New("panel has no unit")
	ErrTarget     = errors.New("panel target invalid")
	ErrPromQL     = errors.New("PromQL does not parse")
	ErrVariable   = errors.New("unknown variable")
	ErrMetric     = errors.New("metric not exported by the agent")
	ErrFilter     = errors.New("selector without the node or namespace filter")
	ErrTemplating = errors.New("templating variable missing or invalid")
	ErrPanelType  = errors.New("panel type unknown")
)
