package capture

import "testing"

func TestOffloadSmoke(t *testing.T) {
	requireRoot(t)
	p := newPair(t)
	r, err := Open(p.index, Config{NetNS: p.a.Enter, Offload: &OffloadConfig{}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reason, err := r.OffloadFallback()
	t.Logf("offload %v reason %q err %v", r.Offload() != nil, reason, err)
}
