package kube

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// objMeta is the metadata the informers read of a compact object (its
// cache key and, to tell an update from a resync, its resource version),
// in 48 bytes where a metav1.ObjectMeta takes 232. It implements
// metav1.Object; the fields it does not keep read as empty and are not
// set (the informers never set them: the objects are immutable once
// made).
type objMeta struct {
	Namespace, Name, ResourceVersion string
}

var _ metav1.Object = (*objMeta)(nil)

func keepMeta(m *metav1.ObjectMeta) objMeta {
	return objMeta{Namespace: m.Namespace, Name: m.Name, ResourceVersion: m.ResourceVersion}
}

func (m *objMeta) GetNamespace() string                { return m.Namespace }
func (m *objMeta) SetNamespace(ns string)              { m.Namespace = ns }
func (m *objMeta) GetName() string                     { return m.Name }
func (m *objMeta) SetName(name string)                 { m.Name = name }
func (m *objMeta) GetResourceVersion() string          { return m.ResourceVersion }
func (m *objMeta) SetResourceVersion(rv string)        { m.ResourceVersion = rv }
func (*objMeta) GetGenerateName() string               { return "" }
func (*objMeta) SetGenerateName(string)                {}
func (*objMeta) GetUID() types.UID                     { return "" }
func (*objMeta) SetUID(types.UID)                      {}
func (*objMeta) GetGeneration() int64                  { return 0 }
func (*objMeta) SetGeneration(int64)                   {}
func (*objMeta) GetSelfLink() string                   { return "" }
func (*objMeta) SetSelfLink(string)                    {}
func (*objMeta) GetCreationTimestamp() metav1.Time     { return metav1.Time{} }
func (*objMeta) SetCreationTimestamp(metav1.Time)      {}
func (*objMeta) GetDeletionTimestamp() *metav1.Time    { return nil }
func (*objMeta) SetDeletionTimestamp(*metav1.Time)     {}
func (*objMeta) GetDeletionGracePeriodSeconds() *int64 { return nil }
func (*objMeta) SetDeletionGracePeriodSeconds(*int64)  {}
func (*objMeta) GetLabels() map[string]string          { return nil }
func (*objMeta) SetLabels(map[string]string)           {}
func (*objMeta) GetAnnotations() map[string]string     { return nil }
func (*objMeta) SetAnnotations(map[string]string)      {}
func (*objMeta) GetFinalizers() []string               { return nil }
func (*objMeta) SetFinalizers([]string)                {}
func (*objMeta) GetOwnerReferences() []metav1.OwnerReference {
	return nil
}
func (*objMeta) SetOwnerReferences([]metav1.OwnerReference) {}
func (*objMeta) GetManagedFields() []metav1.ManagedFieldsEntry {
	return nil
}
func (*objMeta) SetManagedFields([]metav1.ManagedFieldsEntry) {}
