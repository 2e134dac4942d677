package kube_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/layerscope/layerscope/agent/flow"
	"github.com/layerscope/layerscope/agent/kube"
	"github.com/layerscope/layerscope/internal/testns"
	"github.com/layerscope/layerscope/lab"
)

// EnvScale set to "full" runs TestScaleAPI at full size: 10,000 Services
// with 150,000 endpoints and 100 endpoint changes per second for a minute.
// Otherwise 1,000 Services, 15,000 endpoints, 20 changes per second for
// 20 s.
const EnvScale = "LAYERSCOPE_SCALE"

// TestScaleAPI creates a cluster's worth of Services and EndpointSlices
// (objects only, no containers) and 110 pods on node-1 through the
// Kubernetes lab's real API server, opens the agent's metadata source for
// node-1 against it, and measures the sync time, the heap the metadata
// holds, lookup latency, how far the store lags a churn of endpoint
// changes, and the watch traffic the API server reports sending.
func TestScaleAPI(t *testing.T) {
	services, perSlice, churnRate, churnFor := 1000, 15, 20, 20*time.Second
	if os.Getenv(EnvScale) == "full" {
		services, churnRate, churnFor = 10000, 100, time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	l, client := newScaleLab(ctx, t)
	start := time.Now()
	clusterIPs := populate(ctx, t, client, services, perSlice, 110)
	t.Logf("created %d Services, %d endpoints in EndpointSlices, 110 pods on %s in %v",
		services, services*perSlice, lab.Node1, time.Since(start).Round(time.Millisecond))

	kc, err := l.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	before := apiserverMetrics(ctx, t, client)
	heap0 := heapInuse()
	src, err := kube.Open(kube.Config{Mode: kube.ModeAPI, Kubeconfig: kc, Node: lab.Node1})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); src.Run(runCtx) }()
	t.Cleanup(func() { stop(); wg.Wait() })
	store := src.Store()
	start = time.Now()
	for !store.Synced() {
		if time.Since(start) > 5*time.Minute {
			t.Fatal("the store did not sync in 5 minutes")
		}
		time.Sleep(time.Millisecond)
	}
	syncTime := time.Since(start)
	// Synced means complete: every object of the initial lists applied.
	if p, s, sl := store.Counts(); p < 110 || s < services || sl < services {
		t.Fatalf("synced with %d pods, %d Services, %d EndpointSlices; want 110, %d, %d", p, s, sl, services, services)
	}
	synced := apiserverMetrics(ctx, t, client)
	heap := heapInuse() - heap0
	pods, svcs, slices := store.Counts()
	t.Logf("sync: %v for %d pods, %d Services, %d EndpointSlices; metadata heap %.1f MiB; process RSS %.1f MiB",
		syncTime.Round(time.Millisecond), pods, svcs, slices, float64(heap)/(1<<20), rssMiB(t))
	t.Logf("initial lists: %s", synced.delta(before))

	// The agent binary against the same API server, in node-1's network
	// namespace: first with metadata off (its RSS without it), then with
	// the API's, without a memory limit and with GOMEMLIMIT at the
	// DaemonSet's memory request (128 MiB), one after the other.
	bin := testns.LayerscopeBinary(t)
	off := startAgent(ctx, t, bin, l.NetNS(lab.Node1), nil, "--k8s-metadata", "off")
	time.Sleep(3 * time.Second)
	offRSS, _ := procMem(t, off.pid)
	t.Logf("agent process with metadata off: VmRSS %.1f MiB, %s", offRSS, off.heap(t))
	off.stop(t)
	var agents []*agentProc
	for _, env := range [][]string{nil, {"GOMEMLIMIT=128MiB"}} {
		start := time.Now()
		ag := startAgent(ctx, t, bin, l.NetNS(lab.Node1), env, "--k8s-metadata", "api", "--kubeconfig", kc)
		for !ag.synced(t, services) {
			if time.Since(start) > 5*time.Minute {
				t.Fatal("the agent did not sync in 5 minutes")
			}
			time.Sleep(100 * time.Millisecond)
		}
		took, cpu := time.Since(start), procCPU(t, ag.pid)
		rss, hwm := procMem(t, ag.pid)
		t.Logf("agent process %v: synced in %v (from its start) with %.2f s CPU; VmRSS %.1f MiB after sync, peak (VmHWM) %.1f MiB, %s",
			env, took.Round(time.Millisecond), cpu.Seconds(), rss, hwm, ag.heap(t))
		agents = append(agents, ag)
	}
	agentsSynced := apiserverMetrics(ctx, t, client)
	t.Logf("the agents' initial lists: %s", agentsSynced.delta(synced))

	// Lookups: every Service by ClusterIP, a sample of endpoints.
	start = time.Now()
	for i, ip := range clusterIPs {
		sv, ok := store.Service(netip.AddrPortFrom(ip, 80), flow.ProtoTCP)
		if !ok || sv.Name != fmt.Sprintf("svc-%05d", i) {
			t.Fatalf("Service lookup of %v: %+v %v", ip, sv, ok)
		}
	}
	perLookup := time.Since(start) / time.Duration(len(clusterIPs))
	if _, ok := store.Pod(netip.MustParseAddr("10.250.0.10")); !ok {
		t.Error("local pod 10.250.0.10 not known")
	}
	t.Logf("Service lookup: %v each (%d lookups)", perLookup, len(clusterIPs))

	// Churn: flip one endpoint's readiness per change, round robin over the
	// slices; the store must show the last state of each changed slice.
	cpu0 := procCPU(t, 0)
	agCPU0 := make([]time.Duration, len(agents))
	for i, ag := range agents {
		agCPU0[i] = procCPU(t, ag.pid)
	}
	tick := time.NewTicker(time.Second / time.Duration(churnRate))
	defer tick.Stop()
	var changes atomic.Int64
	last := map[int]int{}
	var mu sync.Mutex
	start = time.Now()
	var cw sync.WaitGroup
	work := make(chan int)
	for range 8 {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for n := range work {
				i := n % services
				if _, err := client.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice(fmt.Sprintf("svc-%05d", i), i, perSlice, n/services%perSlice), metav1.UpdateOptions{}); err != nil {
					t.Errorf("update: %v", err)
					return
				}
				mu.Lock()
				last[i] = n / services % perSlice
				mu.Unlock()
				changes.Add(1)
			}
		}()
	}
	for n := 0; time.Since(start) < churnFor; n++ {
		<-tick.C
		work <- n
	}
	close(work)
	cw.Wait()
	sent := time.Since(start)
	lag := time.Now()
	for i, notReady := range last {
		ip := endpointIP(i, perSlice, notReady)
		for e, ok := store.Endpoint(ip); !ok || e.Ready; e, ok = store.Endpoint(ip) {
			if time.Since(lag) > time.Minute {
				t.Fatalf("svc-%05d: endpoint %v not seen not ready a minute after the churn", i, ip)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	churned := apiserverMetrics(ctx, t, client)
	cpu := procCPU(t, 0) - cpu0
	agCPU := make([]time.Duration, len(agents))
	for i, ag := range agents {
		agCPU[i] = procCPU(t, ag.pid) - agCPU0[i]
	}
	t.Logf("churn: %d endpoint changes in %v (%.0f/s); store caught up %v after the last; test process CPU %.2f s (%.1f%% of one core)",
		changes.Load(), sent.Round(time.Millisecond), float64(changes.Load())/sent.Seconds(), time.Since(lag).Round(time.Millisecond),
		cpu.Seconds(), 100*cpu.Seconds()/sent.Seconds())
	t.Logf("during the churn: %s", churned.delta(agentsSynced))
	t.Logf("after the churn: metadata heap %.1f MiB, process RSS %.1f MiB", float64(heapInuse()-heap0)/(1<<20), rssMiB(t))
	// The agents saw the churn through their own watches.
	for _, ag := range agents {
		for !ag.sawChurn(t, last, perSlice) {
			if time.Since(lag) > 2*time.Minute {
				t.Fatalf("agent %v: its metrics do not show the churn's changes", ag.env)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for i, ag := range agents {
		rss, hwm := procMem(t, ag.pid)
		t.Logf("agent process %v during the churn: %.2f s CPU (%.1f%% of one core); VmRSS %.1f MiB after, peak (VmHWM) %.1f MiB, %s",
			ag.env, agCPU[i].Seconds(), 100*agCPU[i].Seconds()/sent.Seconds(), rss, hwm, ag.heap(t))
	}
}

// TestSyncedMeansApplied: a store reports itself synced only once its
// handlers have applied every object of the informers' initial lists,
// not as soon as the informers' caches hold them. Against the lab's API
// server, two sources for node-1 start together; one store's handlers are
// held (its lock taken). Once the free one is synced (so the informers of
// both have listed), the held one must not be; released, it must be
// complete the moment it says it is synced.
func TestSyncedMeansApplied(t *testing.T) {
	const services, pods = 300, 20
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l, client := newScaleLab(ctx, t)
	populate(ctx, t, client, services, 15, pods)
	kc, err := l.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	var stores []*kube.Store
	for range 2 {
		src, err := kube.Open(kube.Config{Mode: kube.ModeAPI, Kubeconfig: kc, Node: lab.Node1})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, src.Store())
		wg.Add(1)
		go func() { defer wg.Done(); src.Run(runCtx) }()
	}
	free, held := stores[0], stores[1]
	unlock := kube.LockStore(held)
	released := false
	defer func() {
		if !released {
			unlock()
		}
	}()
	start := time.Now()
	for !free.Synced() {
		if time.Since(start) > 2*time.Minute {
			t.Fatal("the free store did not sync in 2 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The held store's informers listed as the free one's did; give them
	// a second more to mark a sync.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if held.Synced() {
			t.Fatal("the store reports itself synced while its handlers have applied nothing")
		}
	}
	unlock()
	released = true
	for !held.Synced() {
		if time.Since(start) > 3*time.Minute {
			t.Fatal("the released store did not sync")
		}
		time.Sleep(time.Millisecond)
	}
	if p, s, sl := held.Counts(); p < pods || s < services || sl < services {
		t.Fatalf("synced with %d pods, %d Services, %d EndpointSlices; want %d, %d, %d", p, s, sl, pods, services, services)
	}
}

// ns is the namespace of the scale tests' objects.
const ns = "scale"

// populate creates the namespace ns and in it, through client,
// services Services without a selector with one EndpointSlice of
// perSlice endpoints each, written here (the controller leaves slices
// managed by others alone), and pods pods on node-1 with their IPs set
// through the status subresource (10.250.0.10 on). It returns the
// Services' ClusterIPs.
func populate(ctx context.Context, t *testing.T, client kubernetes.Interface, services, perSlice, pods int) []netip.Addr {
	t.Helper()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	clusterIPs := make([]netip.Addr, services)
	parallel(t, services, func(i int) error {
		name := fmt.Sprintf("svc-%05d", i)
		sv, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		clusterIPs[i] = netip.MustParseAddr(sv.Spec.ClusterIP)
		_, err = client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(name, i, perSlice, -1), metav1.CreateOptions{})
		return err
	})
	parallel(t, pods, func(i int) error {
		p, err := client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("local-%03d", i)},
			Spec:       corev1.PodSpec{NodeName: lab.Node1, Containers: []corev1.Container{{Name: "c", Image: "none"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		ip := fmt.Sprintf("10.250.0.%d", 10+i)
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		_, err = client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
	return clusterIPs
}

// newScaleLab starts the Kubernetes lab (removed when the test ends) and
// returns it with an admin client allowed 1,000 requests per second.
func newScaleLab(ctx context.Context, t *testing.T) (*lab.Lab, kubernetes.Interface) {
	t.Helper()
	testns.RequireRoot(t)
	bin := testns.K8sBin(t)
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	l, err := lab.New(ctx, &lab.Config{Prefix: "s" + hex.EncodeToString(b[:]) + "-", StateDir: t.TempDir(),
		Kubernetes: true, KubeProxyMode: lab.KubeProxyNFTables, K8sBin: bin})
	if err != nil {
		t.Fatalf("kubernetes lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("lab close: %v", err)
		}
	})
	rc, err := l.KubeRESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	rc.QPS, rc.Burst = 1000, 2000
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	return l, client
}

// endpointIP is endpoint j of slice i.
func endpointIP(i, perSlice, j int) netip.Addr {
	n := 10<<24 | 128<<16 + uint32(i*perSlice+j)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// slice is Service name's EndpointSlice with perSlice endpoints, endpoint
// notReady (if any) not ready.
func slice(name string, i, perSlice, notReady int) *discoveryv1.EndpointSlice {
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "scale-test"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Port: ptr(int32(8080)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	node := fmt.Sprintf("node-%04d", i%5000)
	for j := range perSlice {
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{endpointIP(i, perSlice, j).String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr(j != notReady)},
			NodeName:   &node,
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "scale", Name: fmt.Sprintf("%s-%02d", name, j)},
		})
	}
	return sl
}

func ptr[T any](v T) *T { return &v }

// parallel runs fn(0..n-1) on 16 goroutines and fails on the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func heapInuse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

func rssMiB(t *testing.T) float64 {
	rss, _ := procMem(t, 0)
	return rss
}

// procPath is the /proc directory of process pid, 0 for this one.
func procPath(pid int, file string) string {
	if pid == 0 {
		return "/proc/self/" + file
	}
	return fmt.Sprintf("/proc/%d/%s", pid, file)
}

// procMem is the resident set size of process pid (0: this one) and its
// peak, in MiB.
func procMem(t *testing.T, pid int) (rss, hwm float64) {
	b, err := os.ReadFile(procPath(pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, _ := strings.Cut(line, ":")
		kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		switch name {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// procCPU is the user and system CPU time of process pid (0: this one).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(procPath(pid, "stat"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ 100
}

// agentProc is a layerscope agent process the test started.
type agentProc struct {
	once sync.Once // stop
	env  []string  // added to the environment
	pid  int
	url  string
	done chan error
	cmd  *exec.Cmd
}

// startAgent runs the agent binary bin in the network namespace netns with
// args and the environment variables env added, serving /metrics on a
// free port of 127.0.0.1, and waits for its /readyz; the process is
// stopped when the test ends.
func startAgent(ctx context.Context, t *testing.T, bin, netns string, env []string, args ...string) *agentProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.CommandContext(ctx, bin, append([]string{"agent", "--netns", netns, "--node-name", lab.Node1, "--metrics-addr", addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	logs, err := os.Create(filepath.Join(t.TempDir(), "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	err = cmd.Start()
	_ = logs.Close() // the agent has its own descriptor
	if err != nil {
		t.Fatal(err)
	}
	output := func() string { b, _ := os.ReadFile(logs.Name()); return string(b) }
	a := &agentProc{env: env, pid: cmd.Process.Pid, url: "http://" + addr, done: make(chan error, 1), cmd: cmd}
	go func() { a.done <- cmd.Wait() }()
	t.Cleanup(func() {
		a.stop(t)
		if t.Failed() {
			t.Logf("agent %v output:\n%s", args, output())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r, err := http.Get(a.url + "/readyz"); err == nil {
			_ = r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return a
			}
		}
		select {
		case err := <-a.done:
			a.once.Do(func() {})
			t.Fatalf("agent %v exited: %v\n%s", args, err, output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent %v not ready in 30 s", args)
		}
	}
}

// stop ends the agent (SIGTERM, then SIGKILL after 10 s) and waits for
// it, once.
func (a *agentProc) stop(t *testing.T) {
	a.once.Do(func() {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			_ = a.cmd.Process.Kill()
			t.Errorf("agent %d did not stop in 10 s", a.pid)
			<-a.done
		}
	})
}

// scrape is the agent's /metrics.
func (a *agentProc) scrape(t *testing.T) string {
	r, err := http.Get(a.url + "/metrics")
	if err != nil {
		t.Fatalf("agent /metrics: %v", err)
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// heap describes the agent's Go heap by its own go_memstats metrics: in
// use, and the size at which the next collection starts.
func (a *agentProc) heap(t *testing.T) string {
	body := a.scrape(t)
	return fmt.Sprintf("Go heap in use %.1f MiB, next GC at %.1f MiB",
		metricValue(body, "go_memstats_heap_inuse_bytes")/(1<<20), metricValue(body, "go_memstats_next_gc_bytes")/(1<<20))
}

// synced reports whether the agent's metadata is synced with at least
// services Services and EndpointSlices and 110 pods, by its own metrics.
func (a *agentProc) synced(t *testing.T, services int) bool {
	body := a.scrape(t)
	return metricValue(body, `layerscope_kube_metadata_synced{source="api"}`) == 1 &&
		metricValue(body, `layerscope_kube_metadata_objects{kind="pod"}`) >= 110 &&
		metricValue(body, `layerscope_kube_metadata_objects{kind="service"}`) >= float64(services) &&
		metricValue(body, `layerscope_kube_metadata_objects{kind="endpointslice"}`) >= float64(services)
}

// sawChurn reports whether every Service of changed that the agent
// exports the ready endpoints of (the first 100 by name, its default)
// shows perSlice-1 ready, and that it exports at least one.
func (a *agentProc) sawChurn(t *testing.T, changed map[int]int, perSlice int) bool {
	body := a.scrape(t)
	listed := 0
	for i := range changed {
		switch metricValue(body, fmt.Sprintf(`layerscope_service_endpoints{namespace="scale",service="svc-%05d"}`, i)) {
		case -1:
		case float64(perSlice - 1):
			listed++
		default:
			return false
		}
	}
	return listed > 0
}

// metricValue is the value of the sample series (name and labels as
// exposed) in a text exposition, or -1.
func metricValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// apiMetrics are counters from the API server's /metrics summed by name
// and resource.
type apiMetrics map[string]float64

func apiserverMetrics(ctx context.Context, t *testing.T, client kubernetes.Interface) apiMetrics {
	t.Helper()
	body, err := client.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		t.Fatalf("API server /metrics: %v", err)
	}
	out := apiMetrics{}
	for _, line := range strings.Split(string(body), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		if !ok {
			continue
		}
		switch name {
		case "apiserver_watch_events_total", "apiserver_watch_events_sizes_sum", "apiserver_watch_events_sizes_count":
		case "apiserver_request_total", "apiserver_response_sizes_sum":
		default:
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		res := label(labels, "resource")
		if res != "endpointslices" && res != "services" && res != "pods" {
			continue
		}
		key := name + "{" + res
		if v := label(labels, "verb"); v != "" {
			key += "," + v
		}
		v, _ := strconv.ParseFloat(strings.TrimSpace(value), 64)
		out[key+"}"] += v
	}
	return out
}

func label(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		if v, ok := strings.CutPrefix(kv, name+`="`); ok {
			return strings.TrimSuffix(v, `"`)
		}
	}
	return ""
}

// delta prints the counters that grew since b.
func (m apiMetrics) delta(b apiMetrics) string {
	var keys []string
	for k, v := range m {
		if v != b[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s +%.0f", k, m[k]-b[k]))
	}
	return strings.Join(parts, "; ")
}

// maxIdleRequestRate is the documented bound of the requests per second
// that 50 synced agents' informers make to the API server while nothing
// changes: their watches stay open (bookmarks keep them current), nothing
// relists.
const maxIdleRequestRate = 1.0

// TestFiftyAgentsRequestRate runs 50 agents' metadata sources against the
// Kubernetes lab's API server (100 Services, 20 pods), checks that one
// EndpointSlice change reaches every one of them through its watch, and
// that, synced and idle for 30 s, together they stay within
// maxIdleRequestRate requests per second by the API server's own
// apiserver_request_total.
func TestFiftyAgentsRequestRate(t *testing.T) {
	const agents, services, perSlice = 50, 100, 15
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l, client := newScaleLab(ctx, t)
	populate(ctx, t, client, services, perSlice, 0)
	kc, err := l.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	before := apiserverMetrics(ctx, t, client)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	stores := make([]*kube.Store, agents)
	start := time.Now()
	for i := range agents {
		node := lab.Node1
		if i%2 == 1 {
			node = lab.Node2
		}
		src, err := kube.Open(kube.Config{Mode: kube.ModeAPI, Kubeconfig: kc, Node: node})
		if err != nil {
			t.Fatal(err)
		}
		stores[i] = src.Store()
		wg.Add(1)
		go func() { defer wg.Done(); src.Run(runCtx) }()
	}
	for _, st := range stores {
		for !st.Synced() {
			if time.Since(start) > 2*time.Minute {
				t.Fatal("an agent's store did not sync in 2 minutes")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	synced := apiserverMetrics(ctx, t, client)
	t.Logf("%d agents synced in %v; start-up: %s", agents, time.Since(start).Round(time.Millisecond), synced.delta(before))

	// One change reaches every agent.
	ip := endpointIP(0, perSlice, 3)
	if _, err := client.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice("svc-00000", 0, perSlice, 3), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, st := range stores {
		for e, ok := st.Endpoint(ip); !ok || e.Ready; e, ok = st.Endpoint(ip) {
			if time.Since(start) > 3*time.Minute {
				t.Fatalf("agent %d did not see the change", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	idle0 := apiserverMetrics(ctx, t, client)
	const window = 30 * time.Second
	time.Sleep(window)
	idle := apiserverMetrics(ctx, t, client)
	requests := 0.0
	for k, v := range idle {
		if strings.HasPrefix(k, "apiserver_request_total{") {
			requests += v - idle0[k]
		}
	}
	// The test's own two /metrics reads are not in these resources.
	rate := requests / window.Seconds()
	t.Logf("idle %v: %.0f requests (%.2f/s): %s", window, requests, rate, idle.delta(idle0))
	if rate > maxIdleRequestRate {
		t.Errorf("%d idle agents made %.2f requests/s, want at most %v", agents, rate, maxIdleRequestRate)
	}
}
