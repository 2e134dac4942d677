package kube

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// ReadFile reads a metadata file: a YAML (or JSON) stream of Pod, Service,
// EndpointSlice, Namespace and NetworkPolicy objects, or of v1 Lists of
// them, as `kubectl get -o
// yaml` prints them. Every document decodes strictly into its Kubernetes
// type: an unknown field, kind or API version is an error naming the file
// and the document.
func ReadFile(path string) ([]runtime.Object, error) {
	_, objs, err := readFile(path)
	return objs, err
}

// Decode decodes a metadata stream (see ReadFile).
func Decode(b []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out []runtime.Object
	for doc := 1; ; doc++ {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(d)) == 0 || isComment(d) {
			continue
		}
		objs, err := decodeDoc(d)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		out = append(out, objs...)
	}
}

func isComment(d []byte) bool {
	for _, l := range bytes.Split(d, []byte("\n")) {
		if l = bytes.TrimSpace(l); len(l) > 0 && l[0] != '#' {
			return false
		}
	}
	return true
}

func decodeDoc(d []byte) ([]runtime.Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(d, &tm); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadObject, err)
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 List", "v1 PodList", "v1 ServiceList", "discovery.k8s.io/v1 EndpointSliceList", "v1 NamespaceList", "networking.k8s.io/v1 NetworkPolicyList":
		var l struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ListMeta   `json:"metadata"`
			Items           []json.RawMessage `json:"items"`
		}
		if err := yaml.UnmarshalStrict(d, &l); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadObject, tm.Kind, err)
		}
		var out []runtime.Object
		for i, it := range l.Items {
			o, err := decodeObject(it, itemKind(tm))
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, o)
		}
		return out, nil
	}
	o, err := decodeObject(d, "")
	if err != nil {
		return nil, err
	}
	return []runtime.Object{o}, nil
}

// itemKind is the kind the items of a typed list have (kubectl leaves
// their apiVersion and kind out), "" for a v1 List.
func itemKind(list metav1.TypeMeta) string {
	switch list.Kind {
	case "PodList":
		return "v1 Pod"
	case "ServiceList":
		return "v1 Service"
	case "EndpointSliceList":
		return "discovery.k8s.io/v1 EndpointSlice"
	case "NamespaceList":
		return "v1 Namespace"
	case "NetworkPolicyList":
		return "networking.k8s.io/v1 NetworkPolicy"
	}
	return ""
}

func decodeObject(d []byte, implied string) (runtime.Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(d, &tm); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadObject, err)
	}
	gk := tm.APIVersion + " " + tm.Kind
	if tm.Kind == "" && implied != "" {
		gk = implied
	}
	var o runtime.Object
	switch gk {
	case "v1 Pod":
		o = &corev1.Pod{}
	case "v1 Service":
		o = &corev1.Service{}
	case "discovery.k8s.io/v1 EndpointSlice":
		o = &discoveryv1.EndpointSlice{}
	case "v1 Namespace":
		o = &corev1.Namespace{}
	case "networking.k8s.io/v1 NetworkPolicy":
		o = &networkingv1.NetworkPolicy{}
	default:
		return nil, fmt.Errorf("%w: apiVersion %q kind %q (want v1 Pod, v1 Service, discovery.k8s.io/v1 EndpointSlice, v1 Namespace, networking.k8s.io/v1 NetworkPolicy or a v1 List of them)",
			ErrBadObject, tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(d, o); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadObject, tm.Kind, err)
	}
	setKind(o)
	if m, ok := o.(metav1.Object); ok && m.GetName() == "" {
		return nil, fmt.Errorf("%w: %s without metadata.name", ErrBadObject, tm.Kind)
	}
	return o, nil
}

// setKind fills in the type of an object decoded from a typed list.
func setKind(o runtime.Object) {
	switch v := o.(type) {
	case *corev1.Pod:
		v.APIVersion, v.Kind = "v1", "Pod"
	case *corev1.Service:
		v.APIVersion, v.Kind = "v1", "Service"
	case *discoveryv1.EndpointSlice:
		v.APIVersion, v.Kind = "discovery.k8s.io/v1", "EndpointSlice"
	case *corev1.Namespace:
		v.APIVersion, v.Kind = "v1", "Namespace"
	case *networkingv1.NetworkPolicy:
		v.APIVersion, v.Kind = "networking.k8s.io/v1", "NetworkPolicy"
	}
}

// Encode writes objs as a YAML stream that Decode reads back.
func Encode(w io.Writer, objs []runtime.Object) error {
	for i, o := range objs {
		setKind(o)
		b, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// WriteFile writes objs to path (see Encode), replacing it atomically.
func WriteFile(path string, objs []runtime.Object) error {
	var b bytes.Buffer
	if err := Encode(&b, objs); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// fileState is a metadata file as the store holds it: its content, and the
// objects of that content (to be applied, then those applied).
type fileState struct {
	content []byte
	objs    []runtime.Object
	applied map[fileObject]bool
}

// fileObject names one object of a metadata file.
type fileObject struct{ kind, namespace, name string }

// runFile serves the metadata file: it writes its objects into the store,
// marks the store synced, and until ctx is done reloads the file when it
// changes (every ReloadInterval), applying what changed. No informer and no
// clientset are involved: the file is the whole truth.
func (s *Source) runFile(ctx context.Context) {
	s.applyFile(s.file.objs)
	if s.onFile != nil {
		s.onFile(s.file.objs)
	}
	s.store.synced.Store(true)
	if s.cfg.ReloadInterval <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(s.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b, err := os.ReadFile(s.cfg.File)
		if err != nil || bytes.Equal(b, s.file.content) {
			if err != nil {
				s.log.Warn("metadata file unreadable, keeping its last content", "file", s.cfg.File, "err", err)
			}
			continue
		}
		objs, err := Decode(b)
		s.file.content = b
		if err != nil {
			s.log.Warn("metadata file invalid, keeping its last content", "file", s.cfg.File, "err", err)
			continue
		}
		s.applyFile(objs)
		if s.onFile != nil {
			s.onFile(objs)
		}
		s.log.Info("metadata file reloaded", "file", s.cfg.File, "objects", len(objs))
	}
}

// applyFile makes the store hold exactly objs: each object is set, and the
// objects of the previous content that objs no longer lists are deleted.
func (s *Source) applyFile(objs []runtime.Object) {
	now := make(map[fileObject]bool, len(objs))
	for _, o := range objs {
		switch v := o.(type) {
		case *corev1.Pod:
			now[fileObject{"pod", v.Namespace, v.Name}] = true
			s.store.SetPod(v)
		case *corev1.Service:
			now[fileObject{"service", v.Namespace, v.Name}] = true
			s.store.SetService(v)
		case *discoveryv1.EndpointSlice:
			now[fileObject{"endpointslice", v.Namespace, v.Name}] = true
			s.store.SetEndpointSlice(v)
		}
	}
	for o := range s.file.applied {
		if now[o] {
			continue
		}
		switch o.kind {
		case "pod":
			s.store.DeletePod(o.namespace, o.name)
		case "service":
			s.store.DeleteService(o.namespace, o.name)
		case "endpointslice":
			s.store.DeleteEndpointSlice(o.namespace, o.name)
		}
	}
	s.file.applied, s.file.objs = now, nil
}
