package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const root = "../.."

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// agentBinary builds the layerscope binary as make image does: static,
// with a version and a revision.
func agentBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ociimage-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "layerscope")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=1.2.3-test -X main.revision=0123abc", "-o", binPath, "./cmd/layerscope")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("go build ./cmd/layerscope: %v", binErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

func testSpec(t *testing.T) Spec {
	return Spec{
		Binary:   agentBinary(t),
		CABundle: "/etc/ssl/certs/ca-certificates.crt",
		License:  filepath.Join(root, "LICENSE"),
		Version:  "1.2.3-test",
		Revision: "0123abc",
		Licenses: "Apache-2.0",
		Source:   "https://github.com/layerscope/layerscope",
		Created:  time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC),
		Arch:     runtime.GOARCH,
	}
}

// dockerfile reads the final stage's ENTRYPOINT, CMD, USER and LABEL keys.
func dockerfile(t *testing.T) (entrypoint, cmd []string, user string, labels []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := strings.Split(string(data), "\nFROM ")
	final := strings.ReplaceAll(stages[len(stages)-1], "\\\n", " ")
	for _, line := range strings.Split(final, "\n") {
		instr, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		switch instr {
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &entrypoint); err != nil {
				t.Fatalf("Dockerfile ENTRYPOINT %s: %v", rest, err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &cmd); err != nil {
				t.Fatalf("Dockerfile CMD %s: %v", rest, err)
			}
		case "USER":
			user = strings.TrimSpace(rest)
		case "LABEL":
			for _, m := range regexp.MustCompile(`([a-z.]+)=`).FindAllStringSubmatch(rest, -1) {
				labels = append(labels, m[1])
			}
		}
	}
	if entrypoint == nil || cmd == nil || user == "" {
		t.Fatalf("the Dockerfile's final stage lacks ENTRYPOINT, CMD or USER in JSON form:\n%s", final)
	}
	return entrypoint, cmd, user, labels
}

// TestImageFromArchive builds the image, writes it as make image does and
// checks, from the tarball alone, what a container runtime will run.
func TestImageFromArchive(t *testing.T) {
	s := testSpec(t)
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	archive := filepath.Join(dir, "image.tar")
	const ref = "ghcr.io/layerscope/layerscope:1.2.3-test"
	if err := WriteArchive(archive, ref, img); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tarball.ImageFromPath(archive, &tag)
	if err != nil {
		t.Fatalf("reading %s back: %v", archive, err)
	}
	cf, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}

	entrypoint, cmd, user, dfLabels := dockerfile(t)
	c := cf.Config
	if !slices.Equal(c.Entrypoint, entrypoint) || !slices.Equal(c.Cmd, cmd) {
		t.Errorf("entrypoint %q cmd %q, want the Dockerfile's %q %q", c.Entrypoint, c.Cmd, entrypoint, cmd)
	}
	if c.User != user || c.User != "0:0" {
		t.Errorf("user %q, want 0:0 as the Dockerfile's USER %q", c.User, user)
	}
	if _, ok := c.ExposedPorts["9431/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("exposed ports %v, want 9431/tcp", c.ExposedPorts)
	}
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	want := map[string]string{
		"org.opencontainers.image.version":  "1.2.3-test",
		"org.opencontainers.image.revision": "0123abc",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.source":   "https://github.com/layerscope/layerscope",
		"org.opencontainers.image.created":  "2026-12-06T00:00:00Z",
	}
	for k, v := range want {
		if c.Labels[k] != v {
			t.Errorf("label %s=%q, want %q", k, c.Labels[k], v)
		}
	}
	for _, k := range dfLabels {
		if _, ok := c.Labels[k]; !ok {
			t.Errorf("the Dockerfile sets the label %s, the image does not", k)
		}
	}
	for _, k := range []string{LabelVersion, LabelRevision, LabelLicenses, LabelSource} {
		if !slices.Contains(dfLabels, k) {
			t.Errorf("the Dockerfile does not set the label %s", k)
		}
	}
	mf, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(mf.Layers) != 1 {
		t.Errorf("%d layers, want 1 on an empty base", len(mf.Layers))
	}

	files := extract(t, got)
	bin, ok := files["usr/bin/layerscope"]
	switch {
	case !ok:
		t.Fatal("no usr/bin/layerscope in the image")
	case bin.hdr.Mode&0o111 == 0 || bin.hdr.Uid != 0:
		t.Errorf("usr/bin/layerscope mode %o uid %d, want executable, root's", bin.hdr.Mode, bin.hdr.Uid)
	}
	checkStatic(t, bin.data)
	pool := x509.NewCertPool()
	if ca := files["etc/ssl/certs/ca-certificates.crt"]; !pool.AppendCertsFromPEM(ca.data) {
		t.Error("etc/ssl/certs/ca-certificates.crt holds no certificate")
	}
	if l := string(files["usr/share/doc/layerscope/LICENSE"].data); !strings.Contains(l, "Apache License") || !strings.Contains(l, "Version 2.0") {
		t.Error("usr/share/doc/layerscope/LICENSE is not the Apache License 2.0")
	}
	if tmp, ok := files["tmp"]; !ok || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp missing or not a directory 1777: %+v", tmp.hdr)
	}
	if !strings.HasPrefix(string(files["etc/passwd"].data), "root:x:0:0:") {
		t.Error("/etc/passwd does not name root")
	}

	// The binary in the image is the one built, with its version.
	exe := filepath.Join(dir, "layerscope")
	if err := os.WriteFile(exe, bin.data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "layerscope 1.2.3-test (revision 0123abc)") {
		t.Errorf("the image's layerscope version: %v %s", err, out)
	}
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

