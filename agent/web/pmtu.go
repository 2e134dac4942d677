package web

import (
	"encoding/json"
	"net/http"

	"github.com/layerscope/layerscope/agent/api"
)

// servePMTU answers GET /api/v1/pmtu from the path ticker's cached
// results: the PMTU reports, newest first, and each pod interface's last
// oversize packet.
func (h *Handlers) servePMTU(w http.ResponseWriter, _ *http.Request) {
	var out api.PMTU
	for _, r := range h.cfg.PMTU.Newest(0) {
		out.Reports = append(out.Reports, apiPMTU(&r))
	}
	out.Oversize = h.oversize()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
