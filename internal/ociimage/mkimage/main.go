// Command mkimage builds the layerscope agent's OCI image from a static
// binary, offline (no container engine, no registry), for `make image`:
//
//	go run ./internal/ociimage/mkimage -binary bin/layerscope-linux-amd64 \
//	    -version 0.1.0 -revision $(git rev-parse HEAD) -o bin/layerscope-image.tar
//
// It prints the image's name and digest.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/layerscope/layerscope/internal/ociimage"
)

func main() {
	var (
		s       ociimage.Spec
		out     = flag.String("o", "", "the docker-archive tarball to write (docker load, podman load, ctr images import)")
		oci     = flag.String("oci-layout", "", "also write the image into this OCI image layout directory")
		ref     = flag.String("name", "", "the image's name (default ghcr.io/layerscope/layerscope:VERSION)")
		created = flag.String("created", "", "the image's creation time, RFC 3339 (default $SOURCE_DATE_EPOCH, else the Unix epoch: same inputs, same digest)")
	)
	flag.StringVar(&s.Binary, "binary", "", "the static layerscope binary (CGO_ENABLED=0)")
	flag.StringVar(&s.CABundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "the PEM bundle of CA certificates to install")
	flag.StringVar(&s.License, "license", "LICENSE", "the license file to install")
	flag.StringVar(&s.Version, "version", "", "org.opencontainers.image.version")
	flag.StringVar(&s.Revision, "revision", "", "org.opencontainers.image.revision")
	flag.StringVar(&s.Licenses, "licenses", "Apache-2.0", "org.opencontainers.image.licenses")
	flag.StringVar(&s.Source, "source", "https://github.com/layerscope/layerscope", "org.opencontainers.image.source")
	flag.StringVar(&s.Arch, "arch", runtime.GOARCH, "the binary's architecture")
	flag.Parse()
	if flag.NArg() != 0 || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkimage -binary FILE -version V -revision R -o FILE.tar [-oci-layout DIR]")
		os.Exit(2)
	}
	t, err := creationTime(*created)
	if err != nil {
		fail(err)
	}
	s.Created = t
	if *ref == "" {
		*ref = "ghcr.io/layerscope/layerscope:" + s.Version
	}
	img, err := ociimage.Build(s)
	if err != nil {
		fail(err)
	}
	if err := ociimage.WriteArchive(*out, *ref, img); err != nil {
		fail(err)
	}
	if *oci != "" {
		if err := ociimage.WriteLayout(*oci, *ref, img); err != nil {
			fail(err)
		}
	}
	d, err := img.Digest()
	if err != nil {
		fail(err)
	}
	fmt.Printf("%s %s %s\n", *ref, d, *out)
}

func creationTime(flagValue string) (time.Time, error) {
	if flagValue != "" {
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("-created: %w", err)
		}
		return t.UTC(), nil
	}
	if e := os.Getenv("SOURCE_DATE_EPOCH"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", e, err)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Unix(0, 0).UTC(), nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mkimage:", err)
	os.Exit(1)
}
