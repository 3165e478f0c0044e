package reliability

import (
	"testing"

	"github.com/shale-dev/shale/tests/cluster"
)

// TestMain is cluster.Main, which first lets this binary serve as the
// etcd process of testenv.StartEtcdProcess when started as one.
func TestMain(m *testing.M) { cluster.Main(m) }
