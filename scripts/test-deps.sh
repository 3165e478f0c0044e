#!/usr/bin/env bash
# Installs what the tests need, idempotently: Debian packages (kcat, the
# confluent-kafka Python client), npm packages (kafkajs) and Go tools
# (versitygw, the S3 server tests start). Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || need_apt+=(python3-confluent-kafka)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test-deps: installing ${need_apt[*]} (apt)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ -f tests/js/package.json ] && [ ! -d tests/js/node_modules/kafkajs ]; then
  echo "test-deps: installing kafkajs (npm)"
  (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
fi

# Build the S3 server once so the first test does not pay for it.
go tool -n versitygw >/dev/null
echo "test-deps: ok"
