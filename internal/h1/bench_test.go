package h1_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/awakend/awakend/internal/h1"
)

// BenchmarkServe compares h1.Server with net/http's Server on a gateway's
// small exchange: a 600-byte JSON request answered with 300 bytes of
// JSON, one request at a time on a kept loopback connection.
func BenchmarkServe(b *testing.B) {
	in := []byte(`{"model":"m","messages":[{"role":"user","content":"` + strings.Repeat("x", 600-len(`{"model":"m","messages":[{"role":"user","content":""}]}`)) + `"}]}`)
	out := []byte(`{"id":"c1","object":"chat.completion","choices":[{"message":{"role":"assistant","content":"` + strings.Repeat("y", 300-len(`{"id":"c1","object":"chat.completion","choices":[{"message":{"role":"assistant","content":""}}]}`)) + `"}}]}`)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	servers := []struct {
		name  string
		serve func(net.Listener) (stop func())
	}{
		{"h1", func(ln net.Listener) func() {
			s := &h1.Server{Handler: handler}
			go s.Serve(ln)
			return func() { s.Close() }
		}},
		{"net-http", func(ln net.Listener) func() {
			s := &http.Server{Handler: handler}
			go s.Serve(ln)
			return func() { s.Close() }
		}},
	}
	for _, s := range servers {
		b.Run(s.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer s.serve(ln)()
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			url := "http://" + ln.Addr().String() + "/v1/chat/completions"
			body := bytes.NewReader(in)
			b.ReportAllocs()
			for b.Loop() {
				body.Reset(in)
				req, err := http.NewRequest(http.MethodPost, url, body)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || n != int64(len(out)) {
					b.Fatalf("answer %d, %d bytes, %v", resp.StatusCode, n, err)
				}
			}
		})
	}
}
