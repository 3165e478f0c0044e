package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// LibrdkafkaVersion is the librdkafka release whose own test suite
// (tests/ of its source tree) scripts/test-deps.sh builds: the version of
// Debian's librdkafka1, the library under kcat and confluent-kafka here.
// The source is Debian's (deb.debian.org, the archive apt installs from),
// checked against LibrdkafkaSHA256.
const LibrdkafkaVersion = "2.0.2"

// LibrdkafkaSHA256 is the sha256 of librdkafka_<version>.orig.tar.gz.
const LibrdkafkaSHA256 = "f321bcb1e015a34114c83cf1aa7b99ee260236aab096b85c003170c90a47ca9d"

// LibrdkafkaTests returns the tests/ directory of the librdkafka source
// tree scripts/test-deps.sh built (<cache>/librdkafka-<version>/tests,
// holding test-runner and the tests' sources; the libraries it links are
// in ../src and ../src-cpp). Without it the test is skipped, or fails under
// CI=true.
func LibrdkafkaTests(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(TestCache(), "librdkafka-"+LibrdkafkaVersion, "tests")
	if _, err := os.Stat(filepath.Join(dir, "test-runner")); err != nil {
		RequireServer(t, "librdkafka's test suite "+LibrdkafkaVersion, "run `make test-deps` (it builds it into "+dir+", about 3 minutes, once)")
	}
	return dir
}
