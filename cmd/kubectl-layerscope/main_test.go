package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// run runs the client with args against no cluster (an empty kubeconfig)
// and returns its output and error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	t.Setenv("KUBECONFIG", t.TempDir()+"/none")
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestArgumentErrors: wrong flags are named before any cluster is asked.
func TestArgumentErrors(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "-o", "xml"}, `-o "xml": want table, wide, json or yaml`},
		{[]string{"observe", "-o", "text"}, `-o "text": want table, wide, json or yaml`},
		{[]string{"diagnose", "pod/a", "svc/b", "-o", "wide"}, `-o "wide": want text, json or yaml`},
		{[]string{"diagnose", "pod/a", "svc/b", "--since", "0s"}, "--since 0s: want a positive duration"},
		{[]string{"capture", "--node", "n"}, "-w is required"},
		{[]string{"capture", "--all-nodes", "-w", "x.pcap"}, "capture asks one agent: --node NAME"},
		{[]string{"observe", "--layer", "l9"}, "filter: layer="},
		{[]string{"status", "--color", "sometimes"}, `--color "sometimes"`},
	} {
		_, err := run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want it to say %q", tt.args, err, tt.want)
		}
		if err != nil && exitCode(err) != exitError {
			t.Errorf("%v: exit %d, want %d", tt.args, exitCode(err), exitError)
		}
	}
}

// TestCompletion completes flag values from the API's vocabularies.
func TestCompletion(t *testing.T) {
	out, err := run(t, "__complete", "observe", "--outcome", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"refused", "timeout", "failed"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("--outcome completion lacks %s:\n%s", want, out)
		}
	}
	out, _ = run(t, "__complete", "diagnose", "")
	if !strings.Contains(out, "pod/\n") || !strings.Contains(out, "svc/\n") {
		t.Errorf("diagnose FROM completion:\n%s", out)
	}
}
