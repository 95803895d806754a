package provider

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

// encoders compress a body as an upstream would under each coding.
var encoders = map[string]func(w io.Writer) io.WriteCloser{
	"gzip":   func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
	"x-gzip": func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
	"deflate": func(w io.Writer) io.WriteCloser { // zlib, as HTTP says
		return zlib.NewWriter(w)
	},
	"deflate (raw)": func(w io.Writer) io.WriteCloser {
		fw, _ := flate.NewWriter(w, flate.DefaultCompression)
		return fw
	},
}

func encode(t *testing.T, coding, s string) string {
	t.Helper()
	var b bytes.Buffer
	w := encoders[coding](&b)
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A compressed answer, JSON or SSE, reaches the caller decoded, as it
// would have uncompressed: for both adapters, and whatever the coding.
func TestCompressedAnswers(t *testing.T) {
	const (
		oaJSON = `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"zipped","refusal":null},"logprobs":null,"finish_reason":"stop"}]}`
		oaSSE  = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"zipped\"},\"logprobs\":null,\"finish_reason\":null}]}\n\ndata: [DONE]\n\n"
		anJSON = `{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"zipped"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`
		anSSE  = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"m\"}}\n\n" +
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"zipped\"}}\n\n" +
			"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	)
	for _, tt := range []struct {
		adapter string
		stream  bool
		body    string
	}{
		{"openai", false, oaJSON}, {"openai", true, oaSSE}, {"anthropic", false, anJSON}, {"anthropic", true, anSSE},
	} {
		srv := providertest.NewServer(t)
		e := newExec(t, registry.ProviderSpec{Adapter: tt.adapter, BaseURL: baseURL(srv, tt.adapter)}, 5*time.Second)
		call := func() (*Response, error) {
			return e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"x"}],"stream":` + map[bool]string{false: "false", true: "true"}[tt.stream] + `}`), Stream: tt.stream, UpstreamModel: "m"})
		}
		srv.Enqueue(providertest.Reply{Body: tt.body})
		resp, err := call()
		if err != nil {
			t.Fatal(err)
		}
		want := readAll(t, resp)
		for coding := range encoders {
			t.Run(tt.adapter+" "+map[bool]string{false: "json", true: "sse"}[tt.stream]+" "+coding, func(t *testing.T) {
				name := strings.TrimSuffix(coding, " (raw)")
				srv.Enqueue(providertest.Reply{Body: encode(t, coding, tt.body), Header: http.Header{"Content-Encoding": {name}}})
				resp, err := call()
				if err != nil {
					t.Fatal(err)
				}
				if got := readAll(t, resp); got != want {
					t.Errorf("decoded answer\n%q\nwant\n%q", got, want)
				}
				if _, ok := resp.Header["Content-Encoding"]; ok {
					t.Errorf("Content-Encoding passed on: %v", resp.Header)
				}
			})
		}
		// Any other coding fails the call, naming it, with nothing read.
		for _, coding := range []string{"br", "zstd", "gzip, br", "compress"} {
			t.Run(tt.adapter+" "+coding, func(t *testing.T) {
				srv.Enqueue(providertest.Reply{Body: "\x1b\x00\x00garbage", Header: http.Header{"Content-Encoding": {coding}}})
				_, err := call()
				ue := asError(t, err)
				if ue.Class != ClassServer || !ue.Retryable() || !strings.Contains(ue.Message, `Content-Encoding "`+coding+`"`) {
					t.Errorf("%v (class %s), want a server failure naming %q", err, ue.Class, coding)
				}
			})
		}
	}
}

// A compressed error body is read for its message.
func TestCompressedErrorBody(t *testing.T) {
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 5*time.Second)
	body := `{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}`
	srv.Enqueue(providertest.Reply{Status: 429, Body: encode(t, "gzip", body), Header: http.Header{"Content-Encoding": {"gzip"}}})
	_, err := e.Call(t.Context(), &Request{Body: []byte(`{}`)})
	if ue := asError(t, err); ue.Message != "slow down" || ue.Code != "rate_limit_exceeded" {
		t.Errorf("%+v", ue)
	}
}

// The decoded size of a body is bounded: past the limit a read fails, and
// what was read stops at the limit.
func TestDecodedBound(t *testing.T) {
	bomb := encode(t, "gzip", strings.Repeat("0", 1<<20))
	d := &decodedBody{raw: io.NopCloser(strings.NewReader(bomb)), coding: "gzip", bound: bound{limit: 4096}}
	got, err := io.ReadAll(d)
	var ue *Error
	if !errors.As(err, &ue) || ue.Class != ClassServer || len(got) != 4096 {
		t.Errorf("read %d bytes, %v; want 4096 and a server failure", len(got), err)
	}
	for _, tt := range []struct{ name, coding, body string }{
		{"empty gzip", "gzip", ""},
		{"empty deflate", "deflate", ""},
	} {
		d := &decodedBody{raw: io.NopCloser(strings.NewReader(tt.body)), coding: tt.coding}
		if got, err := io.ReadAll(d); err != nil || len(got) != 0 {
			t.Errorf("%s: %q, %v", tt.name, got, err)
		}
	}
	d = &decodedBody{raw: io.NopCloser(strings.NewReader("not gzip")), coding: "gzip"}
	if _, err := io.ReadAll(d); !errors.As(err, &ue) || !strings.Contains(ue.Message, "gzip") {
		t.Errorf("corrupt gzip: %v", err)
	}
}

// A compressed stream still passes event by event: each event the
// upstream flushed comes out before the next is sent.
func TestCompressedStreamEventByEvent(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	d := &decodedBody{raw: pr, coding: "gzip"}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	buf := make([]byte, 4096)
	for _, ev := range []string{"data: one\n\n", "data: two\n\n"} {
		io.WriteString(zw, ev)
		zw.Flush()
		chunk := bytes.Clone(z.Bytes())
		z.Reset()
		go pw.Write(chunk) // returns once read, or when the pipe closes
		var got []byte
		for !bytes.HasSuffix(got, []byte("\n\n")) {
			n, err := d.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
		}
		if string(got) != ev {
			t.Fatalf("got %q, want %q", got, ev)
		}
	}
}

// A non-stream answer is bounded before decoding too.
func TestRawBound(t *testing.T) {
	e := newExec(t, registry.ProviderSpec{Adapter: "openai"}, time.Second)
	e.begin()
	c := &callBody{ReadCloser: io.NopCloser(strings.NewReader(strings.Repeat("x", 100))), e: e, bound: bound{limit: 10}}
	got, err := io.ReadAll(c)
	var ue *Error
	if !errors.As(err, &ue) || ue.Class != ClassServer || len(got) != 10 {
		t.Errorf("read %d bytes, %v; want 10 and a server failure", len(got), err)
	}
	if n, err := c.Read(make([]byte, 8)); n != 0 || !errors.As(err, &ue) {
		t.Errorf("read past the bound: %d, %v", n, err)
	}
	c.Close()
	if n := e.inflight.Load(); n != 0 {
		t.Errorf("%d calls in flight after Close", n)
	}
}
