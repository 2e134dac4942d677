package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/layerscope/layerscope/agent"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/internal/promtest"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// agentSockets maps the URL of an agent that labAgents started to the
// unix:// URL of its --api-socket, where it serves captures.
var agentSockets sync.Map

// socketURL returns the unix:// URL of the agent at u.
func socketURL(t *testing.T, u string) string {
	t.Helper()
	s, ok := agentSockets.Load(u)
	if !ok {
		t.Fatalf("no socket for agent %s", u)
	}
	return s.(string)
}

// labAgents builds a lab (its names start with prefix) and runs an agent
// on each of nodes in this process, with the lab's Kubernetes metadata
// file; it returns the lab and the agents' URLs in the order of nodes.
func labAgents(t *testing.T, prefix string, nodes ...string) (*lab.Lab, []string) {
	t.Helper()
	return labAgentsWith(t, prefix, nil, nodes...)
}

// labAgentsWith is labAgents with web, when not nil, serving the agents'
// HTTP over TLS with basic auth (their URLs are then https).
func labAgentsWith(t *testing.T, prefix string, web *promtest.WebTLS, nodes ...string) (*lab.Lab, []string) {
	t.Helper()
	return labAgentsIn(t, &lab.Config{}, prefix, web, nodes...)
}

// labAgentsIn is labAgentsWith in a lab built from cfg (its Prefix is
// made from prefix). In a Kubernetes lab the agents' metadata comes from
// its API server, else from the lab's metadata file.
func labAgentsIn(t *testing.T, cfg *lab.Config, prefix string, web *promtest.WebTLS, nodes ...string) (*lab.Lab, []string) {
	t.Helper()
	testns.RequireRoot(t)
	var b [3]byte
	_, _ = rand.Read(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := *cfg
	c.Prefix = prefix + hex.EncodeToString(b[:]) + "-"
	if c.Kubernetes && c.StateDir == "" {
		c.StateDir = t.TempDir()
	}
	l, err := lab.New(ctx, &c)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	kc := agent.KubeConfig{File: filepath.Join(t.TempDir(), "metadata.yaml")}
	if c.Kubernetes {
		path, err := l.Kubeconfig()
		if err != nil {
			t.Fatal(err)
		}
		kc = agent.KubeConfig{Mode: kube.ModeAPI, Kubeconfig: path}
	} else if err := l.WriteMetadata(kc.File); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, n := range nodes {
		sock := filepath.Join(t.TempDir(), "api.sock")
		cfg := agent.Config{NetNS: l.NetNS(n), MetricsAddr: "127.0.0.1:0", Node: n,
			Kube:      kc,
			APISocket: sock, OnDemand: agent.OnDemandConfig{Enabled: true}}
		scheme, curl := "http", []string{"curl", "-sf", "-o", "/dev/null"}
		if web != nil {
			cfg.WebConfigFile, scheme = web.WebConfig, "https"
			curl = append(curl, "--cacert", web.CAFile, "-u", web.User+":"+web.Pass)
		}
		a, err := agent.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(runCtx) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
		})
		u := scheme + "://" + a.Addr().String()
		urls = append(urls, u)
		agentSockets.Store(u, "unix://"+sock)
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if code, _ := run(t, append(curl, u+"/readyz")...); code == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("agent not ready")
			}
		}
	}
	return l, urls
}
