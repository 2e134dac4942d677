package main

import (
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/labk8s"
	"github.com/layerscope/layerscope/lab"
)

// TestLiveDiagnoseInPodAgents is TestLiveDiagnoseSeedFailures with the
// agents of the DaemonSet, installed with helm into the Kubernetes lab's
// real cluster, in each kube-proxy mode: `layerscope diagnose` asks the
// agents in the pods, at their nodes' addresses (through a proxy that
// reaches only the lab's nodes).
func TestLiveDiagnoseInPodAgents(t *testing.T) {
	for _, mode := range lab.KubeProxyModes {
		t.Run(string(mode), func(t *testing.T) {
			l := labk8s.KubeletLab(t, mode, "p")
			c, err := l.KubeClient()
			if err != nil {
				t.Fatal(err)
			}
			labk8s.HelmInstall(t, l)
			labk8s.WaitDaemonSet(t, c, 60*time.Second)
			// The diagnose processes reach the agents through the proxy.
			t.Setenv("HTTP_PROXY", labk8s.Proxy(t, l))
			testDiagnoseSeedFailures(t, l, labk8s.AgentURLs(l))
		})
	}
}
