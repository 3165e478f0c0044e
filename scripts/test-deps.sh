#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages (kcat, the
# confluent-kafka and kafka-python Python clients, a C/C++ toolchain), npm packages (kafkajs; @duckdb/node-api, the independent reader of Iceberg tables) and Go tools
# (versitygw and MinIO, the S3 servers tests start). Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || need_apt+=(python3-confluent-kafka)
/usr/bin/python3 -c 'import kafka' >/dev/null 2>&1 || need_apt+=(python3-kafka)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# The kafka-go conformance suite runs its agent in a network namespace.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v nsenter >/dev/null 2>&1 || need_apt+=(util-linux)
# librdkafka's own test suite (tests/conformance) is built from source
# (below): a C/C++ toolchain and the headers of the codecs and TLS it links.
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v curl >/dev/null 2>&1 || need_apt+=(curl ca-certificates)
dpkg -s libssl-dev >/dev/null 2>&1 || need_apt+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need_apt+=(zlib1g-dev)
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
# librdkafka's own integration suite (tests/ of its source tree, the
# release Debian ships as librdkafka1), built once into the cache, without
# optimization (the tests drive a broker: the client's speed is not what
# they judge, and the build takes less time). The source comes from the
# Debian archive, checked by sha256. Version, checksum and path:
# internal/testenv/librdkafka.go.
rdk_version=$(sed -n 's/^const LibrdkafkaVersion = "\(.*\)"$/\1/p' internal/testenv/librdkafka.go)
rdk_sha=$(sed -n 's/^const LibrdkafkaSHA256 = "\(.*\)"$/\1/p' internal/testenv/librdkafka.go)
rdk_dir=${SHALE_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shale-test}/librdkafka-$rdk_version
if [ ! -x "$rdk_dir/tests/test-runner" ]; then
  echo "test-deps: building librdkafka $rdk_version's test suite into $rdk_dir (once)"
  rdk_start=$SECONDS
  rdk_tmp=$(mktemp -d)
  rdk_tgz=$rdk_tmp/librdkafka_$rdk_version.orig.tar.gz
  curl -fsSL -o "$rdk_tgz" "https://deb.debian.org/debian/pool/main/libr/librdkafka/librdkafka_$rdk_version.orig.tar.gz"
  echo "$rdk_sha  $rdk_tgz" | sha256sum -c --quiet -
  tar -xzf "$rdk_tgz" -C "$rdk_tmp"
  (cd "$rdk_tmp/librdkafka-$rdk_version" &&
    ./configure --disable-gssapi --disable-curl --disable-sasl --disable-optimization >build.log 2>&1 &&
    make -j"$(nproc)" libs >>build.log 2>&1 &&
    make -C tests -j"$(nproc)" test-runner >>build.log 2>&1) ||
    { tail -30 "$rdk_tmp/librdkafka-$rdk_version/build.log"; exit 1; }
  mkdir -p "$(dirname "$rdk_dir")"
  rm -rf "$rdk_dir"
  mv "$rdk_tmp/librdkafka-$rdk_version" "$rdk_dir"
  rm -rf "$rdk_tmp"
  echo "test-deps: librdkafka's test suite built in $((SECONDS - rdk_start)) s"
fi
echo "test-deps: ok"
