# layerscope — build, test and run the lab demo.
#
#   sudo make demo    the lab with one agent per node and a live per-layer summary
#   sudo make test    everything CI runs: formatting, vet, staticcheck, race tests (root-only lab tests included)
#   make image        the agent's OCI image, offline: bin/layerscope-image.tar (docker-archive) and bin/oci (OCI layout)

GO          ?= go
BIN         ?= bin/layerscope
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
TOOLS       ?= $(HOME)/.cache/layerscope/tools
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)/staticcheck
PROMTOOL_VERSION ?= v0.316.0
PROMTOOL    := $(TOOLS)/promtool-$(PROMTOOL_VERSION)/promtool
PCAPS       ?= testdata/tcpdump-tests
TEST_FLAGS  ?= -race -timeout 20m
# A count, not a duration: with a duration, go1.26's fuzz coordinator can
# report its own end-of-time deadline as a failure ("context deadline
# exceeded", no crasher written; golang/go#75804, fixed in go1.27).
FUZZTIME    ?= 200000x

# The agent's image: static binary on an empty base (internal/ociimage),
# named IMAGE, labelled with VERSION and the full commit.
IMAGE       ?= ghcr.io/layerscope/layerscope:$(VERSION)
IMAGE_TAR   ?= bin/layerscope-image.tar
IMAGE_OCI   ?= bin/oci
GOARCH      ?= $(shell $(GO) env GOARCH)

.PHONY: all build client cross image demo test packages fmt-check vet staticcheck unit fuzz checkmetrics bench docs clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/layerscope

# The operator's client, kubectl-layerscope, for this machine, and the
# script kubectl's plugin completion runs (install both on PATH).
client:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kubectl-layerscope ./cmd/kubectl-layerscope
	install -m 0755 cmd/kubectl-layerscope/kubectl_complete-layerscope bin/

# The client for every OS and architecture kubectl runs on: fails when the
# agent's Linux-only code leaks into it (internal/deps checks the same
# without compiling).
CLIENT_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
cross:
	@set -e; for p in $(CLIENT_PLATFORMS); do \
		os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
		out=bin/cross/kubectl-layerscope-$$os-$$arch$$ext; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/kubectl-layerscope; \
		echo "$$out $$(wc -c < $$out) bytes"; \
	done

# No Docker daemon, no registry: the binary, Debian's CA bundle and LICENSE
# in one layer; the Dockerfile builds the same image where Docker is.
# Files and config carry the commit's time (SOURCE_DATE_EPOCH): the same
# commit gives the same digest.
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/image/layerscope ./cmd/layerscope
	rm -rf $(IMAGE_OCI)
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || echo 0)} \
	$(GO) run ./internal/ociimage/mkimage -binary bin/image/layerscope -arch $(GOARCH) \
		-version $(VERSION) -revision $$(git rev-parse HEAD 2>/dev/null || echo unknown) \
		-name $(IMAGE) -o $(IMAGE_TAR) -oci-layout $(IMAGE_OCI)

demo: build
	./$(BIN) demo

test: packages fmt-check vet staticcheck cross unit fuzz checkmetrics

# The Debian packages the tests run (tshark, conntrack, trafgen, …),
# installed when missing.
packages:
	@.ci/packages.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

$(STATICCHECK):
	GOBIN=$(dir $(STATICCHECK)) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...

$(PROMTOOL):
	PROMETHEUS_VERSION=$(PROMTOOL_VERSION) .ci/prometheus.sh >/dev/null

# promtool's lint of the exposition the agent serves, on the metrics of a
# replay of every tcpdump test capture (every per-layer series present).
checkmetrics: build $(PROMTOOL)
	./$(BIN) replay --metrics --allow-partial $(PCAPS)/*.pcap $(PCAPS)/*.pcapng 2>/dev/null > bin/metrics.prom
	$(PROMTOOL) check metrics < bin/metrics.prom

# The tests run against real peers: a Prometheus server and an OpenTelemetry
# Collector, render the deployment with helm and kustomize, and run the
# Kubernetes lab's control plane and kube-proxy, all built once into the tool
# cache by these scripts.
unit:
	eval "$$(PROMETHEUS_VERSION=$(PROMTOOL_VERSION) .ci/prometheus.sh --env)" && \
	eval "$$(.ci/k8stools.sh --env)" && \
	eval "$$(.ci/kubernetes.sh --env)" && \
	eval "$$(.ci/kube-network-policies.sh --env)" && \
	LAYERSCOPE_OTELCOL="$$(.ci/otelcol.sh)" && export LAYERSCOPE_OTELCOL && \
	$(GO) test $(TEST_FLAGS) ./...

# Brief native fuzzing of every decoder, of the parsers of kernel output
# (netlink conntrack messages, /proc/net/snmp) and of the capture filter
# compiler; the corpus in testdata/fuzz is
# also replayed by `unit`.
FUZZ_PKGS   ?= ./decoders/... ./agent/conntrack ./agent/netstat ./agent/ondemand ./agent/policy
fuzz:
	@for pkg in $$($(GO) list $(FUZZ_PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -timeout 5m $$pkg || exit 1; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./decoders/... ./agent/...

docs:
	$(GO) test ./exporters/metricdef -run TestREADMEMetricReference -update
	$(GO) test ./deploy/manifests -run TestGeneratedCopies -update

clean:
	rm -rf bin
