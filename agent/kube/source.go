package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/layerscope/layerscope/internal/informer"
)

// Mode selects where the metadata comes from.
type Mode string

// Modes.
const (
	// ModeAuto: the file when Config.File is set, else the API when the
	// process runs in a pod (KUBERNETES_SERVICE_HOST is set), else off.
	ModeAuto Mode = "auto"
	ModeAPI  Mode = "api"  // the API server: in-cluster, or Config.Kubeconfig
	ModeFile Mode = "file" // a static file (see ReadFile)
	ModeOff  Mode = "off"  // no metadata: addresses stay addresses
)

// ParseMode parses the value of --k8s-metadata; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeAPI, ModeFile, ModeOff:
		return m, nil
	}
	return "", fmt.Errorf("--k8s-metadata %q: %w", s, ErrBadMode)
}

// Defaults of Config.
const (
	DefaultReloadInterval = 2 * time.Second
	DefaultResync         = 10 * time.Minute
	DefaultSyncWarning    = 30 * time.Second
)

// Config configures Open. The zero value runs in ModeAuto with the
// defaults below.
type Config struct {
	// Mode is the source; "" means ModeAuto.
	Mode Mode
	// File is the metadata file of ModeFile (see ReadFile).
	File string
	// Kubeconfig is a kubeconfig file for ModeAPI; empty means the
	// in-cluster configuration (the pod's service account).
	Kubeconfig string
	// Node is the node the agent runs on: only its pods are watched
	// (spec.nodeName field selector). Empty watches every pod.
	Node string
	// ReloadInterval is how often ModeFile checks the file for changes,
	// applied as updates through the same informers. Zero means
	// DefaultReloadInterval; negative never reloads.
	ReloadInterval time.Duration
	// Resync is the informers' resync period. Zero means DefaultResync.
	Resync time.Duration
	// SyncWarning is how long the API may take to deliver its first
	// complete copy before the store logs that labels fall back to
	// addresses. Zero means DefaultSyncWarning.
	SyncWarning time.Duration
	// Logger receives the store's logs. Nil means slog.Default().
	Logger *slog.Logger
}

// Source feeds a Store from the API server or a metadata file through
// client-go shared informers. Create it with Open, start it with Run.
type Source struct {
	cfg    Config
	log    *slog.Logger
	store  *Store
	client kubernetes.Interface
	file   *fileState // ModeFile: the file's content applied last
	onFile func([]runtime.Object)

	mu     sync.Mutex
	failed bool // the last list or watch failed (logged once per failure streak)
	// unreachable: the last request got no response (reachability.go).
	unreachable bool
}

// Open resolves cfg's mode and prepares the source. A configuration error
// (unknown mode, unreadable or invalid file or kubeconfig) is returned;
// the absence of the API (not in a pod) is not: the source then runs in
// ModeAPI without data, logs why once and reports itself not synced.
func Open(cfg Config) (*Source, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Resync == 0 {
		cfg.Resync = DefaultResync
	}
	if cfg.ReloadInterval == 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if cfg.SyncWarning <= 0 {
		cfg.SyncWarning = DefaultSyncWarning
	}
	mode, err := ParseMode(string(cfg.Mode))
	if err != nil {
		return nil, err
	}
	if mode == ModeAuto {
		switch {
		case cfg.File != "":
			mode = ModeFile
		case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
			mode = ModeAPI
		default:
			mode = ModeOff
		}
	}
	s := &Source{cfg: cfg, log: cfg.Logger.With("component", "kube", "source", string(mode)), store: NewStore(mode, cfg.Node)}
	switch mode {
	case ModeFile:
		if cfg.File == "" {
			return nil, ErrNoFile
		}
		b, objs, err := readFile(cfg.File)
		if err != nil {
			return nil, err
		}
		s.file = &fileState{content: b, objs: objs}
	case ModeAPI:
		// client-go logs through klog from here on; Quiet first, so that
		// its logger is set before any read (another source may be
		// starting its informers meanwhile).
		informer.Quiet()
		var rc *rest.Config
		if cfg.Kubeconfig != "" {
			if rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err != nil {
				return nil, fmt.Errorf("--kubeconfig %s: %w", cfg.Kubeconfig, err)
			}
		} else if rc, err = rest.InClusterConfig(); err != nil {
			s.log.Warn("Kubernetes API not available, services and pods are labelled by address", "err", err)
			return s, nil
		}
		rc.UserAgent = "layerscope-agent"
		rc.Wrap(s.wrapTransport)
		if cfg.Node == "" {
			s.log.Warn("no node name (--node-name, $NODE_NAME): watching the pods of every node")
		}
		if s.client, err = kubernetes.NewForConfig(rc); err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
	}
	return s, nil
}

