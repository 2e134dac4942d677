package api

import (
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCaptureRequestRoundTrip(t *testing.T) {
	for _, r := range []CaptureRequest{
		{},
		{Filter: "host 10.244.1.8 and port 8080", Duration: 30 * time.Second, MaxPackets: 100, MaxBytes: 1 << 20, SnapLen: 128, Interfaces: []string{"veth*", "eth0"}},
	} {
		got, err := ParseCaptureRequest(r.Values())
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("round trip of %+v gave %+v", r, got)
		}
	}
}

func TestCaptureRequestErrorsNameTheFlag(t *testing.T) {
	long := strings.Repeat("x", 4096)
	for q, flag := range map[string]string{
		"duration=-1s":           "--duration",
		"duration=soon":          "--duration",
		"max_packets=-5":         "--max-packets",
		"max_bytes=lots":         "--max-bytes",
		"snaplen=big":            "--snaplen",
		"interface=veth[":        "--interface",
		"duration=" + long + "s": "--duration",
	} {
		v, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseCaptureRequest(v)
		if err == nil || !strings.HasPrefix(err.Error(), flag+" ") {
			t.Errorf("%.40s: err %v, want one naming %s", q, err, flag)
		}
		if err != nil && len(err.Error()) > MaxQuoted+100 {
			t.Errorf("%.40s: error of %d bytes quotes the whole input", q, len(err.Error()))
		}
	}
}
