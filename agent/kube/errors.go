package kube

import "errors"

// Sentinel errors. Errors returned by this package wrap them with the flag
// or file they concern.
var (
	// ErrBadMode reports a metadata mode other than auto, api, file, off.
	ErrBadMode = errors.New("unknown Kubernetes metadata mode (want auto, api, file or off)")
	// ErrNoFile reports the file mode without a metadata file.
	ErrNoFile = errors.New("--k8s-metadata=file needs --k8s-metadata-file")
	// ErrBadObject reports a document of a metadata file that is not a
	// Pod, Service, EndpointSlice or a List of them, or that does not
	// decode strictly into its Kubernetes type.
	ErrBadObject = errors.New("bad Kubernetes object")
)
