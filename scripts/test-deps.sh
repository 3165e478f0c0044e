#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages (kcat, the
# confluent-kafka Python client), npm packages (kafkajs; @duckdb/node-api, the independent reader of Iceberg tables) and Go tools
# (versitygw and MinIO, the S3 servers tests start). Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || need_apt+=(python3-confluent-kafka)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The kafka-go conformance suite runs its agent in a network namespace.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-deps: installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -f tests/js/package.json ] && { [ ! -d tests/js/node_modules/kafkajs ] || [ ! -d tests/js/node_modules/@duckdb/node-api ]; }; then
  echo "test-deps: installing kafkajs and @duckdb/node-api (npm)"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

# Build the S3 server once so the first test does not pay for it.
go tool -n versitygw >/dev/null

# MinIO, the second S3 server (AGPL: a test server only, run as a process,
# never imported), built from its module into a cache directory once:
# about 2 minutes and 150 MB. Version and path: internal/testenv/minio.go.
minio_version=$(sed -n 's/^const MinIOVersion = "\(.*\)"$/\1/p' internal/testenv/minio.go)
minio_bin=${SHALE_MINIO:-${SHALE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shale-test}/minio-$minio_version/minio}
if [ ! -x "$minio_bin" ]; then
  echo "test-deps: building MinIO $minio_version into $(dirname "$minio_bin") (about 2 minutes, once)"
  (cd / && GOBIN="$(dirname "$minio_bin")" GOFLAGS=-mod=mod go install "github.com/minio/minio@$minio_version")
fi
echo "test-deps: ok"
