# cometstream: a static binary on a distroless image, running as non-root.
#   docker build -t cometstream .
# .dockerignore keeps the context to the sources (no .git: the binary records
# no commit, and `cometstream version` says "commit unknown"). The image has
# no shell: health checks run `/usr/local/bin/cometstream health --url …`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/cometstream ./cmd/cometstream \
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