// Store returns the store the source feeds.
func (s *Source) Store() *Store { return s.store }

// File reports whether the source serves a metadata file (ModeFile).
func (s *Source) File() bool { return s.file != nil }

// OnFile has fn receive every object of the metadata file each time Run
// applies it (at start and after each change), NetworkPolicies and
// Namespaces included, which the store does not keep. Call it before Run.
func (s *Source) OnFile(fn func([]runtime.Object)) { s.onFile = fn }

// Client returns the clientset the informers read; nil without the API
// (ModeFile, ModeOff, or not in a pod).
func (s *Source) Client() kubernetes.Interface { return s.client }

func readFile(path string) ([]byte, []runtime.Object, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--k8s-metadata-file: %w", err)
	}
	objs, err := Decode(b)
	if err != nil {
		return nil, nil, fmt.Errorf("--k8s-metadata-file %s: %w", path, err)
	}
	return b, objs, nil
}

// Run starts the informers and keeps the store up to date until ctx is
// done. It never fails: list and watch errors (RBAC, an unreachable API
// server) are logged once per failure streak and retried by the
// informers while the store keeps what it has.
func (s *Source) Run(ctx context.Context) {
	if s.file != nil {
		s.runFile(ctx)
		return
	}
	if s.client == nil {
		<-ctx.Done()
		return
	}
	Watch(ctx, s.client, s.store, s.cfg.Resync, s.onWatchError)
	// The client retries refused connections quietly before an informer
	// reports an error: say so when the first copy is late.
	t := time.NewTimer(s.cfg.SyncWarning)
	defer t.Stop()
	select {
	case <-t.C:
		if !s.store.Synced() {
			s.onWatchError(fmt.Errorf("%w after %v", errNotSynced, s.cfg.SyncWarning))
		}
	case <-ctx.Done():
	}
	<-ctx.Done()
}

var errNotSynced = errors.New("no complete copy of pods, services and endpointslices")

// Watch starts shared informers of client for the pods of store's node,
// Services and EndpointSlices, writing store, and returns at once. The
// store reports itself synced once the objects of every informer's
// initial list have been applied to it. onError, when not nil, receives
// the informers' list and watch errors (nil when a list succeeds again).
//
// client-go's own logging (klog) is discarded: the errors that matter
// reach onError.
func Watch(ctx context.Context, client kubernetes.Interface, store *Store, resync time.Duration, onError func(error)) {
	informer.Quiet()
	all := informers.NewSharedInformerFactory(client, resync)
	local := all
	if store.node != "" {
		local = informers.NewSharedInformerFactoryWithOptions(client, resync, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", store.node).String()
		}))
	}
	pods := local.Core().V1().Pods().Informer()
	svcs := all.Core().V1().Services().Informer()
	slices := all.Discovery().V1().EndpointSlices().Informer()
	_ = pods.SetTransform(compactPodObj)
	_ = svcs.SetTransform(compactServiceObj)
	_ = slices.SetTransform(compactSliceObj)
	// The store is complete once each handler was delivered its informer's
	// initial list (the registrations' HasSynced), not merely once the
	// informers' caches hold it.
	synced := []cache.InformerSynced{
		informer.Handle(pods, store.setPod, func(o *podObj) { store.DeletePod(o.Namespace, o.Name) }),
		informer.Handle(svcs, store.setService, func(o *svcObj) { store.DeleteService(o.Namespace, o.Name) }),
		informer.Handle(slices, store.setSlice, func(o *sliceObj) { store.DeleteEndpointSlice(o.Namespace, o.Name) }),
	}
	if onError != nil {
		for _, inf := range []cache.SharedIndexInformer{pods, svcs, slices} {
			_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) { onError(err) })
		}
	}
	local.Start(ctx.Done())
	all.Start(ctx.Done())
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), synced...) {
			store.synced.Store(true)
			if onError != nil {
				onError(nil)
			}
		}
	}()
}

// onWatchError logs the first error of a failure streak and the recovery.
func (s *Source) onWatchError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil && s.failed:
		s.failed = false
		s.log.Info("Kubernetes metadata available again")
	case err != nil && !s.failed:
		s.failed = true
		msg := "Kubernetes API not reachable, services and pods are labelled by address until it is"
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			msg = "Kubernetes API refused the agent (RBAC: it needs get, list and watch on pods, services and endpointslices); services and pods are labelled by address"
		}
		s.log.Warn(msg, "err", err)
	}
}

// SourceOf returns a Source that runs no informers over a store its
// caller fills (with the Set and Delete methods), for tests and for
// programs that get their metadata elsewhere. The store is marked synced:
// its content is taken as complete.
func SourceOf(store *Store) *Source {
	store.synced.Store(true)
	return &Source{log: slog.Default(), store: store}
}
