// Package provider builds the executors that registry providers hold: one
// per provider spec, each with its own HTTP connection pool, so that a
// reload that keeps a provider's spec keeps its warm connections, and a
// changed or removed provider's connections can be closed once drained.
package provider

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/awakend/awakend/registry"
)

// Executor calls one upstream provider. It holds the provider's spec and
// connection pool.
type Executor struct {
	spec    registry.ProviderSpec
	adapter registry.Adapter
	client  *http.Client
}

// New returns the executor for spec. It opens no connection.
func New(spec registry.ProviderSpec) (registry.Executor, error) {
	a, ok := registry.LookupAdapter(spec.Adapter)
	if !ok {
		return nil, fmt.Errorf("provider %q: unknown adapter %q", spec.ID, spec.Adapter)
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &Executor{
		spec:    spec,
		adapter: a,
		client:  &http.Client{Transport: tr, Timeout: time.Duration(spec.TimeoutSecs) * time.Second},
	}, nil
}

// Name is the adapter kind: "openai", "anthropic" or "mock".
func (e *Executor) Name() string { return e.adapter.Kind }

// Spec returns the spec the executor was built from.
func (e *Executor) Spec() registry.ProviderSpec { return e.spec }

// Close closes the executor's idle connections. Requests in flight finish.
func (e *Executor) Close() error {
	e.client.CloseIdleConnections()
	return nil
}
