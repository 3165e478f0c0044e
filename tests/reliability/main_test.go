package reliability

import (
	"testing"

	"github.com/shale-dev/shale/tests/cluster"
)

func TestMain(m *testing.M) {
	RunEtcdIfAsked() // returns unless this process was started as etcd
	cluster.Main(m)
}
