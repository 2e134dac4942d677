package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport"
	"k8s.io/client-go/transport/spdy"

	"github.com/layerscope/layerscope/agent/api"
	"github.com/layerscope/layerscope/internal/fleet"
)

// cluster is how the commands reach the cluster and its agents.
type cluster struct {
	flags *genericclioptions.ConfigFlags

	agentNamespace string
	agentSelector  string
	agentPort      int
	agentScheme    string
	nodes          []string
	allNodes       bool
	// agentUser and agentPasswordFile are the agents' basic auth (their
	// web config), for captures: sent only through port-forwards, as the
	// API server consumes the Authorization header of a proxied request.
	agentUser, agentPasswordFile string

	once    sync.Once
	rc      *rest.Config
	kube    kubernetes.Interface
	initErr error

	// forwards are the port-forwards opened for this command (closed at
	// its end).
	forwards []chan struct{}
}

func (c *cluster) addFlags(f *pflag.FlagSet) {
	f.StringVar(&c.agentNamespace, "agent-namespace", "layerscope", "namespace of the agents' DaemonSet")
	f.StringVar(&c.agentSelector, "agent-selector", "app.kubernetes.io/name=layerscope", "label selector of the agents' pods")
	f.IntVar(&c.agentPort, "agent-port", 9431, "the agents' API port (the chart's metricsPort)")
	f.StringVar(&c.agentScheme, "agent-scheme", "http", "http, or https when the agents serve TLS (the chart's webConfig)")
	f.StringSliceVar(&c.nodes, "node", nil, "ask the agents of these nodes (repeat or comma-separate)")
	f.BoolVar(&c.allNodes, "all-nodes", false, "ask the agents of every node")
	f.StringVar(&c.agentUser, "agent-user", "", "the agents' basic auth user (their web config; captures need it): the agents are then reached through port-forwards")
	f.StringVar(&c.agentPasswordFile, "agent-password-file", "", "file holding --agent-user's password")
}

func (c *cluster) init() error {
	c.once.Do(func() {
		c.rc, c.initErr = c.flags.ToRESTConfig()
		if c.initErr != nil {
			c.initErr = fmt.Errorf("kubeconfig: %w", c.initErr)
			return
		}
		c.rc.UserAgent = "kubectl-layerscope/" + version
		c.kube, c.initErr = kubernetes.NewForConfig(c.rc)
	})
	return c.initErr
}

// namespace is -n, else the kubeconfig context's namespace.
func (c *cluster) namespace() string {
	ns, _, err := c.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// forbidden is the API server's refusal, naming the permission missing.
func forbidden(verb, resource, ns string, err error) error {
	return forbiddenHint(verb, resource, ns, err, "an operator needs the chart's layerscope-operator ClusterRole (rbac.operator.create=true), bound to them")
}

// forbiddenHint is forbidden with hint saying where the permission comes
// from.
func forbiddenHint(verb, resource, ns string, err error, hint string) error {
	where := "cluster-wide"
	if ns != "" {
		where = "in namespace " + ns
	}
	msg := fmt.Sprintf("forbidden: you may not %s %s %s", verb, resource, where)
	if err != nil {
		msg += " (" + err.Error() + ")"
	}
	return &codeError{code: exitForbidden, err: errors.New(msg + "; " + hint)}
}

// allowed asks the API server whether the user may verb resource/sub in ns.
func (c *cluster) allowed(ctx context.Context, verb, resource, sub, ns string) (bool, error) {
	r, err := c.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
		Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
			Namespace: ns, Verb: verb, Resource: resource, Subresource: sub}},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return r.Status.Allowed, nil
}

// agentPods lists the Running agent pods, one per node, by node name.
func (c *cluster) agentPods(ctx context.Context) (map[string]*corev1.Pod, error) {
	if err := c.init(); err != nil {
		return nil, err
	}
	pods, err := c.kube.CoreV1().Pods(c.agentNamespace).List(ctx, metav1.ListOptions{LabelSelector: c.agentSelector})
	if apierrors.IsForbidden(err) {
		return nil, forbidden("list", "pods", c.agentNamespace, err)
	}
	if err != nil {
		return nil, fmt.Errorf("listing the agents' pods (%s in namespace %s): %w", c.agentSelector, c.agentNamespace, err)
	}
	out := map[string]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		out[p.Spec.NodeName] = p
	}
	return out, nil
}

