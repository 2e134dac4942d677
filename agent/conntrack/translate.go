package conntrack

import (
	"github.com/layerscope/layerscope/agent/correlate"
	"github.com/layerscope/layerscope/agent/flow"
)

// Translation returns n as the correlate package's view of a connection.
func (n *NAT) Translation() correlate.Translation {
	return correlate.Translation{ID: n.ID, Original: n.Original.Key(), Reply: n.Reply.Key(), Replied: n.Status&StatusSeenReply != 0}
}

// Translate looks up the connection of the flow k (either direction, before
// or after NAT) and returns its translation; it implements
// correlate.Translator.
func (w *Watcher) Translate(k flow.Key) (correlate.Translation, bool) {
	n, ok := w.Lookup(k)
	if !ok {
		return correlate.Translation{}, false
	}
	return n.Translation(), true
}
