# syntax=docker/dockerfile:1
# Build: a static binary (no cgo), so the final image needs no libc.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .git stays out of the build context, so the revision `ringer version` prints comes in as an argument:
#   docker build --build-arg REVISION=$(git rev-parse HEAD) -t ringer .
ARG REVISION=unknown
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -X main.revision=${REVISION}" -o /out/ringer ./cmd/ringer

# Run: distroless static carries CA roots (for FCM and APNs TLS) and a non-root user, nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ringer /usr/local/bin/ringer
USER nonroot:nonroot
ENV RINGER_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ringer"]
CMD ["serve"]
