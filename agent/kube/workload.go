package kube

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Workload kinds a pod is attributed to.
const (
	KindDeployment  = "Deployment"
	KindReplicaSet  = "ReplicaSet"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
	KindJob         = "Job"
	KindPod         = "Pod" // a pod without a controller is its own workload
)

// workloadOf returns the kind and name of the workload that owns p, from
// its controller owner reference: a ReplicaSet whose name ends in the pod's
// pod-template-hash belongs to the Deployment named by the rest (what the
// Deployment controller names its ReplicaSets), StatefulSets, DaemonSets,
// Jobs and any other controller are taken as they are. A pod without a
// controller is its own workload.
func workloadOf(p *corev1.Pod) (kind, name string) {
	for i := range p.OwnerReferences {
		o := &p.OwnerReferences[i]
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if o.Kind == KindReplicaSet {
			if h := p.Labels["pod-template-hash"]; h != "" {
				if d, ok := strings.CutSuffix(o.Name, "-"+h); ok && d != "" {
					return KindDeployment, d
				}
			}
		}
		return o.Kind, o.Name
	}
	return KindPod, p.Name
}
