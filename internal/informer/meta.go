package informer

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Meta is the metadata the informers read of a compact object (its cache
// key and, to tell an update from a resync, its resource version), in 48
// bytes where a metav1.ObjectMeta takes 232. Embedded in an informer
// transform's own small types, it makes them metav1.Objects; the fields it
// does not keep read as empty and are not set (the informers never set
// them: the objects are immutable once made).
type Meta struct {
	Namespace, Name, ResourceVersion string
}

var _ metav1.Object = (*Meta)(nil)

// KeepMeta returns the part of m a Meta keeps.
func KeepMeta(m *metav1.ObjectMeta) Meta {
	return Meta{Namespace: m.Namespace, Name: m.Name, ResourceVersion: m.ResourceVersion}
}

func (m *Meta) GetNamespace() string                { return m.Namespace }
func (m *Meta) SetNamespace(ns string)              { m.Namespace = ns }
func (m *Meta) GetName() string                     { return m.Name }
func (m *Meta) SetName(name string)                 { m.Name = name }
func (m *Meta) GetResourceVersion() string          { return m.ResourceVersion }
func (m *Meta) SetResourceVersion(rv string)        { m.ResourceVersion = rv }
func (*Meta) GetGenerateName() string               { return "" }
func (*Meta) SetGenerateName(string)                {}
func (*Meta) GetUID() types.UID                     { return "" }
func (*Meta) SetUID(types.UID)                      {}
func (*Meta) GetGeneration() int64                  { return 0 }
func (*Meta) SetGeneration(int64)                   {}
func (*Meta) GetSelfLink() string                   { return "" }
func (*Meta) SetSelfLink(string)                    {}
func (*Meta) GetCreationTimestamp() metav1.Time     { return metav1.Time{} }
func (*Meta) SetCreationTimestamp(metav1.Time)      {}
func (*Meta) GetDeletionTimestamp() *metav1.Time    { return nil }
func (*Meta) SetDeletionTimestamp(*metav1.Time)     {}
func (*Meta) GetDeletionGracePeriodSeconds() *int64 { return nil }
func (*Meta) SetDeletionGracePeriodSeconds(*int64)  {}
func (*Meta) GetLabels() map[string]string          { return nil }
func (*Meta) SetLabels(map[string]string)           {}
func (*Meta) GetAnnotations() map[string]string     { return nil }
func (*Meta) SetAnnotations(map[string]string)      {}
func (*Meta) GetFinalizers() []string               { return nil }
func (*Meta) SetFinalizers([]string)                {}
func (*Meta) GetOwnerReferences() []metav1.OwnerReference {
	return nil
}
func (*Meta) SetOwnerReferences([]metav1.OwnerReference) {}
func (*Meta) GetManagedFields() []metav1.ManagedFieldsEntry {
	return nil
}
func (*Meta) SetManagedFields([]metav1.ManagedFieldsEntry) {}
