package policy

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
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
	pods := f.Core().V1().Pods().Informer()
	_ = pols.SetTransform(informer.TrimMeta)
	_ = nss.SetTransform(informer.TrimMeta)
	_ = pods.SetTransform(trimPod)
	polsSynced := informer.Handle(pols, func(o *networkingv1.NetworkPolicy) {
		if err := store.SetPolicy(o); err != nil && onPolicyError != nil {
			onPolicyError(o, err)
		}
	}, func(o *networkingv1.NetworkPolicy) { store.DeletePolicy(o.Namespace, o.Name) })
	nssSynced := informer.Handle(nss, store.SetNamespace, func(o *corev1.Namespace) { store.DeleteNamespace(o.Name) })
	podsSynced := informer.Handle(pods, store.SetPod, func(o *corev1.Pod) { store.DeletePod(o.Namespace, o.Name) })
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

// trimPod keeps of a pod what evaluation uses, so that the informer's
// cache of every pod of the cluster stays small.
func trimPod(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	t := &corev1.Pod{
		TypeMeta: p.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion, Labels: p.Labels,
		},
		Spec:   corev1.PodSpec{HostNetwork: p.Spec.HostNetwork},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}
	for _, c := range p.Spec.Containers {
		var ports []corev1.ContainerPort
		for _, cp := range c.Ports {
			if cp.Name != "" {
				ports = append(ports, corev1.ContainerPort{Name: cp.Name, ContainerPort: cp.ContainerPort, Protocol: cp.Protocol})
			}
		}
		if len(ports) > 0 {
			t.Spec.Containers = append(t.Spec.Containers, corev1.Container{Name: c.Name, Ports: ports})
		}
	}
	return t, nil
}
