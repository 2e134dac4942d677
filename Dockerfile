# syntax=docker/dockerfile:1
# Multi-stage build of the layerscope agent image that deploy/daemonset and the
# Helm chart run, ghcr.io/layerscope/layerscope:<appVersion of
# deploy/helm/layerscope/Chart.yaml>, for users with Docker:
#
#   docker build -t ghcr.io/layerscope/layerscope:0.1.0 --build-arg VERSION=0.1.0 \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# `make image` builds the same image offline, without Docker or a registry
# (internal/ociimage: the same entrypoint, command, user and labels on an
# empty base with Debian's CA bundle; checked by its tests).
#
# A static binary (pure Go, CGO_ENABLED=0) on distroless/static: no shell, no
# libc, nothing else in the image. The image's user is root: the DaemonSet runs
# it as UID 0 with every capability dropped but CAP_NET_RAW and CAP_NET_ADMIN,
# because a container's added capabilities reach the effective set only of a
# root process (AF_PACKET needs NET_RAW, conntrack netlink NET_ADMIN).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/layerscope ./cmd/layerscope

FROM gcr.io/distroless/static-debian12
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.source=https://github.com/layerscope/layerscope \
      org.opencontainers.image.title=layerscope \
      org.opencontainers.image.description="layerscope node agent: packet and conntrack observability by OSI layer" \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.revision=${REVISION} \
      org.opencontainers.image.licenses=Apache-2.0
COPY --from=build /out/layerscope /usr/bin/layerscope
COPY LICENSE /usr/share/doc/layerscope/LICENSE
USER 0:0
EXPOSE 9431
ENTRYPOINT ["/usr/bin/layerscope"]
CMD ["agent", "--metrics-addr=:9431"]