// selectedNodes are the nodes --node or --all-nodes ask for; required
// says one of them must be given.
func (c *cluster) selectedNodes(pods map[string]*corev1.Pod) ([]string, error) {
	switch {
	case c.allNodes && len(c.nodes) > 0:
		return nil, errors.New("--node and --all-nodes exclude each other")
	case c.allNodes:
		nodes := make([]string, 0, len(pods))
		for n := range pods {
			nodes = append(nodes, n)
		}
		sort.Strings(nodes)
		if len(nodes) == 0 {
			return nil, &codeError{code: exitNoAgent, err: fmt.Errorf("no running agent pod (%s in namespace %s)", c.agentSelector, c.agentNamespace)}
		}
		return nodes, nil
	case len(c.nodes) > 0:
		return c.nodes, nil
	}
	return nil, errors.New("say which agents: --node NAME or --all-nodes")
}

// agents connects to the agents of nodes: through the API server's pod
// proxy, or through port-forwards where the proxy is refused and
// port-forward allowed. Each node must run an agent.
func (c *cluster) agents(ctx context.Context, pods map[string]*corev1.Pod, nodes []string) ([]fleet.Agent, error) {
	var missing []string
	for _, n := range nodes {
		if pods[n] == nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, &codeError{code: exitNoAgent, err: fmt.Errorf("no running agent pod on node %s (%s in namespace %s)", strings.Join(missing, ", "), c.agentSelector, c.agentNamespace)}
	}
	if (c.agentUser == "") != (c.agentPasswordFile == "") {
		return nil, errors.New("--agent-user and --agent-password-file go together")
	}
	proxy := false
	var err error
	if c.agentUser == "" {
		if proxy, err = c.allowed(ctx, "get", "pods", "proxy", c.agentNamespace); err != nil {
			return nil, fmt.Errorf("asking the API server what you may do: %w", err)
		}
	}
	forward := false
	if !proxy {
		if forward, err = c.allowed(ctx, "create", "pods", "portforward", c.agentNamespace); err != nil {
			return nil, fmt.Errorf("asking the API server what you may do: %w", err)
		}
		switch {
		case !forward && c.agentUser != "":
			return nil, forbidden("create", "pods/portforward (the agents' basic auth goes through port-forwards only)", c.agentNamespace, nil)
		case !forward:
			return nil, forbidden("get", "pods/proxy (nor create pods/portforward)", c.agentNamespace, nil)
		}
	}
	out := make([]fleet.Agent, 0, len(nodes))
	for _, n := range nodes {
		var cl *api.Client
		if forward {
			cl, err = c.forwardClient(pods[n], "")
		} else {
			cl, err = c.proxyClient(pods[n])
		}
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", n, err)
		}
		out = append(out, fleet.Agent{Node: n, Client: cl})
	}
	return out, nil
}

// proxyClient reaches the pod's agent through the API server's pod proxy.
func (c *cluster) proxyClient(p *corev1.Pod) (*api.Client, error) {
	name := p.Name + ":" + strconv.Itoa(c.agentPort)
	if c.agentScheme == "https" {
		name = "https:" + name
	}
	u := c.kube.CoreV1().RESTClient().Get().Namespace(p.Namespace).Resource("pods").Name(name).SubResource("proxy").URL()
	rc := rest.CopyConfig(c.rc)
	rc.Timeout = 0 // follow streams and captures last; api.Client bounds the others
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, err
	}
	hc.Transport = &forbiddenExplainer{next: hc.Transport, ns: p.Namespace}
	return api.NewClient(api.ClientConfig{URL: u.String(), HTTPClient: hc})
}

// forbiddenExplainer turns the API server's 403 on the pod proxy (a
// permission revoked between the check and the request) into the message
// that names the missing permission.
type forbiddenExplainer struct {
	next http.RoundTripper
	ns   string
}

func (f *forbiddenExplainer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusForbidden && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, forbidden("get", "pods/proxy", f.ns, errors.New(strings.TrimSpace(string(b))))
	}
	return resp, err
}

// captureAgent connects to the agent of node for a capture. With
// --agent-user, as agents() does (basic auth through a port-forward).
// Else, when the kubeconfig's user authenticates with a bearer token, the
// agent is reached through a port-forward carrying that token, which the
// agent checks with the API server (its captureAPI.kubernetesAuth): the
// API server's pod proxy drops the Authorization header of the requests it
// forwards, a port-forward carries the bytes as they are. Without a token,
// as agents() does, and the agent's refusal says what it wants.
func (c *cluster) captureAgent(ctx context.Context, pods map[string]*corev1.Pod, node string) (fleet.Agent, error) {
	tok := ""
	if c.agentUser == "" {
		var err error
		if tok, err = c.bearerToken(); err != nil {
			return fleet.Agent{}, fmt.Errorf("kubeconfig: %w", err)
		}
	}
	if tok == "" {
		agents, err := c.agents(ctx, pods, []string{node})
		if err != nil {
			return fleet.Agent{}, err
		}
		return agents[0], nil
	}
	p := pods[node]
	if p == nil {
		return fleet.Agent{}, &codeError{code: exitNoAgent, err: fmt.Errorf("no running agent pod on node %s (%s in namespace %s)", node, c.agentSelector, c.agentNamespace)}
	}
	ok, err := c.allowed(ctx, "create", "pods", "portforward", c.agentNamespace)
	if err != nil {
		return fleet.Agent{}, fmt.Errorf("asking the API server what you may do: %w", err)
	}
	if !ok {
		return fleet.Agent{}, forbiddenHint("create", "pods/portforward (a capture reaches the agent through a port-forward, which carries your token to it: the pod proxy drops it)",
			c.agentNamespace, nil, "an operator who captures needs the chart's operator Role with rbac.operator.capture=true, bound to them")
	}
	cl, err := c.forwardClient(p, tok)
	if err != nil {
		return fleet.Agent{}, fmt.Errorf("node %s: %w", node, err)
	}
	return fleet.Agent{Node: node, Client: cl}, nil
}

