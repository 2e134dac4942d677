// Package informer holds the small pieces every client-go informer of the
// agent needs: typed event handlers, a transform that keeps managed
// fields and annotations out of the informer caches, and Quiet, which
// discards client-go's own logging once per process. The handlers run on
// the informer's goroutine.
package informer

import (
	"log/slog"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Handle registers typed add/update/delete handlers on inf: set receives
// added and updated objects, del deleted ones (also when the informer
// only knows the final state of a deleted object). The function returned
// reports whether set has been called with every object of the informer's
// initial list (the informer's own HasSynced only says that its cache
// holds them: the handlers run after, on their own goroutine).
func Handle[T any](inf cache.SharedIndexInformer, set func(*T), del func(*T)) cache.InformerSynced {
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) {
			if v, ok := o.(*T); ok {
				set(v)
			}
		},
		UpdateFunc: func(_, o any) {
			if v, ok := o.(*T); ok {
				set(v)
			}
		},
		DeleteFunc: func(o any) {
			if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
				o = d.Obj
			}
			if v, ok := o.(*T); ok {
				del(v)
			}
		},
	})
	if err != nil {
		return func() bool { return false } // a stopped informer delivers nothing
	}
	return reg.HasSynced
}

// TrimMeta is an informer transform that drops the managed fields and
// annotations (a last-applied-configuration can be the size of the
// object) before the informer caches an object.
func TrimMeta(o any) (any, error) {
	if m, ok := o.(metav1.Object); ok {
		m.SetManagedFields(nil)
		m.SetAnnotations(nil)
	}
	return o, nil
}

var quietOnce sync.Once

// Quiet discards client-go's own logging (klog), once per process; every
// caller returns after it was done. Call it before starting informers:
// klog's logger is a global the informers read.
func Quiet() {
	quietOnce.Do(func() { klog.SetSlogLogger(slog.New(slog.DiscardHandler)) })
}
