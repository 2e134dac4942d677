package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/layerscope/layerscope/internal/promtest"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// startAgentWith is startAgent with a web configuration file: the agent of a
// lab node serving TLS and basic auth through exporter-toolkit.
func startAgentWith(t *testing.T, l *lab.Lab, node, webConfig string) *Agent {
	t.Helper()
	a, err := New(Config{NetNS: l.NetNS(node), MetricsAddr: "127.0.0.1:0", WebConfigFile: webConfig})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	return a
}

// scrape GETs url with c and optional basic auth credentials.
func scrape(t *testing.T, c *http.Client, url, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// TestPrometheusScrapesLabAgents runs the agents of both lab nodes, node-1
// on plain HTTP and node-2 behind TLS and basic auth (an exporter-toolkit web
// configuration with a generated CA and a bcrypt-hashed password), drives the
// service, dns and http scenarios, and has a real Prometheus server scrape
// both. Through Prometheus's query API it expects both targets up and
// per-layer series from each agent (capture, L2 VXLAN, L3, L4, L7 HTTP by
// status class, conntrack), node-1's DNS responses by rcode equal to the dns
// scenario's, and none from node-2, which never sees DNS. The TLS endpoint
// must refuse scrapes without or with wrong credentials and clients that do
// not trust the CA, and `promtool check metrics` must be silent on one
// scrape of each agent.
func TestPrometheusScrapesLabAgents(t *testing.T) {
	testns.RequireRoot(t)
	prometheus := promtest.Prometheus(t)
	promtool := promtest.Promtool(t)
	start := time.Now()

	l := newLab(t)
	w := promtest.NewWebTLS(t)
	a1 := startAgent(t, l, lab.Node1)
	a2 := startAgentWith(t, l, lab.Node2, w.WebConfig)
	url1 := "http://" + a1.Addr().String() + "/metrics"
	url2 := "https://" + a2.Addr().String() + "/metrics"

	prom := promtest.Start(t, prometheus, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: %[1]s
    static_configs:
      - targets: [%[2]q]
  - job_name: %[3]s
    scheme: https
    tls_config:
      ca_file: %[4]q
    basic_auth:
      username: %[5]q
      password: %[6]q
    static_configs:
      - targets: [%[7]q]
`, lab.Node1, a1.Addr().String(), lab.Node2, w.CAFile, w.User, w.Pass, a2.Addr().String()), nil)
	t.Logf("lab, agents and prometheus up in %v", time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var dnsReport *lab.Report
	for _, sc := range []string{lab.ScenarioService, lab.ScenarioDNS, lab.ScenarioHTTP} {
		r, err := l.Traffic(ctx, sc, lab.TrafficOptions{})
		if err != nil {
			t.Fatalf("%s scenario: %v", sc, err)
		}
		if r.Succeeded == 0 {
			t.Fatalf("%s scenario: nothing succeeded: %+v", sc, r)
		}
		if sc == lab.ScenarioDNS {
			dnsReport = r
		}
	}
	t.Logf("scenarios done at %v", time.Since(start).Round(time.Millisecond))

	both := []string{"job=" + lab.Node1, "job=" + lab.Node2}
	var classes []string
	for _, j := range both {
		for _, c := range []string{"2xx", "4xx", "5xx"} {
			classes = append(classes, j+",status_class="+c)
		}
	}
	var rcodes []string
	for rc, n := range dnsReport.RCodes {
		rcodes = append(rcodes, fmt.Sprintf("job=%s,rcode=%s,value=%d", lab.Node1, strings.ToLower(rc), n))
	}
	slices.Sort(rcodes)
	dnsQueries := []string{fmt.Sprintf("job=%s,value=%d", lab.Node1, dnsReport.Attempted)}

	// valued renders samples with their value, for exact comparisons.
	valued := func(samples []promtest.Sample, labels ...string) []string {
		out := make([]string, 0, len(samples))
		for _, s := range samples {
			parts := make([]string, 0, len(labels)+1)
			for _, l := range labels {
				parts = append(parts, l+"="+s.Metric[l])
			}
			out = append(out, strings.Join(append(parts, "value="+strconv.FormatFloat(s.Value, 'f', -1, 64)), ","))
		}
		slices.Sort(out)
		return out
	}
	checks := []struct {
		what   string
		query  string
		render func([]promtest.Sample) []string
		want   []string
	}{
		{"targets up", `up == 1`, func(s []promtest.Sample) []string { return promtest.Series(s, "job") }, both},
		{"TLS target scraped with samples", `scrape_samples_scraped > 100`, func(s []promtest.Sample) []string { return promtest.Series(s, "job") }, both},
		{"capture", `sum by (job) (layerscope_capture_packets_total) > 0`, func(s []promtest.Sample) []string { return promtest.Series(s, "job") }, both},
		{"L2 VXLAN", `sum by (job) (layerscope_l2_tunnel_packets_total{tunnel="vxlan"}) > 0`, func(s []promtest.Sample) []string { return promtest.Series(s, "job") }, both},
		{"L3 IPv4", `sum by (job) (layerscope_l3_packets_total{family="ipv4"}) > 0`, func(s []promtest.Sample) []string { return promtest.Series(s, "job") }, both},
		{"L4 TCP", `sum by (job) (layerscope_l4_packets_total{protocol="tcp"}) > 0`, func(s []promtest.Sample) []string { return promtest.Series(s, "job") }, both},
		{"L7 HTTP responses", `sum by (job, status_class) (layerscope_l7_http_responses_total) > 0`, func(s []promtest.Sample) []string { return promtest.Series(s, "job", "status_class") }, classes},
		{"L7 DNS queries", `sum by (job) (layerscope_l7_dns_queries_total) > 0`, func(s []promtest.Sample) []string { return valued(s, "job") }, dnsQueries},
		{"L7 DNS responses", `sum by (job, rcode) (layerscope_l7_dns_responses_total) > 0`, func(s []promtest.Sample) []string { return valued(s, "job", "rcode") }, rcodes},
		{"conntrack", `layerscope_conntrack_entries > 0`, func(s []promtest.Sample) []string { return promtest.Series(s, "job") }, both},
		{"agent ready", `layerscope_agent_ready == 1`, func(s []promtest.Sample) []string { return promtest.Series(s, "job") }, both},
	}
	got := make([][]string, len(checks))
	var qerr error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		done := true
		for i, c := range checks {
			samples, err := prom.Query(c.query)
			if err != nil {
				qerr = err
				done = false
				continue
			}
			got[i] = c.render(samples)
			done = done && slices.Equal(got[i], c.want)
		}
		if done || time.Now().After(deadline) {
			break
		}
	}
	for i, c := range checks {
		if !slices.Equal(got[i], c.want) {
			t.Errorf("%s: %s = %v, want %v", c.what, c.query, got[i], c.want)
		}
	}
	if qerr != nil && t.Failed() {
		t.Logf("last query error: %v", qerr)
	}
	t.Logf("queries settled at %v", time.Since(start).Round(time.Millisecond))

	// The TLS endpoint: the right CA and credentials only.
	c := w.Client()
	for _, tt := range []struct {
		name       string
		user, pass string
		want       int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", w.User, w.Pass + "x", http.StatusUnauthorized},
		{"unknown user", "admin", w.Pass, http.StatusUnauthorized},
		{"credentials", w.User, w.Pass, http.StatusOK},
	} {
		if code, _ := scrape(t, c, url2, tt.user, tt.pass); code != tt.want {
			t.Errorf("scrape of %s with %s: %d, want %d", lab.Node2, tt.name, code, tt.want)
		}
	}
	var unknownCA x509.UnknownAuthorityError
	if _, err := http.Get(url2); !errors.As(err, &unknownCA) {
		t.Errorf("GET %s trusting only the system roots: %v, want an unknown authority error", url2, err)
	}
	if code, _ := scrape(t, http.DefaultClient, strings.Replace(url2, "https:", "http:", 1), "", ""); code != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS endpoint: %d, want %d", code, http.StatusBadRequest)
	}

	// promtool's lint of one real scrape of each agent.
	code, body1 := scrape(t, http.DefaultClient, url1, "", "")
	if code != http.StatusOK {
		t.Fatalf("scrape of %s: %d", lab.Node1, code)
	}
	code, body2 := scrape(t, c, url2, w.User, w.Pass)
	if code != http.StatusOK {
		t.Fatalf("scrape of %s: %d", lab.Node2, code)
	}
	for _, s := range []struct{ name, body, want string }{
		{lab.Node1, body1, "layerscope_l7_dns_responses_total{"},
		{lab.Node2, body2, "layerscope_l2_tunnel_packets_total{"},
	} {
		if !strings.Contains(s.body, s.want) {
			t.Errorf("scrape of %s lacks %s", s.name, s.want)
		}
		promtest.CheckMetrics(t, promtool, s.name, s.body)
	}
	t.Logf("done at %v", time.Since(start).Round(time.Millisecond))
}
