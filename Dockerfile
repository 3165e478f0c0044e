# Builds the shale agent image used by docker-compose.yml.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/shale .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/shale /usr/local/bin/shale
EXPOSE 9092
ENTRYPOINT ["/usr/local/bin/shale"]
CMD ["agent", "--help"]
