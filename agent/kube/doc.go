// Package kube keeps the Kubernetes metadata the agent names addresses
// with: which pod (namespace, name, workload) holds an IP, which Service a
// ClusterIP:port or NodePort belongs to, and which Service endpoints a
// backend IP is listed in.
//
// # Sources
//
// A Source feeds a Store from one of two places. From the API server
// (ModeAPI: the in-cluster service account, or a kubeconfig) through
// client-go shared informers: the pods of this node (field selector
// spec.nodeName=NODE), every Service and every EndpointSlice
// (discovery.k8s.io/v1). From a static metadata file (ModeFile) directly:
// the file's objects are written into the Store and the Store is synced;
// no clientset and no informer is involved (the agent binary links no
// client-go fake). The file is a YAML stream of Pod, Service and
// EndpointSlice objects, or a v1 List of them, exactly as `kubectl get
// pods,services,endpointslices -o yaml` prints them; every document decodes
// strictly into its Kubernetes type, and an unknown field or kind is an
// error naming the file. The file is checked for changes every
// Config.ReloadInterval; a changed file is applied whole (objects set, the
// objects it no longer lists deleted), an unreadable or invalid one is
// logged and its last content kept. A file's pods of every node are kept,
// each with its node.
//
// # Degraded operation
//
// Without API access the agent keeps running and labels by address: when
// not in a pod (no in-cluster configuration) Open logs one line and the
// Source stays empty; when the API refuses the service account (RBAC) or
// cannot be reached, the first failure of a streak is logged once, the
// informers keep retrying, and the Store keeps what it had. Store.Synced
// says whether the store holds a complete copy.
//
// With the API only this node's pods are known: a backend on another node
// is named (pod, node, Service) from its EndpointSlice entry, but its
// workload is not. A metadata file lists the pods of every node.
//
// # Workloads
//
// A pod's workload is its controller owner reference: a ReplicaSet whose
// name is the Deployment's name followed by the pod's pod-template-hash
// label is taken as that Deployment (the name the Deployment controller
// gives its ReplicaSets; the agent does not watch ReplicaSets); a
// StatefulSet, DaemonSet, Job or any other controller as it is. A pod
// without a controller is its own workload (kind Pod).
//
// # Concurrency and cost
//
// Lookups (Pod, Service, Endpoint, IsEndpoint, Backends) take the
// store's read lock for a map probe or two and do not allocate (Backends
// only to grow the slice it is given); the returned values hold strings
// shared with the store. Informer handlers take the write lock per object.
//
// Every Service and EndpointSlice of the cluster is watched (a client's
// connection may go to any of them), so the memory is kept proportional to
// what the lookups read rather than to the API objects: compact indexes
// instead of objects. The informers' transforms convert each pod, Service
// and EndpointSlice into a small object of this package (compact.go) before
// the informer caches it: a pod's IPs, node and workload; a Service's
// addresses and ports (name, port, NodePort, protocol); a slice's Service,
// ports and, per endpoint address, the pod, node and readiness, in about
// 50 bytes (node and port names interned, a slice's pod names end to end
// in one string). The store indexes those very objects (one copy, shared
// with the informer cache): by pod IP, by Service address and port or
// NodePort, by endpoint address (a 4-byte key for IPv4) and by Service for
// its slices. TestScaleAPI measures it against the lab's API server,
// BenchmarkLookupsAtScale the lookups (bench/README.md). The reflectors
// are client-go's: watches ask for bookmarks, so a reconnecting watch
// resumes from its last resource version instead of relisting, and
// relists after errors back off with jitter.
package kube
