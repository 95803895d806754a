package harness

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// Main is an end-to-end suite's TestMain: it builds the binary (see Build),
// runs the tests, and fails a passing run that left a goroutine behind
// (a client, an upstream or a watcher a test started and did not stop).
// It returns the exit code: os.Exit(harness.Main(m)).
func Main(m *testing.M) int {
	remove, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer remove()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}
