#!/usr/bin/env bash
# Runs every fuzz target (FuzzXxx) of the module for $FUZZTIME each: an
# execution count such as 5000x (a duration also works, but Go 1.26 may
# then fail a run with a spurious "context deadline exceeded", go.dev/issue/75804).
# New crashers land in the package's testdata/fuzz and become regression tests.
#
# Each package's test binary is built once, instrumented for fuzzing as
# `go test -fuzz` builds it (`go test -c -fuzz`), and run once per target
# from the package's directory with go's own corpus cache: the same
# fuzzing as `go test -fuzz` per target, without linking the binary again
# for each (that link was most of make fuzz-short's time).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-1000000x}
bins=$(mktemp -d)
trap 'rm -rf "$bins"' EXIT
cache=$(go env GOCACHE)/fuzz
total=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //' | sort -u || true)
  [ -n "$targets" ] || continue
  bin="$bins/$(echo "$pkg" | tr / _).test"
  go test -c -fuzz . -o "$bin" "$pkg"
  for t in $targets; do
    echo "fuzz: $pkg $t ($FUZZTIME)"
    # On failure print everything, including the failing input: in CI the
    # testdata/fuzz file it wrote is gone with the clone.
    if ! out=$(cd "$dir" && "$bin" -test.run '^$' -test.fuzz "^$t\$" -test.fuzztime "$FUZZTIME" \
        -test.fuzzcachedir "$cache/$pkg" -test.timeout 10m -test.paniconexit0 2>&1); then
      echo "$out" | grep -v '^fuzz: elapsed'
      for f in $(git -C "$dir" ls-files --others --exclude-standard testdata/fuzz 2>/dev/null); do
        echo "--- new failing input $dir/$f:"; cat "$dir/$f"
      done
      exit 1
    fi
    if echo "$out" | grep -q 'no fuzz tests to fuzz'; then
      echo "fuzz: $pkg has no fuzz target $t to run (a build tag?)"; exit 1
    fi
    echo "$out" | tail -n 3
    total=$((total+1))
  done
done
echo "fuzz: $total targets ran"
