# cometstream: a static binary on a distroless image, running as non-root.
#   docker build -t cometstream .
# .dockerignore keeps the context to the sources, without .git, so the
# toolchain records no commit: give it, or `cometstream version` says
# "commit unknown":
#   docker build --build-arg COMMIT=$(git rev-parse HEAD) -t cometstream .
# The image has no shell: health checks run
# `/usr/local/bin/cometstream health --url …`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG COMMIT=
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X github.com/cometstream/cometstream/internal/version.commit=${COMMIT}" \
    -o /out/cometstream ./cmd/cometstream \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/cometstream /usr/local/bin/cometstream
# The data directory, owned by the non-root user so a named volume mounted
# there is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/cometstream
USER 65532:65532
WORKDIR /var/lib/cometstream
ENTRYPOINT ["/usr/local/bin/cometstream"]
CMD ["help"]
