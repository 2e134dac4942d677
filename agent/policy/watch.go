package policy

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/informers"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/layerscope/layerscope/internal/informer"
)

// Watch starts shared informers of client for every NetworkPolicy,
// Namespace and Pod, writing store, and returns at once. The store reports
// itself synced once the objects of every informer's initial list have
// been applied to it. onPolicyError, when not nil, receives each policy
// the store leaves out (it does not compile); onError, when not nil, the
// informers' list and watch errors (nil when the informers have synced).
// client-go's own logging is discarded (informer.Quiet).
func Watch(ctx context.Context, client kubernetes.Interface, store *Store, resync time.Duration,
	onError func(error), onPolicyError func(*networkingv1.NetworkPolicy, error)) {
	informer.Quiet()
	f := informers.NewSharedInformerFactory(client, resync)
	pols := f.Networking().V1().NetworkPolicies().Informer()
	nss := f.Core().V1().Namespaces().Informer()
	// The pod informer is the one cache of every pod of the cluster: it
	// gets no namespace index (nothing lists pods by namespace), which
	// would hold each pod's key a second time.
	pods := f.InformerFor(&corev1.Pod{}, func(c kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return coreinformers.NewPodInformer(c, corev1.NamespaceAll, resync, cache.Indexers{})
	})
	_ = pols.SetTransform(informer.TrimMeta)
	_ = nss.SetTransform(informer.TrimMeta)
	_ = pods.SetTransform(compactPodObj)
	polsSynced := informer.Handle(pols, func(o *networkingv1.NetworkPolicy) {
		if err := store.SetPolicy(o); err != nil && onPolicyError != nil {
			onPolicyError(o, err)
		}
	}, func(o *networkingv1.NetworkPolicy) { store.DeletePolicy(o.Namespace, o.Name) })
	nssSynced := informer.Handle(nss, store.SetNamespace, func(o *corev1.Namespace) { store.DeleteNamespace(o.Name) })
	podsSynced := informer.Handle(pods, store.setPod, func(o *Pod) { store.DeletePod(o.Namespace, o.Name) })
	if onError != nil {
		for _, inf := range []cache.SharedIndexInformer{pols, nss, pods} {
			_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) { onError(err) })
		}
	}
	f.Start(ctx.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), polsSynced, nssSynced, podsSynced) {
			store.MarkSynced()
			if onError != nil {
				onError(nil)
			}
		}
	}()
}
