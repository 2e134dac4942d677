package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/layerscope/layerscope/internal/labk8s"
	"github.com/layerscope/layerscope/lab"
)

// TestCaptureKubeAuth checks capture clients' bearer tokens against the
// lab's real API server: tokens of ServiceAccounts from TokenRequest, the
// permission granted by a Role with resourceNames, the answers of the
// capture endpoint for no token, an invalid one, a user without the
// permission and one with it, one review for concurrent requests with one
// token, 429 beyond KubeAuthReviews tokens under review, the remembered
// answers, and an agent whose own account may not ask.
func TestCaptureKubeAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l := labk8s.APILab(t, lab.KubeProxyNFTables, "w")
	admin, err := l.KubeClient()
	if err != nil {
		t.Fatal(err)
	}

	const ns = "layerscope"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := func(sa string) string {
		t.Helper()
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	capturer, watcher := token("capturer"), token("watcher")
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "capture-node-2", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{CaptureAPIGroup}, Resources: []string{CaptureResource},
			Verbs: []string{CaptureVerb}, ResourceNames: []string{lab.Node2}}}}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "capturer", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "capturer", Namespace: ns}}}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	serve := func(k *KubeAuth) *httptest.Server {
		h, err := New(Config{OnDemand: OnDemandConfig{Enabled: true, KubeAuth: k}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(h.Handler())
		t.Cleanup(srv.Close)
		return srv
	}
	// get asks for a capture with a bad duration: a client that passes
	// the check gets 400 for it, before any ring is opened.
	get := func(srv *httptest.Server, tok string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/capture?duration=soon", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, strings.TrimSpace(string(body))
	}

	node2 := NewKubeAuth(admin, ns, lab.Node2)
	srv := serve(node2)
	permission := `create on captures.layerscope.io "node-2" in namespace layerscope`

	code, hdr, body := get(srv, "")
	if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") || !strings.Contains(body, permission) {
		t.Errorf("no token: %d %q %q, want 401, a Bearer challenge and the permission named", code, hdr.Get("WWW-Authenticate"), body)
	}
	code, _, body = get(srv, "not-a-token")
	if code != http.StatusUnauthorized || !strings.Contains(body, "not valid") {
		t.Errorf("an invalid token: %d %q, want 401", code, body)
	}
	code, _, body = get(srv, watcher)
	if code != http.StatusForbidden || !strings.Contains(body, "system:serviceaccount:layerscope:watcher") || !strings.Contains(body, permission) {
		t.Errorf("a user without the permission: %d %q, want 403 naming the user and the permission", code, body)
	}
	t.Logf("without the permission: %s", body)
	code, _, body = get(srv, capturer)
	if code != http.StatusBadRequest || !strings.Contains(body, "duration") {
		t.Errorf("a user with the permission: %d %q, want past the check (400 for the bad duration)", code, body)
	}
	// The Role grants node-2 only.
	code, _, body = get(serve(NewKubeAuth(admin, ns, lab.Node1)), capturer)
	if code != http.StatusForbidden || !strings.Contains(body, `"node-1"`) {
		t.Errorf("the capturer on node-1: %d %q, want 403 (resourceNames: node-2)", code, body)
	}

	rc, err := l.KubeRESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent requests with one token share one review (or find its
	// answer remembered) and all pass: the API server sees one
	// TokenReview.
	var reviews atomic.Int32
	counted := rest.CopyConfig(rc)
	counted.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/tokenreviews") {
				reviews.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	countedClient, err := kubernetes.NewForConfig(counted)
	if err != nil {
		t.Fatal(err)
	}
	fresh := serve(NewKubeAuth(countedClient, ns, lab.Node2))
	var wg sync.WaitGroup
	codes := make([]int, 3*KubeAuthReviews)
	for i := range codes {
		wg.Go(func() { codes[i], _, _ = get(fresh, capturer) })
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusBadRequest {
			t.Errorf("concurrent request %d with one token: %d, want 400 (past the check)", i, c)
		}
	}
	if n := reviews.Load(); n != 1 {
		t.Errorf("%d concurrent requests with one token: %d TokenReviews, want 1", len(codes), n)
	}

	// KubeAuthReviews tokens under review (held at the API client until
	// released): one more distinct token gets 429 at once, counted.
	held, release := make(chan struct{}, KubeAuthReviews), make(chan struct{})
	gated := rest.CopyConfig(rc)
	gated.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTrip(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/tokenreviews") {
				held <- struct{}{}
				<-release
			}
			return rt.RoundTrip(r)
		})
	})
	slow, err := kubernetes.NewForConfig(gated)
	if err != nil {
		t.Fatal(err)
	}
	busy := NewKubeAuth(slow, ns, lab.Node2)
	busySrv := serve(busy)
	codes = make([]int, KubeAuthReviews)
	for i := range codes {
		tok := token("busy-" + strconv.Itoa(i))
		wg.Go(func() { codes[i], _, _ = get(busySrv, tok) })
	}
	for range KubeAuthReviews {
		<-held
	}
	code, hdr, body = get(busySrv, watcher)
	if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" || busy.Rejected() != 1 {
		t.Errorf("a token beyond %d under review: %d %q %q, %d rejected; want 429 with Retry-After, counted", KubeAuthReviews, code, hdr.Get("Retry-After"), body, busy.Rejected())
	}
	close(release)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusForbidden {
			t.Errorf("held review %d: %d, want 403 once released (busy-%d has no permission)", i, c, i)
		}
	}

	// Revoked: the answer is remembered up to KubeAuthAllowTTL, a new
	// check sees the revocation at once.
	if err := admin.RbacV1().RoleBindings(ns).Delete(ctx, rb.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if code, _, body = get(srv, capturer); code != http.StatusBadRequest {
		t.Errorf("within %v of an allowed review: %d %q, want the remembered answer", KubeAuthAllowTTL, code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, body = get(serve(NewKubeAuth(admin, ns, lab.Node2)), capturer)
		if code == http.StatusForbidden || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // the API server's RBAC cache
	}
	if code != http.StatusForbidden {
		t.Errorf("after the binding was deleted, a new check: %d %q, want 403", code, body)
	}

	// An agent whose account may not create TokenReviews answers 503
	// naming what it needs.
	rc = rest.CopyConfig(rc)
	rc.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:layerscope:agent"}
	weak, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	code, _, body = get(serve(NewKubeAuth(weak, ns, lab.Node2)), capturer)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "tokenreviews.authentication.k8s.io") {
		t.Errorf("an agent without RBAC for the reviews: %d %q, want 503 naming tokenreviews", code, body)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