func extract(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = entry{h, data}
	}
}

// checkStatic fails unless the ELF file needs no interpreter and no shared
// library: the image has no libc.
func checkStatic(t *testing.T, data []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("usr/bin/layerscope: %v", err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("usr/bin/layerscope has an ELF interpreter: not static")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Errorf("usr/bin/layerscope needs %v", libs)
	}
}

// TestReproducible: the same inputs give the same digest, another time
// another one.
func TestReproducible(t *testing.T) {
	s := testSpec(t)
	digest := func(s Spec) v1.Hash {
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a, b := digest(s), digest(s)
	if a != b {
		t.Errorf("two builds: %s and %s", a, b)
	}
	s.Created = s.Created.Add(time.Second)
	if c := digest(s); c == a {
		t.Error("another creation time, the same digest: the time is not in the image")
	}
}

// TestLayout writes the OCI image layout and reads the image back by name.
func TestLayout(t *testing.T) {
	img, err := Build(testSpec(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const ref = "ghcr.io/layerscope/layerscope:1.2.3-test"
	if err := WriteLayout(dir, ref, img); err != nil {
		t.Fatal(err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if len(im.Manifests) != 1 || im.Manifests[0].Digest != want || im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != ref {
		t.Fatalf("index %+v, want one manifest %s named %s", im.Manifests, want, ref)
	}
	got, err := idx.Image(want)
	if err != nil {
		t.Fatal(err)
	}
	m, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(m.Annotations, Labels(testSpec(t))) {
		t.Errorf("manifest annotations %v, want the labels", m.Annotations)
	}
}

// TestBuildRefuses: missing inputs are errors that name them.
func TestBuildRefuses(t *testing.T) {
	s := testSpec(t)
	for _, tt := range []struct {
		name string
		edit func(*Spec)
		want string
	}{
		{"no binary", func(s *Spec) { s.Binary = "" }, "binary"},
		{"missing binary", func(s *Spec) { s.Binary = "/nonexistent/layerscope" }, "/nonexistent/layerscope"},
		{"empty license", func(s *Spec) { s.License = "/dev/null" }, "/dev/null is empty"},
		{"no revision", func(s *Spec) { s.Revision = "" }, "revision"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := s
			tt.edit(&s)
			if _, err := Build(s); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build: %v, want an error naming %q", err, tt.want)
			}
		})
	}
	if err := WriteArchive(filepath.Join(t.TempDir(), "x.tar"), "Not A Name", nil); err == nil || !strings.Contains(err.Error(), "Not A Name") {
		t.Errorf("WriteArchive with a bad name: %v", err)
	}
}
