package provider

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestClassify(t *testing.T) {
	const (
		oaRate    = `{"error":{"message":"Rate limit reached for gpt-4 in organization org-x on requests per min (RPM): Limit 3, Used 3.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`
		oaKey     = `{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`
		oaModel   = `{"error":{"message":"The model 'gpt-9' does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}`
		oaQuota   = `{"error":{"message":"You exceeded your current quota.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`
		anOver    = `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}`
		anRate    = `{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}`
		anAuth    = `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`
		anPerm    = `{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}`
		anInvalid = `{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}`
		anLarge   = `{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}`
		anMissing = `{"type":"error","error":{"type":"not_found_error","message":"model: claude-9"}}`
		anAPI     = `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`
		vllm      = `{"object":"error","message":"The model does not support tools","type":"BadRequestError","param":null,"code":400}`
		ollama    = `{"error":"model \"llama9\" not found, try pulling it first"}`
		numCode   = `{"error":{"message":"bad","type":"x","code":400}}`
	)
	retry := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	for _, tt := range []struct {
		name       string
		status     int
		header     http.Header
		body       string
		class      Class
		retryable  bool
		retryAfter time.Duration
		msg, typ   string
		code       string
	}{
		{"openai 429", 429, retry("Retry-After", "20"), oaRate, ClassRateLimit, true, 20 * time.Second, "Rate limit reached for gpt-4", "requests", "rate_limit_exceeded"},
		{"openai 429 quota", 429, nil, oaQuota, ClassRateLimit, true, 0, "You exceeded your current quota.", "insufficient_quota", "insufficient_quota"},
		{"429 retry-after-ms wins", 429, retry("Retry-After-Ms", "1500", "Retry-After", "9"), "", ClassRateLimit, true, 1500 * time.Millisecond, "Too Many Requests", "rate_limit_error", ""},
		{"429 retry-after date", 429, retry("Retry-After", now.Add(30*time.Second).Format(http.TimeFormat)), "", ClassRateLimit, true, 30 * time.Second, "Too Many Requests", "rate_limit_error", ""},
		{"429 retry-after past date", 429, retry("Retry-After", now.Add(-time.Hour).Format(http.TimeFormat)), "", ClassRateLimit, true, 0, "Too Many Requests", "rate_limit_error", ""},
		{"429 retry-after garbage", 429, retry("Retry-After", "soon"), "", ClassRateLimit, true, 0, "Too Many Requests", "rate_limit_error", ""},
		{"429 retry-after fraction", 429, retry("Retry-After", "0.5"), "", ClassRateLimit, true, 500 * time.Millisecond, "Too Many Requests", "rate_limit_error", ""},
		{"429 retry-after huge", 429, retry("Retry-After", "99999999999999"), "", ClassRateLimit, true, maxRetryAfter, "Too Many Requests", "rate_limit_error", ""},
		{"402 credits", 402, nil, `{"error":{"message":"Insufficient credits","code":402}}`, ClassRateLimit, true, 0, "Insufficient credits", "rate_limit_error", "402"},
		{"503", 503, retry("Retry-After", "3"), "", ClassOverloaded, true, 3 * time.Second, "Service Unavailable", "server_error", ""},
		{"529 anthropic", 529, nil, anOver, ClassOverloaded, true, 0, "Overloaded", "overloaded_error", ""},
		{"500 anthropic overloaded", 500, nil, anOver, ClassOverloaded, true, 0, "Overloaded", "overloaded_error", ""},
		{"500 anthropic api_error", 500, nil, anAPI, ClassServer, true, 0, "Internal server error", "api_error", ""},
		{"502 html", 502, nil, "<html><body>Bad Gateway</body></html>", ClassServer, true, 0, "Bad Gateway", "server_error", ""},
		{"504", 504, nil, "", ClassServer, true, 0, "Gateway Timeout", "server_error", ""},
		{"408", 408, nil, "", ClassTimeout, true, 0, "Request Timeout", "timeout_error", ""},
		{"anthropic 429", 429, retry("Retry-After", "5"), anRate, ClassRateLimit, true, 5 * time.Second, "Number of request tokens", "rate_limit_error", ""},
		{"openai 401", 401, nil, oaKey, ClassAuth, false, 0, "Incorrect API key provided", "invalid_request_error", "invalid_api_key"},
		{"anthropic 401", 401, nil, anAuth, ClassAuth, false, 0, "invalid x-api-key", "authentication_error", ""},
		{"anthropic 403", 403, nil, anPerm, ClassAuth, false, 0, "does not have permission", "permission_error", ""},
		{"openai 404", 404, nil, oaModel, ClassNotFound, false, 0, "does not exist", "invalid_request_error", "model_not_found"},
		{"anthropic 404", 404, nil, anMissing, ClassNotFound, false, 0, "model: claude-9", "not_found_error", ""},
		{"anthropic 400", 400, nil, anInvalid, ClassInvalidRequest, false, 0, "max_tokens: Field required", "invalid_request_error", ""},
		{"anthropic 413", 413, nil, anLarge, ClassInvalidRequest, false, 0, "maximum allowed number of bytes", "request_too_large", ""},
		{"422", 422, nil, "", ClassInvalidRequest, false, 0, "Unprocessable Entity", "invalid_request_error", ""},
		{"409 other 4xx", 409, nil, "", ClassInvalidRequest, false, 0, "Conflict", "invalid_request_error", ""},
		{"vllm shape", 400, nil, vllm, ClassInvalidRequest, false, 0, "The model does not support tools", "invalid_request_error", ""},
		{"ollama shape", 404, nil, ollama, ClassNotFound, false, 0, `model "llama9" not found`, "invalid_request_error", ""},
		{"numeric code", 400, nil, numCode, ClassInvalidRequest, false, 0, "bad", "x", "400"},
		{"redirect", 301, retry("Location", "https://elsewhere.example/v2/x?key=k"), "", ClassNotFound, false, 0, "check base_url: redirected to https://elsewhere.example/v2/x", "invalid_request_error", ""},
		{"odd status", 599, nil, "", ClassServer, true, 0, "HTTP 599", "server_error", ""},
		{"long message clipped", 400, nil, `{"error":{"message":"` + strings.Repeat("é", 600) + `"}}`, ClassInvalidRequest, false, 0, "éé", "invalid_request_error", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := classify(tt.status, tt.header, []byte(tt.body), now, nil)
			if e.Class != tt.class || e.Retryable() != tt.retryable || e.RetryAfter != tt.retryAfter {
				t.Errorf("class %s retryable %v retry after %v; want %s %v %v", e.Class, e.Retryable(), e.RetryAfter, tt.class, tt.retryable, tt.retryAfter)
			}
			if !strings.Contains(e.Message, tt.msg) || e.Type != tt.typ || e.Code != tt.code || e.StatusCode != tt.status {
				t.Errorf("message %q type %q code %q status %d; want %q… %q %q", e.Message, e.Type, e.Code, e.StatusCode, tt.msg, tt.typ, tt.code)
			}
			if len(e.Message) > maxMessage+len("…") {
				t.Errorf("message of %d bytes", len(e.Message))
			}
			if !strings.Contains(e.Error(), string(e.Class)) {
				t.Errorf("Error() = %q", e.Error())
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	want := map[Class]bool{
		ClassRateLimit: true, ClassOverloaded: true, ClassServer: true, ClassTimeout: true, ClassConnect: true,
		ClassAuth: false, ClassNotFound: false, ClassInvalidRequest: false, ClassCanceled: false,
	}
	for c, r := range want {
		if got := (&Error{Class: c}).Retryable(); got != r {
			t.Errorf("%s: Retryable = %v", c, got)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestTransportClass(t *testing.T) {
	live := context.Background()
	done, cancel := context.WithCancel(live)
	cancel()
	late, cancel2 := context.WithDeadline(live, now)
	defer cancel2()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		err  error
		want Class
	}{
		{"canceled", done, context.Canceled, ClassCanceled},
		{"deadline", late, context.DeadlineExceeded, ClassTimeout},
		{"dial refused", live, &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, ClassConnect},
		{"dial timeout", live, &net.OpError{Op: "dial", Err: timeoutErr{}}, ClassConnect},
		{"dns", live, &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, ClassConnect},
		{"header timeout", live, timeoutErr{}, ClassTimeout},
		{"reset after connect", live, &net.OpError{Op: "read", Err: syscall.ECONNRESET}, ClassServer},
		{"eof", live, errors.New("EOF"), ClassServer},
	} {
		if got := transportClass(tt.ctx, tt.err); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
