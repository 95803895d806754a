// Package fleet tests a fleet end to end: a real etcd cluster (Debian's
// etcd-server) on loopback ports, `awakend publish` and `awakend fleet`
// run as commands, and several real daemons following the cluster.
package fleet

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/awakend/awakend/e2e/harness"
)

func TestMain(m *testing.M) {
	remove, err := harness.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	remove()
	os.Exit(code)
}
