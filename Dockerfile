# syntax=docker/dockerfile:1
# Multi-stage build of the layerscope agent: a static binary (pure Go,
# CGO_ENABLED=0) in a distroless image. The DaemonSet grants CAP_NET_RAW and
# CAP_NET_ADMIN; the image runs as root inside the pod because AF_PACKET and
# netlink need those capabilities in the effective set.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/layerscope ./cmd/layerscope

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/layerscope /usr/bin/layerscope
EXPOSE 9431
ENTRYPOINT ["/usr/bin/layerscope"]
CMD ["agent", "--metrics-addr", "0.0.0.0:9431"]
