//go:build benchproxy

package main

import (
	"context"
	"errors"
	"io"
	"net/url"
	"os"

	"github.com/awakend/awakend/internal/benchproxy"
)

// A build with the benchproxy tag also serves the reference of the gateway
// benchmark, `awakend bench-proxy URL` (see package benchproxy), from this
// very binary. Shipped builds have no such command.
func init() {
	hidden["bench-proxy"] = func(_ context.Context, args []string, stdout, _ io.Writer) error {
		if len(args) != 1 {
			return errors.New("usage: awakend bench-proxy UPSTREAM_BASE_URL")
		}
		u, err := url.Parse(args[0])
		if err != nil {
			return err
		}
		return benchproxy.Serve(benchproxy.Handler(u), stdout, os.Stdin)
	}
}
