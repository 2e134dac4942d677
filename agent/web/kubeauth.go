package web

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authzclient "k8s.io/client-go/kubernetes/typed/authorization/v1"

	"github.com/layerscope/layerscope/agent/server"
)

// The permission a Kubernetes user needs to capture on a node's agent when
// the agent checks capture clients with the Kubernetes API (KubeAuth): the
// verb on the resource of the API group, in the agents' namespace, with
// the node's name as the resource name (so a Role may grant some nodes
// only, with resourceNames). No API serves the resource: RBAC grants it
// like any other, and the agent asks the API server with a
// SubjectAccessReview.
const (
	CaptureAPIGroup = "layerscope.io"
	CaptureResource = "captures"
	CaptureVerb     = "create"
)

// Bounds of KubeAuth.
const (
	// KubeAuthAllowTTL is how long an allowed token is trusted without
	// asking the API server again: a revoked permission or token stops
	// working within it.
	KubeAuthAllowTTL = 30 * time.Second
	// KubeAuthDenyTTL is how long a refusal (invalid token, permission
	// missing) is remembered, so a client retrying in a loop does not
	// turn into API requests.
	KubeAuthDenyTTL = 10 * time.Second
	// KubeAuthCacheSize is the most tokens remembered (least recently
	// used first out).
	KubeAuthCacheSize = 1024
	// KubeAuthReviews is the most tokens under review at once; capture
	// requests beyond it get 429.
	KubeAuthReviews = 4
	// kubeAuthTimeout bounds the two API requests of one review.
	kubeAuthTimeout = 10 * time.Second
)

// KubeReviews is the part of the Kubernetes API KubeAuth asks
// (kubernetes.Interface).
type KubeReviews interface {
	AuthenticationV1() authnclient.AuthenticationV1Interface
	AuthorizationV1() authzclient.AuthorizationV1Interface
}

// KubeAuth authenticates capture clients by the bearer token they send
// and authorizes them with the Kubernetes API, as kube-rbac-proxy does: a
// TokenReview says who the token's user is, a SubjectAccessReview whether
// that user may create captures.layerscope.io named after this node in
// the agents' namespace. Answers are remembered by the token's SHA-256
// (KubeAuthAllowTTL, KubeAuthDenyTTL, at most KubeAuthCacheSize tokens);
// requests carrying one token share one review; at most KubeAuthReviews
// reviews run at once. A failure to ask the API server is not remembered.
// It is safe for concurrent use.
type KubeAuth struct {
	client    KubeReviews
	namespace string
	node      string
	cache     *cache.LRUExpireCache
	flight    singleflight.Group
	slots     chan struct{}
	rejected  atomic.Uint64
}

// NewKubeAuth returns the check of capture clients on node, whose agents
// run in namespace.
func NewKubeAuth(c KubeReviews, namespace, node string) *KubeAuth {
	return &KubeAuth{client: c, namespace: namespace, node: node,
		cache: cache.NewLRUExpireCache(KubeAuthCacheSize), slots: make(chan struct{}, KubeAuthReviews)}
}

// Permission names what a client needs, as RBAC spells it.
func (k *KubeAuth) Permission() string {
	return fmt.Sprintf("%s on %s.%s %q in namespace %s", CaptureVerb, CaptureResource, CaptureAPIGroup, k.node, k.namespace)
}

// Rejected counts the requests refused because KubeAuthReviews reviews
// were running.
func (k *KubeAuth) Rejected() uint64 { return k.rejected.Load() }

// kubeReview is the outcome of one token's review: the identity when
// allowed (code 0), else the HTTP status and message to answer.
type kubeReview struct {
	id   server.Identity
	code int
	msg  string
}

// Review authenticates and authorizes token.
func (k *KubeAuth) Review(ctx context.Context, token string) (id server.Identity, code int, msg string) {
	sum := sha256.Sum256([]byte(token))
	key := string(sum[:])
	if v, ok := k.cache.Get(key); ok {
		r := v.(kubeReview)
		return r.id, r.code, r.msg
	}
	v, _, _ := k.flight.Do(key, func() (any, error) {
		select {
		case k.slots <- struct{}{}:
			defer func() { <-k.slots }()
		default:
			k.rejected.Add(1)
			return kubeReview{code: http.StatusTooManyRequests, msg: fmt.Sprintf("%d capture clients are being checked with the Kubernetes API already; retry", KubeAuthReviews)}, nil
		}
		// The review serves every request waiting on this token: it does
		// not end with the first one's context.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kubeAuthTimeout)
		defer cancel()
		r, ttl := k.review(rctx, token)
		if ttl > 0 {
			k.cache.Add(key, r, ttl)
		}
		return r, nil
	})
	r := v.(kubeReview)
	return r.id, r.code, r.msg
}

// review asks the API server; a zero TTL is an answer not to remember.
func (k *KubeAuth) review(ctx context.Context, token string) (kubeReview, time.Duration) {
	tr, err := k.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
	if err != nil {
		return k.apiFailure("tokenreviews.authentication.k8s.io", err), 0
	}
	if !tr.Status.Authenticated {
		msg := "the bearer token is not valid for the cluster's API server"
		if tr.Status.Error != "" {
			msg += ": " + tr.Status.Error
		}
		return kubeReview{code: http.StatusUnauthorized, msg: msg}, KubeAuthDenyTTL
	}
	u := tr.Status.User
	extra := make(map[string]authzv1.ExtraValue, len(u.Extra))
	for key, v := range u.Extra {
		extra[key] = authzv1.ExtraValue(v)
	}
	sar, err := k.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User: u.Username, Groups: u.Groups, UID: u.UID, Extra: extra,
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: k.namespace, Verb: CaptureVerb,
			Group: CaptureAPIGroup, Resource: CaptureResource, Name: k.node},
	}}, metav1.CreateOptions{})
	if err != nil {
		return k.apiFailure("subjectaccessreviews.authorization.k8s.io", err), 0
	}
	if !sar.Status.Allowed {
		msg := fmt.Sprintf("forbidden: %s may not capture on node %s: it needs %s (the chart's operator Role grants it with rbac.operator.capture=true)",
			u.Username, k.node, k.Permission())
		if reason := strings.TrimSpace(sar.Status.Reason); reason != "" {
			msg += "; the API server says: " + reason
		}
		return kubeReview{code: http.StatusForbidden, msg: msg}, KubeAuthDenyTTL
	}
	return kubeReview{id: server.Identity{Kind: "kubernetes", Name: u.Username}}, KubeAuthAllowTTL
}

func (k *KubeAuth) apiFailure(resource string, err error) kubeReview {
	msg := fmt.Sprintf("cannot check the capture client with the Kubernetes API (create %s): %v", resource, err)
	if apierrors.IsForbidden(err) {
		msg += "; the agent's ServiceAccount needs create on tokenreviews.authentication.k8s.io and subjectaccessreviews.authorization.k8s.io (the chart's captureAPI.kubernetesAuth)"
	}
	return kubeReview{code: http.StatusServiceUnavailable, msg: msg}
}

// bearerToken is the token of r's "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
