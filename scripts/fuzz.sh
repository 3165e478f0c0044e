#!/usr/bin/env bash
# Runs every fuzz target (FuzzXxx) of the module for $FUZZTIME each: an
# execution count such as 5000x (a duration also works, but Go 1.26 may
# then fail a run with a spurious "context deadline exceeded", go.dev/issue/75804).
# New crashers land in the package's testdata/fuzz and become regression tests.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-1000000x}
total=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for t in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //' | sort -u); do
    echo "fuzz: $pkg $t ($FUZZTIME)"
    # On failure print everything, including the failing input: in CI the
    # testdata/fuzz file it wrote is gone with the clone.
    if ! out=$(go test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1); then
      echo "$out" | grep -v '^fuzz: elapsed'
      for f in $(git -C "$dir" ls-files --others --exclude-standard testdata/fuzz 2>/dev/null); do
        echo "--- new failing input $dir/$f:"; cat "$dir/$f"
      done
      exit 1
    fi
    echo "$out" | tail -n 3
    total=$((total+1))
  done
done
echo "fuzz: $total targets ran"
