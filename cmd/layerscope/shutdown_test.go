package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/testns"
)

// cleanStopBound is how long the agent may take from SIGTERM to a clean
// exit whatever it is waiting for: its own stop gives requests in flight
// and then the trace exporter 5 s in all (6 s at most), before stopBound
// would end it with an error, and well within a pod's default termination
// grace period of 30 s.
const cleanStopBound = 10 * time.Second

// TestAgentStopsPromptlyWhenPeersAreUnreachable runs the agent binary as a
// host-network pod runs it, inside a node's namespace, where the API
// server and the OTLP collector it is given are a blackhole (their
// address is routed, every packet to it is dropped: dials hang until
// their timeout). Its informers are retrying, its exporter has spans to
// send, its captures are attached and clients hold connections to its
// web server open (an idle keep-alive scrape, a follow stream). It must
// exit 0 within cleanStopBound of SIGTERM, logging a clean stop.
func TestAgentStopsPromptlyWhenPeersAreUnreachable(t *testing.T) {
	testns.RequireRoot(t)
	node := testns.Make(t, "sdn")
	sink := testns.Make(t, "sds")
	testns.VethPair(t, node, "eth0", "10.0.9.1/24", sink, "eth0", "10.0.9.9/24")
	nft := exec.Command("ip", "netns", "exec", sink.Name, "nft", "-f", "-")
	nft.Stdin = strings.NewReader("table inet blackhole {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp dport { 6443, 4318 } drop\n }\n}\n")
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: gone
  cluster: {server: "https://10.0.9.9:6443", insecure-skip-tls-verify: true}
users:
- name: agent
  user: {token: not-checked}
contexts:
- name: gone
  context: {cluster: gone, user: agent}
current-context: gone
`), 0o600); err != nil {
		t.Fatal(err)
	}

	const addr = "127.0.0.1:9431"
	// The agent's log, in a file the test reads while the agent writes.
	logf, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	stderr := logged(logf.Name())
	cmd := exec.Command("ip", "netns", "exec", node.Name, binary, "agent", "--metrics-addr", addr,
		"--node-name", "node-x", "--k8s-metadata", "api", "--kubeconfig", kubeconfig,
		"--otlp-endpoint", "http://10.0.9.9:4318", "--otlp-sample-ratio", "1")
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	exited := make(chan struct{})
	go func() { waited <- cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// Clients in the node's namespace, as a scraper on the node would be.
	dial := func(ctx context.Context, network, a string) (c net.Conn, err error) {
		err = node.Enter.Do(func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, a)
			return err
		})
		return c, err
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dial}}
	base := "http://" + addr
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(base + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(body, []byte(`layerscope_agent_capture_attached{role="pod"} 1`)) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent's eth0 (a veth, a pod's to the agent) is not captured within 10s: %v\n%s", err, stderr.String())
		}
	}
	// A follow stream stays open.
	req, err := http.NewRequest(http.MethodGet, base+"/api/v1/connections?follow=1", nil)
	if err != nil {
		t.Fatal(err)
	}
	follow, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Body.Close()
	events := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(follow.Body)
		for sc.Scan() {
			events <- sc.Text()
		}
		close(events)
	}()
	// Connections to a server beside the blackhole, all traced: the
	// exporter has spans for the unreachable collector.
	var ln net.Listener
	if err := sink.Enter.Do(func() (err error) {
		ln, err = net.Listen("tcp", "10.0.9.9:8000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// Until the informers and the exporter are dialing the blackhole.
	for deadline := time.Now().Add(30 * time.Second); !connecting(t, node.Name, "10.0.9.9:6443") || !connecting(t, node.Name, "10.0.9.9:4318"); {
		_ = node.Enter.Do(func() error {
			c, err := net.DialTimeout("tcp", "10.0.9.9:8000", time.Second)
			if err == nil {
				c.Close()
			}
			return nil
		})
		if time.Now().After(deadline) {
			t.Fatalf("the agent is not dialing both the API server and the collector after 30s: the test does not show it stops while it does\n%s", stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		took := time.Since(start)
		t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
		if err != nil {
			t.Errorf("agent exited with %v after SIGTERM\n%s", err, stderr.String())
		}
	case <-time.After(cleanStopBound):
		t.Fatalf("agent did not exit within %v of SIGTERM\n%s", cleanStopBound, stderr.String())
	}
	if !strings.Contains(stderr.String(), "agent stopped") {
		t.Errorf("no clean-stop log line:\n%s", stderr.String())
	}
	for range events { // the follow stream ended
	}
}

// connecting reports whether a socket in netns has a TCP connection (in
// any state) to addr.
func connecting(t *testing.T, netns, addr string) bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", netns, "ss", "-Htan", "dst", addr).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	return len(bytes.TrimSpace(out)) > 0
}

// logged reads a log file whenever its String is called.
type logged string

func (f logged) String() string {
	b, err := os.ReadFile(string(f))
	if err != nil {
		return err.Error()
	}
	return string(b)
}
