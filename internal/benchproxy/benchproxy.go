// Package benchproxy is the reference that BenchmarkGatewayOverhead
// (e2e/inference) judges the gateway against: a bare httputil.ReverseProxy
// to an upstream, net/http on both sides and nothing else. The benchmark
// serves it from an awakend binary built with the benchproxy tag (the
// hidden `awakend bench-proxy URL`), so that the gateway and its reference
// run one build: the same proxy code measures tens of microseconds apart
// at concurrency 1 from two different binaries (static or dynamic linking,
// a package more or less), which would swamp what the gateway adds. No
// build that ships imports it.
package benchproxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// Handler proxies every request to upstream, a base URL whose path the
// request's replaces. It reads the request body first, as the gateway
// does; streamed through, the body would race the response (writing the
// response closes the inbound body while the transport may still read
// it). Streams are flushed event by event, as ReverseProxy does for
// text/event-stream. Its pool is the openai executor's.
func Handler(upstream *url.URL) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(upstream)
			r.Out.URL.Path = r.In.URL.Path
		},
		Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 512, IdleConnTimeout: 90 * time.Second, DisableCompression: true},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		rp.ServeHTTP(w, r)
	})
}

// Serve serves h on a loopback port, writes its base URL
// (http://127.0.0.1:PORT/v1) and a newline to out, and returns once until
// reaches its end: the benchmark that started the process closed its
// standard input, or died.
func Serve(h http.Handler, out io.Writer, until io.Reader) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if _, err := fmt.Fprintln(out, "http://"+ln.Addr().String()+"/v1"); err != nil {
		ln.Close()
		return err
	}
	go func() { _ = srv.Serve(ln) }()
	_, _ = io.Copy(io.Discard, until)
	return srv.Close()
}
