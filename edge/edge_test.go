package edge_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/awakend/awakend/edge"
)

func TestGuard(t *testing.T) {
	g := edge.NewGuard("myhost.lan:8700", "192.0.2.10:8700", "0.0.0.0:8700", ":8700")
	const lo, remote = "127.0.0.1:40000", "203.0.113.7:40000"
	for _, tt := range []struct {
		name, peer, method, host string
		header                   []string
		code                     string // "" = allowed
	}{
		{"rebinding name", lo, "GET", "evil.example:8700", nil, "host_not_allowed"},
		{"rebinding name without port", lo, "GET", "evil.example", nil, "host_not_allowed"},
		{"rebinding name from ::1", "[::1]:40000", "GET", "evil.example:8700", nil, "host_not_allowed"},
		{"rebinding name from mapped 127.0.0.1", "[::ffff:127.0.0.1]:40000", "POST", "evil.example:8700", nil, "host_not_allowed"},
		{"localhost with a name as suffix", lo, "GET", "localhost.evil.example:8700", nil, "host_not_allowed"},
		{"unspecified listen address", lo, "GET", "0.0.0.0:8700", nil, "host_not_allowed"},
		{"localhost", lo, "GET", "localhost:8700", nil, ""},
		{"localhost without port", lo, "GET", "localhost", nil, ""},
		{"localhost in capitals", lo, "GET", "LocalHost:8700", nil, ""},
		{"127.0.0.1", lo, "GET", "127.0.0.1:8700", nil, ""},
		{"127.0.0.1 without port", lo, "GET", "127.0.0.1", nil, ""},
		{"[::1]", lo, "GET", "[::1]:8700", nil, ""},
		{"[::1] without port", lo, "GET", "[::1]", nil, ""},
		{"listen name", lo, "GET", "myhost.lan:8700", nil, ""},
		{"listen address", lo, "GET", "192.0.2.10:8700", nil, ""},
		{"no Host", lo, "GET", "", nil, ""},
		{"remote peer is not Host-checked", remote, "GET", "evil.example:8700", nil, ""},
		{"unix socket peer is not Host-checked", "@", "GET", "evil.example:8700", nil, ""},

		{"cross-site POST", lo, "POST", "127.0.0.1:8700", []string{"Sec-Fetch-Site", "cross-site"}, "cross_origin_request"},
		{"same-site POST", lo, "POST", "127.0.0.1:8700", []string{"Sec-Fetch-Site", "same-site"}, "cross_origin_request"},
		{"cross-site POST from a remote peer", remote, "POST", "awakend.example", []string{"Sec-Fetch-Site", "cross-site"}, "cross_origin_request"},
		{"POST with a foreign Origin", lo, "POST", "127.0.0.1:8700", []string{"Origin", "http://evil.example"}, "cross_origin_request"},
		{"same-origin POST", lo, "POST", "127.0.0.1:8700", []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://127.0.0.1:8700"}, ""},
		{"POST with its own Origin", lo, "POST", "localhost:8700", []string{"Origin", "http://localhost:8700"}, ""},
		{"non-browser POST", lo, "POST", "127.0.0.1:8700", nil, ""},
		{"cross-site GET", lo, "GET", "127.0.0.1:8700", []string{"Sec-Fetch-Site", "cross-site"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/v1/models", nil)
			r.RemoteAddr, r.Host = tt.peer, tt.host
			for i := 0; i+1 < len(tt.header); i += 2 {
				r.Header.Set(tt.header[i], tt.header[i+1])
			}
			status, e := g.Check(r)
			if tt.code == "" {
				if e != nil {
					t.Fatalf("refused (%d): %s", status, e.Message)
				}
				return
			}
			if e == nil || status != http.StatusForbidden || e.Code != tt.code || e.Message == "" {
				t.Fatalf("got %d %+v, want 403 %s", status, e, tt.code)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	k := edge.NewKeys("key-one", "", "key-two")
	for _, tt := range []struct {
		auth  string
		token string // "" = none
		match bool
	}{
		{"Bearer key-one", "key-one", true},
		{"bearer key-two", "key-two", true},
		{"BEARER  key-two ", "key-two", true},
		{"Bearer key-on", "key-on", false},
		{"Bearer key-one-and-more", "key-one-and-more", false},
		{"Bearer ", "", false},
		{"Basic key-one", "", false},
		{"key-one", "", false},
		{"", "", false},
	} {
		t.Run(tt.auth, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			token, ok := edge.Bearer(r)
			if token != tt.token || ok != (tt.token != "") {
				t.Fatalf("Bearer = %q, %v; want %q", token, ok, tt.token)
			}
			if got := k.Match(token); got != tt.match {
				t.Errorf("Match = %v, want %v", got, tt.match)
			}
		})
	}
	if n := k.Len(); n != 2 {
		t.Errorf("Len = %d, want 2 (the empty key left out)", n)
	}
	var none *edge.Keys
	if none.Len() != 0 || none.Match("") || edge.NewKeys().Match("x") {
		t.Error("an empty set matched")
	}
}

func TestWriteError(t *testing.T) {
	for _, tt := range []struct {
		e    *edge.Error
		want string
	}{
		{edge.NewError(edge.TypeInvalidRequest, "model_not_found", "model", "The model 'x' does not exist"),
			`{"error":{"message":"The model 'x' does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}`},
		{edge.NewError(edge.TypeServer, "", "", "<failed>"),
			`{"error":{"message":"\u003cfailed\u003e","type":"server_error","param":null,"code":null}}`},
	} {
		w := httptest.NewRecorder()
		edge.WriteError(w, http.StatusNotFound, tt.e)
		if w.Code != 404 || w.Body.String() != tt.want+"\n" {
			t.Errorf("%d %s, want %s", w.Code, w.Body, tt.want)
		}
		if w.Header().Get("Content-Type") != "application/json" || w.Header().Get("X-Content-Type-Options") != "nosniff" ||
			w.Header().Get("Content-Length") != strconv.Itoa(w.Body.Len()) {
			t.Errorf("headers %v", w.Header())
		}
		// An error embedded in a larger body keeps the shape.
		b, _ := json.Marshal(struct {
			Error edge.Error `json:"error"`
		}{*tt.e})
		if string(b) != tt.want {
			t.Errorf("embedded: %s, want %s", b, tt.want)
		}
	}
}
