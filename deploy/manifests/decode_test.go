package manifests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

// The built-in kinds a rendering may hold, decoded by the API machinery's
// strict deserializer: unknown, duplicated and wrongly cased fields are
// errors, as with the API server's strict field validation.
var (
	scheme        = runtime.NewScheme()
	strictDecoder runtime.Decoder
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	strictDecoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// The Prometheus Operator's kinds have no Go types in this module. These
// model the fields of monitoring.coreos.com/v1 the deployment uses, with the
// CRDs' spelling; decoding is strict, so any other field is an error.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta  `json:"metadata"`
	Spec            serviceMonitorSpec `json:"spec"`
}

type serviceMonitorSpec struct {
	JobLabel          string               `json:"jobLabel,omitempty"`
	Selector          metav1.LabelSelector `json:"selector"`
	NamespaceSelector namespaceSelector    `json:"namespaceSelector"`
	Endpoints         []smEndpoint         `json:"endpoints"`
}

type namespaceSelector struct {
	Any        bool     `json:"any,omitempty"`
	MatchNames []string `json:"matchNames,omitempty"`
}

type smEndpoint struct {
	Port        string          `json:"port"`
	Path        string          `json:"path,omitempty"`
	Interval    string          `json:"interval,omitempty"`
	Scheme      string          `json:"scheme,omitempty"`
	TLSConfig   map[string]any  `json:"tlsConfig,omitempty"` // passed through from the chart's values
	BasicAuth   map[string]any  `json:"basicAuth,omitempty"` // passed through from the chart's values
	Relabelings []relabelConfig `json:"relabelings,omitempty"`
}

type relabelConfig struct {
	Action       string   `json:"action,omitempty"`
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Replacement  string   `json:"replacement,omitempty"`
}

type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            ruleGroups        `json:"spec"`
}

// ruleGroups is both a PrometheusRule's spec and a plain rule file.
type ruleGroups struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Alert       string            `json:"alert,omitempty"`
	Record      string            `json:"record,omitempty"`
	Expr        string            `json:"expr"`
	For         string            `json:"for,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// object is one decoded document of a rendering.
type object struct {
	Kind, Namespace, Name string
	// Obj is a pointer to a k8s.io/api type, *serviceMonitor or
	// *prometheusRule.
	Obj any
}

func (o object) key() string { return o.Kind + " " + o.Namespace + "/" + o.Name }

// labelSets returns the object's metadata labels, and for a DaemonSet also
// its pod template's, for normalisation (deleting from a returned map
// changes the object).
func (o object) labelSets() []map[string]string {
	switch v := o.Obj.(type) {
	case *serviceMonitor:
		return []map[string]string{v.Metadata.Labels}
	case *prometheusRule:
		return []map[string]string{v.Metadata.Labels}
	case *appsv1.DaemonSet:
		return []map[string]string{v.Labels, v.Spec.Template.Labels}
	}
	if m, err := meta.Accessor(o.Obj); err == nil {
		return []map[string]string{m.GetLabels()}
	}
	return nil
}

var errNotObject = errors.New("not a Kubernetes object")

// decodeAll splits a multi-document YAML stream and decodes every document
// strictly. Empty documents are skipped.
func decodeAll(data []byte) ([]object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if err == io.EOF {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		o, err := decodeOne(doc)
		if errors.Is(err, errEmpty) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("document %d (%.60q…): %w", i, bytes.TrimSpace(doc), err)
		}
		objs = append(objs, o)
	}
}

var errEmpty = errors.New("empty document")

func decodeOne(doc []byte) (object, error) {
	// YAMLToJSONStrict fails on duplicate keys, which the JSON decoders
	// below could not see any more.
	js, err := sigsyaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, err
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
		return object{}, errEmpty
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(js, &tm); err != nil {
		return object{}, err
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return object{}, fmt.Errorf("%w: no apiVersion or kind", errNotObject)
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "monitoring.coreos.com/v1 ServiceMonitor":
		var sm serviceMonitor
		if err := strictJSON(js, &sm); err != nil {
			return object{}, err
		}
		return object{Kind: sm.Kind, Namespace: sm.Metadata.Namespace, Name: sm.Metadata.Name, Obj: &sm}, nil
	case "monitoring.coreos.com/v1 PrometheusRule":
		var pr prometheusRule
		if err := strictJSON(js, &pr); err != nil {
			return object{}, err
		}
		return object{Kind: pr.Kind, Namespace: pr.Metadata.Namespace, Name: pr.Metadata.Name, Obj: &pr}, nil
	}
	obj, gvk, err := strictDecoder.Decode(js, nil, nil)
	if err != nil {
		return object{}, err
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return object{}, err
	}
	return object{Kind: gvk.Kind, Namespace: m.GetNamespace(), Name: m.GetName(), Obj: obj}, nil
}

// strictJSON decodes like the API machinery does: field names are case
// sensitive, and unknown or duplicated fields are errors.
func strictJSON(data []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(data, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}
