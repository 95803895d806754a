package sdnotify_test

import (
	"context"
	"log/slog"
	"sync"

	"github.com/awakend/awakend/sdnotify"
)

// The daemon's life as systemd sees it. Outside systemd every call is a
// no-op.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.Default()
	n := sdnotify.New()

	var wg sync.WaitGroup
	if interval, ok := sdnotify.WatchdogInterval(); ok {
		wg.Go(func() {
			n.RunWatchdog(ctx, interval, func(err error) {
				log.Warn("watchdog ping failed", "err", err)
			})
		})
	}

	_ = n.Ready("serving config version 1")
	// On SIGHUP or a reload request:
	_ = n.Reloading("reloading configuration")
	_ = n.Ready("serving config version 2")
	// On SIGTERM:
	_ = n.Stopping()

	cancel()
	wg.Wait()
}
