package lab

import "errors"

var (
	// ErrNotRoot reports that the lab needs root (CAP_NET_ADMIN and
	// CAP_SYS_ADMIN) to create namespaces and links.
	ErrNotRoot = errors.New("the lab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	// ErrBadPrefix reports a name prefix that is empty, too long or holds
	// characters other than [a-z0-9-].
	ErrBadPrefix = errors.New("invalid lab prefix")
	// ErrExists reports that a namespace of the lab already exists: another
	// lab with the same prefix is up, or a crashed run left it (see Down).
	ErrExists = errors.New("lab namespace already exists")
	// ErrNotFound reports that a lab (or one of its namespaces) is not there.
	ErrNotFound = errors.New("lab not found")
	// ErrUnknownScenario reports a traffic scenario name not in Scenarios.
	ErrUnknownScenario = errors.New("unknown traffic scenario")
	// ErrNotOwner reports an operation that needs the lab's servers, on a lab
	// attached with Open rather than built with New in this process.
	ErrNotOwner = errors.New("operation needs the lab's servers, which run in another process")
	// ErrBadWiring reports a Config.Wiring other than those of Wirings.
	ErrBadWiring = errors.New("unknown pod wiring")
	// ErrNoKubernetes reports a Kubernetes operation on a lab built without
	// Config.Kubernetes.
	ErrNoKubernetes = errors.New("the lab runs no Kubernetes control plane (Config.Kubernetes)")
	// ErrNoK8sBin reports that the Kubernetes binaries (etcd, kube-apiserver,
	// kube-controller-manager, kube-scheduler, kube-proxy) are not found.
	ErrNoK8sBin = errors.New("kubernetes binaries not found")
	// ErrBadKubeProxyMode reports a Config.KubeProxyMode other than those of
	// KubeProxyModes.
	ErrBadKubeProxyMode = errors.New("unknown kube-proxy mode")
	// ErrKubeComponent reports a control plane component or kube-proxy that
	// exited while the lab needed it.
	ErrKubeComponent = errors.New("kubernetes component exited")
	// ErrNoKubelet reports that what Config.Kubelets needs (Kubernetes,
	// containerd, runc, the CNI plugins, a static layerscope binary) is
	// missing.
	ErrNoKubelet = errors.New("cannot run kubelets")
	// ErrClosed reports use of a Lab after Close.
	ErrClosed = errors.New("lab closed")
)
