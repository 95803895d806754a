// Package fleet tests a fleet end to end: a real etcd cluster (Debian's
// etcd-server) on loopback ports, `awakend publish` and `awakend fleet`
// run as commands, and several real daemons following the cluster.
package fleet

import (
	"os"
	"testing"

	"github.com/awakend/awakend/e2e/harness"
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m))
}
