package flow

import (
	"testing"
	"time"
)

func TestTCPRoundTrips(t *testing.T) {
	tests := []struct {
		name                      string
		tcp                       TCP
		server, client, handshake time.Duration
	}{
		{name: "full handshake", tcp: TCP{SYN: 1000, SYNACK: 1300, ACK: 1350}, server: 300, client: 50, handshake: 350},
		{name: "no ACK", tcp: TCP{SYN: 1000, SYNACK: 1300}, server: 300},
		{name: "no SYN-ACK", tcp: TCP{SYN: 1000}},
		{name: "nothing", tcp: TCP{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tcp.ServerRTT(); got != tt.server {
				t.Errorf("ServerRTT %v, want %v", got, tt.server)
			}
			if got := tt.tcp.ClientRTT(); got != tt.client {
				t.Errorf("ClientRTT %v, want %v", got, tt.client)
			}
			if got := tt.tcp.HandshakeRTT(); got != tt.handshake {
				t.Errorf("HandshakeRTT %v, want %v", got, tt.handshake)
			}
		})
	}
}

func TestLabels(t *testing.T) {
	seen := map[string]bool{}
	for o := range NumOutcomes {
		s := o.String()
		if s == "" || seen[s] {
			t.Errorf("outcome %d has label %q (empty or duplicate)", o, s)
		}
		seen[s] = true
	}
	if NumOutcomes.String() != "unknown" || NumEndReasons.String() != "unknown" {
		t.Errorf("out-of-range values must map to unknown")
	}
	for e := range NumEndReasons {
		if e.Final() == (e == EndActive) {
			t.Errorf("%v: Final %v", e, e.Final())
		}
	}
	failed := map[Outcome]bool{OutcomeTimeout: true, OutcomeRefused: true, OutcomeReset: true}
	for o := range NumOutcomes {
		if o.Failed() != failed[o] {
			t.Errorf("%v: Failed %v", o, o.Failed())
		}
	}
	if (Exchange{Code: 404}).Failed(AppHTTP) || !(Exchange{Code: 502}).Failed(AppHTTP) ||
		!(Exchange{Code: 3}).Failed(AppDNS) || (Exchange{Code: 0}).Failed(AppDNS) {
		t.Errorf("Exchange.Failed disagrees with its documentation")
	}
	if EncapVXLAN.String() != "vxlan" || AppDNS.String() != "dns" || Encap(9).String() != "none" {
		t.Errorf("enum names")
	}
}
