// Package ociimage builds the agent's container image without a container
// engine or a registry: one layer holding the static layerscope binary, a CA
// bundle, the license and a minimal /etc/passwd on an empty base, with the
// entrypoint of the Dockerfile and the org.opencontainers.image.* labels.
//
// The result is written as a docker-archive tarball (`docker load`,
// `podman load`, `ctr images import`, kind's `load image-archive`) and, when
// asked, as an OCI image layout directory. Its content depends only on the
// inputs: files and the config carry the Created time given, so the same
// inputs give the same digest.
package ociimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's layout, the same as the Dockerfile's final stage.
const (
	BinaryPath   = "/usr/bin/layerscope"
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	LicensePath  = "/usr/share/doc/layerscope/LICENSE"
	MetricsPort  = "9431/tcp"
	// User is root: the DaemonSet runs the agent as UID 0 with every
	// capability dropped but NET_RAW and NET_ADMIN, because added
	// capabilities reach the effective set only of a root process.
	User = "0:0"
)

// Entrypoint and Cmd are the Dockerfile's ENTRYPOINT and CMD.
var (
	Entrypoint = []string{BinaryPath}
	Cmd        = []string{"agent", "--metrics-addr=:9431"}
)

// The org.opencontainers.image.* annotation keys the image's labels use.
const (
	LabelVersion     = "org.opencontainers.image.version"
	LabelRevision    = "org.opencontainers.image.revision"
	LabelLicenses    = "org.opencontainers.image.licenses"
	LabelSource      = "org.opencontainers.image.source"
	LabelTitle       = "org.opencontainers.image.title"
	LabelDescription = "org.opencontainers.image.description"
	LabelCreated     = "org.opencontainers.image.created"
)

// Description is the image's description label, as in the Dockerfile.
const Description = "layerscope node agent: packet and conntrack observability by OSI layer"

// Spec is what an image is built from.
type Spec struct {
	Binary   string // the static layerscope binary to install
	CABundle string // a PEM file of CA certificates
	License  string // the LICENSE file

	Version  string    // org.opencontainers.image.version
	Revision string    // org.opencontainers.image.revision (a commit)
	Licenses string    // org.opencontainers.image.licenses (an SPDX expression)
	Source   string    // org.opencontainers.image.source (the repository's URL)
	Created  time.Time // the config's and the files' time
	Arch     string    // GOARCH of the binary: amd64, arm64, …
	// Cmd replaces the default command (Cmd) when set.
	Cmd []string
}

// passwd and group name root and nobody: enough for a process to resolve
// its own user; the image has no shell, so no one logs in.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	group  = "root:x:0:\nnobody:x:65534:\n"
)

// Build assembles the image.
func Build(s Spec) (v1.Image, error) {
	switch {
	case s.Binary == "":
		return nil, errors.New("no binary to install")
	case s.CABundle == "":
		return nil, errors.New("no CA bundle")
	case s.License == "":
		return nil, errors.New("no license file")
	case s.Version == "" || s.Revision == "" || s.Licenses == "" || s.Source == "":
		return nil, errors.New("version, revision, licenses and source are all required")
	case s.Arch == "":
		return nil, errors.New("no architecture")
	}
	var files []file
	for _, f := range []struct {
		src, dst string
		mode     int64
	}{{s.Binary, BinaryPath, 0o755}, {s.CABundle, CABundlePath, 0o644}, {s.License, LicensePath, 0o644}} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		if len(data) == 0 {
			return nil, fmt.Errorf("%s is empty", f.src)
		}
		files = append(files, file{f.dst, f.mode, data})
	}
	files = append(files, file{"/etc/passwd", 0o644, []byte(passwd)}, file{"/etc/group", 0o644, []byte(group)})

	layerTar, err := layerTarball(files, s.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: s.Created}, CreatedBy: "layerscope ociimage", Comment: "layerscope binary, CA bundle, license"},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", s.Arch
	cf.Created = v1.Time{Time: s.Created}
	labels := Labels(s)
	cmd := Cmd
	if s.Cmd != nil {
		cmd = s.Cmd
	}
	cf.Config = v1.Config{
		Entrypoint:   Entrypoint,
		Cmd:          cmd,
		User:         User,
		WorkingDir:   "/",
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=" + CABundlePath},
		ExposedPorts: map[string]struct{}{MetricsPort: {}},
		Labels:       labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	// The same labels as the manifest's annotations, where OCI tools read them.
	return mutate.Annotations(img, labels).(v1.Image), nil
}

// Labels are the image's org.opencontainers.image.* labels.
func Labels(s Spec) map[string]string {
	return map[string]string{
		LabelVersion:     s.Version,
		LabelRevision:    s.Revision,
		LabelLicenses:    s.Licenses,
		LabelSource:      s.Source,
		LabelTitle:       "layerscope",
		LabelDescription: Description,
		LabelCreated:     s.Created.UTC().Format(time.RFC3339),
	}
}

type file struct {
	path string
	mode int64
	data []byte
}

// layerTarball writes the files and their parent directories, owned by
// root, all with time mtime, and /tmp (sticky, world-writable).
func layerTarball(files []file, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	var mkdir func(dir string, mode int64) error
	mkdir = func(dir string, mode int64) error {
		if dir == "/" || dirs[dir] {
			return nil
		}
		if err := mkdir(path.Dir(dir), 0o755); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir[1:] + "/", Mode: mode, ModTime: mtime, Format: tar.FormatPAX})
	}
	if err := mkdir("/tmp", 0o1777); err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := mkdir(path.Dir(f.path), 0o755); err != nil {
			return nil, err
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.path[1:], Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteArchive writes img as a docker-archive tarball tagged ref.
func WriteArchive(file, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image name %q: %w", ref, err)
	}
	return tarball.WriteToFile(file, tag, img)
}

// WriteLayout writes img into the OCI image layout directory dir (created
// when missing), annotated with its name ref.
func WriteLayout(dir, ref string, img v1.Image) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return err
		}
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": ref}))
}
