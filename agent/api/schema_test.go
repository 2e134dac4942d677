package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// full is a Connection with every optional part present.
func full() Connection {
	t := time.Date(2026, 5, 9, 12, 0, 0, 123, time.UTC)
	s := Sides{Client: 3, Server: 2}
	return Connection{
		Time: t, Seq: 7, Node: "node-1", ID: "ct:42", View: ViewPre, State: StateFinal, End: "idle", Protocol: "tcp",
		Client:  Endpoint{Addr: "10.244.0.5:40000", IP: "10.244.0.5", Port: 40000, Namespace: "default", Pod: "pod-a", Workload: "a"},
		Service: &Endpoint{Addr: "10.96.0.42:8080", IP: "10.96.0.42", Port: 8080, Namespace: "default", Service: "my-service"},
		Backend: Endpoint{Addr: "10.244.1.8:8080", IP: "10.244.1.8", Port: 8080},
		NAT: &NAT{ConntrackID: 42, Original: "tcp a -> b", Reply: "tcp c -> a", DNAT: true, From: "10.96.0.42:8080",
			To: "10.244.1.8:8080", SNAT: true, ClientNAT: "10.0.0.10:40000"},
		Outcome: "refused", Failed: true,
		Layers:  []Layer{{"l3", StatusOK, ""}, {"l4", StatusFail, "SYN → RST"}, {"l7", StatusOK, "HTTP 200"}},
		Summary: "L3 ok · L4 SYN → RST", Start: t, Last: t, Packets: s, Bytes: s,
		Hops: []Hop{{Interface: "veth-pod-a", Kind: "veth", Role: "pod", Direction: "in", Encap: "none", First: t, Last: t,
			Packets: s, Bytes: s, Retransmits: s, ZeroWindows: s}},
		TCP: &TCP{Flags: []string{"SYN", "RST"}, SYNs: 1, RSTFrom: []string{"server"}, FINFrom: []string{"client"},
			HandshakeInterface: "veth-pod-a", ServerRTT: 0.001, Retransmits: s, ZeroWindows: s},
		L7: &L7{App: "dns", Requests: 1, Responses: 1, Errors: 1, Name: "my-servic.default.svc.cluster.local", NameTruncated: true,
			Exchanges: []Exchange{{Time: t, Latency: 0.002, ID: 9, Rcode: "NXDOMAIN", Status: 0, Failed: true,
				Name: "my-servic.default.svc.cluster.local", NameTruncated: true}}},
		PMTU: []PMTUReport{{Time: t, Interface: "vxlan0", Reporter: "10.244.0.1", MTU: 1450, Quoted: "q", Flow: "f", Count: 1}},
		Policy: &Policy{Verdict: PolicyDenied, Detail: "ingress of default/b denied by default/deny-all",
			Denials: []PolicyDenial{{Direction: "ingress", Namespace: "default", Pod: "b", Policy: "deny-all", Policies: []string{"deny-all", "allow-x"},
				Rule: "default/allow-x spec.ingress[0]", Change: "port matches, no from peer selects the source"}},
			AllowedBy: []string{"default/allow-y spec.egress[0]"}},
	}
}

func TestSchemaAcceptsEncodedConnections(t *testing.T) {
	for _, c := range []Connection{full(), {Layers: []Layer{}, View: ViewDirect, State: StateProgress, End: "active", Outcome: "syn_sent"}} {
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateConnection(b); err != nil {
			t.Errorf("%s\n%v", b, err)
		}
	}
}

func TestSchemaRejects(t *testing.T) {
	good, _ := json.Marshal(full())
	for _, tt := range []struct{ name, from, to, want string }{
		{"bad enum", `"view":"pre"`, `"view":"sideways"`, "$.view"},
		{"wrong type", `"seq":7`, `"seq":"7"`, "$.seq: string"},
		{"unknown field", `"seq":7`, `"seq":7,"extra":1`, "unexpected property extra"},
		{"missing field", `"node":"node-1",`, ``, "missing node"},
		{"nested", `"status":"fail"`, `"status":"broken"`, "$.layers[1].status"},
		{"time", `"time":"2026-05-09T12:00:00.000000123Z"`, `"time":"yesterday"`, "not a date-time"},
		{"exchange name", `"failed":true,"name":"my-servic.default.svc.cluster.local"`, `"failed":true,"name":7`, "$.l7.exchanges[0].name"},
		{"name truncated", `"name_truncated":true}]`, `"name_truncated":"yes"}]`, "$.l7.exchanges[0].name_truncated"},
		{"policy verdict", `"verdict":"policy"`, `"verdict":"firewall"`, "$.policy.verdict"},
		{"policy direction", `"direction":"ingress"`, `"direction":"sideways"`, "$.policy.denials[0].direction"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(string(good), tt.from, tt.to, 1)
			if doc == string(good) {
				t.Fatalf("%q not in the document", tt.from)
			}
			err := ValidateConnection([]byte(doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

// TestSchemaCoversTypes keeps the schema and the Go types in step: every
// JSON field of every type is a property of its schema, and the reverse.
func TestSchemaCoversTypes(t *testing.T) {
	var root schema
	if err := json.Unmarshal(ConnectionSchema, &root); err != nil {
		t.Fatal(err)
	}
	defs := map[reflect.Type]*schema{
		reflect.TypeFor[Connection](): &root, reflect.TypeFor[Endpoint](): root.Defs["endpoint"],
		reflect.TypeFor[NAT](): root.Defs["nat"], reflect.TypeFor[Layer](): root.Defs["layer"],
		reflect.TypeFor[Sides](): root.Defs["sides"], reflect.TypeFor[Hop](): root.Defs["hop"],
		reflect.TypeFor[TCP](): root.Defs["tcp"], reflect.TypeFor[L7](): root.Defs["l7"],
		reflect.TypeFor[Exchange](): root.Defs["exchange"], reflect.TypeFor[PMTUReport](): root.Defs["pmtu"],
		reflect.TypeFor[Policy](): root.Defs["policy"], reflect.TypeFor[PolicyDenial](): root.Defs["policy_denial"],
	}
	for typ, s := range defs {
		if s == nil {
			t.Errorf("%s: no schema", typ)
			continue
		}
		fields := map[string]bool{}
		for i := range typ.NumField() {
			name, opts, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			fields[name] = true
			if _, ok := s.Properties[name]; !ok {
				t.Errorf("%s.%s (%q) is not in the schema", typ, typ.Field(i).Name, name)
			}
			required := !strings.Contains(opts, "omit")
			if required != contains(s.Required, name) {
				t.Errorf("%s %q: required in schema %v, in Go (no omitempty) %v", typ, name, contains(s.Required, name), required)
			}
		}
		for p := range s.Properties {
			if !fields[p] {
				t.Errorf("schema property %q has no field in %s", p, typ)
			}
		}
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
