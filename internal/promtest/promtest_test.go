package promtest

import (
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServer runs a real server that scrapes itself and evaluates a rule
// file every second, and reads scalar and vector queries, the loaded rules
// and a firing alert back through the API.
func TestServer(t *testing.T) {
	bin := Prometheus(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("# TYPE x gauge\nx 1\n"))
	}))
	t.Cleanup(target.Close)
	s := Start(t, bin, `global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: self
    static_configs:
      - targets: [`+strings.TrimPrefix(target.URL, "http://")+`]
`, map[string]string{"rules.yml": `groups:
  - name: g
    rules:
      - alert: Always
        expr: vector(3) > 2
        for: 2s
        labels: {severity: none}
        annotations: {summary: "value {{ $value }}"}
      - alert: Never
        expr: vector(1) > 2
`})

	for _, tt := range []struct {
		q    string
		want []Sample
	}{
		{"scalar(vector(2.5))", []Sample{{map[string]string{}, 2.5}}},
		{`label_replace(vector(+Inf), "a", "b", "", "")`, []Sample{{map[string]string{"a": "b"}, math.Inf(1)}}},
		{"vector(1) > 2", []Sample{}},
	} {
		got, err := s.Query(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s = %v, want %v", tt.q, got, tt.want)
		}
		for i := range got {
			if got[i].Value != tt.want[i].Value || len(got[i].Metric) != len(tt.want[i].Metric) || got[i].Metric["a"] != tt.want[i].Metric["a"] {
				t.Errorf("%s = %v, want %v", tt.q, got, tt.want)
			}
		}
	}
	if _, err := s.Query("rate(x[5m]"); err == nil {
		t.Error("a query that does not parse: no error")
	}
	if _, err := s.Query("x[5m]"); err == nil {
		t.Error("a range vector result: no error")
	}

	groups, err := s.Rules()
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].Rules) != 2 || groups[0].Rules[0].Duration != 2 {
		t.Fatalf("rules = %+v, want group g with Always (for 2s) and Never", groups)
	}

	// Always is pending for 2s, then firing; Never never shows.
	deadline := time.Now().Add(15 * time.Second)
	var states []string
	for {
		alerts, err := s.Alerts()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range alerts {
			if a.Name() != "Always" {
				t.Fatalf("alert %+v, want only Always", a)
			}
			if len(states) == 0 || states[len(states)-1] != a.State {
				states = append(states, a.State)
			}
			if a.State == "firing" && a.Annotations["summary"] != "value 3" {
				t.Errorf("summary %q, want value 3", a.Annotations["summary"])
			}
		}
		if slices.Contains(states, "firing") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !slices.Equal(states, []string{"pending", "firing"}) {
		t.Errorf("Always went through %v, want [pending firing]", states)
	}
	// The target's sample, once scraped.
	var x []Sample
	for deadline := time.Now().Add(10 * time.Second); len(x) == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if x, err = s.Query("x == 1"); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.QueryRange("x", time.Now().Add(-10*time.Second), time.Now(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || len(rs[0].Values) == 0 || rs[0].Values[len(rs[0].Values)-1] != 1 || rs[0].Metric["job"] != "self" {
		t.Errorf("x over the last 10s = %+v, want one series of job self ending at 1", rs)
	}
	if got := Series(x, "job", "__name__"); !slices.Equal(got, []string{"job=self,__name__=x"}) {
		t.Errorf("x = %v, want job=self,__name__=x", got)
	}
}