// bearerToken is the token the kubeconfig's user sends the API server
// (a token, a token file, an exec or auth-provider plugin), "" when it
// authenticates otherwise (a client certificate). It runs the
// kubeconfig's own transport wrappers over a request that goes nowhere.
func (c *cluster) bearerToken() (string, error) {
	if err := c.init(); err != nil {
		return "", err
	}
	tc, err := c.rc.TransportConfig()
	if err != nil {
		return "", err
	}
	var got string
	rt, err := transport.HTTPWrappersForConfig(tc, roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Get("Authorization")
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: r}, nil
	}))
	if err != nil {
		return "", err
	}
	req, err := http.NewRequest(http.MethodGet, c.rc.Host, nil)
	if err != nil {
		return "", err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	scheme, tok, ok := strings.Cut(got, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", nil
	}
	return strings.TrimSpace(tok), nil
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// bearer sends a bearer token with every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// forwardClient opens a port-forward to the pod's agent port on the
// loopback and returns a client of it, sending token when not empty; the
// forward ends with the command.
func (c *cluster) forwardClient(p *corev1.Pod, token string) (*api.Client, error) {
	if c.agentScheme == "https" {
		return nil, errors.New("--agent-scheme https through a port-forward: the agent's certificate names the node, not 127.0.0.1; ask for get on pods/proxy instead")
	}
	tr, up, err := spdy.RoundTripperFor(c.rc)
	if err != nil {
		return nil, err
	}
	u := c.kube.CoreV1().RESTClient().Post().Namespace(p.Namespace).Resource("pods").Name(p.Name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(up, &http.Client{Transport: tr}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(c.agentPort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		return nil, err
	}
	errc := make(chan error, 1)
	go func() { errc <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		return nil, fmt.Errorf("port-forward to %s/%s: %w", p.Namespace, p.Name, err)
	}
	c.forwards = append(c.forwards, stop)
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		return nil, fmt.Errorf("port-forward to %s/%s: no local port (%v)", p.Namespace, p.Name, err)
	}
	cfg := api.ClientConfig{URL: fmt.Sprintf("http://127.0.0.1:%d", ports[0].Local),
		Username: c.agentUser, PasswordFile: c.agentPasswordFile}
	if token != "" {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		cfg.HTTPClient = &http.Client{Transport: &bearer{token: token, next: tr}}
	}
	return api.NewClient(cfg)
}

// close ends the command's port-forwards.
func (c *cluster) close() {
	for _, s := range c.forwards {
		close(s)
	}
	c.forwards = nil
}

// selected returns the agents --node or --all-nodes asks for.
func (c *cluster) selected(ctx context.Context) ([]fleet.Agent, error) {
	pods, err := c.agentPods(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := c.selectedNodes(pods)
	if err != nil {
		return nil, err
	}
	return c.agents(ctx, pods, nodes)
}

// registerCompletions completes flag values from the API and from the
// API's vocabularies.
func (c *cluster) registerCompletions(root *cobra.Command) {
	_ = root.RegisterFlagCompletionFunc("node", func(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
		pods, err := c.agentPods(cmd.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var nodes []string
		for n := range pods {
			nodes = append(nodes, n)
		}
		slices.Sort(nodes)
		return nodes, cobra.ShellCompDirectiveNoFileComp
	})
}

// completePods completes pod names of the -n namespace.
func (c *cluster) completePods(ctx context.Context, prefix string) []string {
	if c.init() != nil {
		return nil
	}
	pods, err := c.kube.CoreV1().Pods(c.namespace()).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range pods.Items {
		out = append(out, prefix+p.Name)
	}
	return out
}

// completeServices completes service names of the -n namespace.
func (c *cluster) completeServices(ctx context.Context, prefix string) []string {
	if c.init() != nil {
		return nil
	}
	svcs, err := c.kube.CoreV1().Services(c.namespace()).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range svcs.Items {
		out = append(out, prefix+s.Name)
	}
	return out
}
