package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/awakend/awakend/anthropic"
	"github.com/awakend/awakend/internal/sse"
)

// The anthropic adapter speaks Anthropic's Messages API: POST
// {base}/v1/messages, x-api-key, anthropic-version. Chat completions are
// translated both ways by package anthropic; Messages and count_tokens
// requests are passed through.

// invalid is the *Error for a request the adapter cannot translate.
func invalid(format string, args ...any) *Error {
	return &Error{Class: ClassInvalidRequest, Message: fmt.Sprintf(format, args...), Type: "invalid_request_error"}
}

// anthropicAdapter translates chat completions to the Messages API and
// passes Messages and count_tokens requests through.
type anthropicAdapter struct {
	version string // the anthropic-version sent
}

func (anthropicAdapter) serves(e *Executor, api API) bool {
	return api == APIChat || e.native[api] != nil
}

func (a anthropicAdapter) call(ctx context.Context, e *Executor, req *Request) (*Response, error) {
	if req.API != APIChat {
		return e.pass(ctx, e.native[req.API], req)
	}
	return a.chat(ctx, e, req)
}

// chat translates the request, posts it and translates the answer.
func (a anthropicAdapter) chat(ctx context.Context, e *Executor, req *Request) (*Response, error) {
	body, includeUsage, terr := anthropic.ToMessages(req.Body, anthropic.MessagesOptions{
		Model: req.UpstreamModel, Stream: req.Stream, NoSampling: a.version >= samplingRemoved, Adaptive: req.Adaptive,
	})
	if terr != nil {
		return nil, invalid("%s", terr.Message)
	}
	resp, err := e.do(ctx, e.url, body, req.Stream, req.RequestID, nil)
	if err != nil {
		return nil, err
	}
	h := e.passHeaders(resp.Header, contentTypeJSON)
	if req.Stream {
		h["Content-Type"] = []string{contentTypeSSE}
		s := anthropic.NewChatStream(resp.Body, includeUsage, e.now().Unix(), e.secrets.redact)
		return &Response{StatusCode: http.StatusOK, Header: h, Body: chatStream{s}}, nil
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body) // bounded by do
	if rerr != nil {
		var ue *Error
		if errors.As(rerr, &ue) {
			return nil, ue
		}
		return nil, e.transportError(ctx, rerr)
	}
	out, terr := anthropic.ChatFromMessage(b, e.now().Unix())
	if terr != nil {
		return nil, &Error{Class: ClassServer, StatusCode: http.StatusOK, Message: clip(e.secrets.redact(terr.Message), maxMessage), Type: defaultType(ClassServer)}
	}
	h["Content-Type"] = []string{contentTypeJSON}
	return &Response{StatusCode: http.StatusOK, Header: h, Body: io.NopCloser(bytes.NewReader(out))}, nil
}

// chatStream is a translated stream whose event over the bound is an
// *Error, as every bound an upstream breaks is.
type chatStream struct{ *anthropic.ChatStream }

func (s chatStream) Read(p []byte) (int, error) {
	n, err := s.ChatStream.Read(p)
	var tl *sse.ErrTooLong
	if errors.As(err, &tl) {
		err = &Error{Class: ClassServer, Message: "the upstream's stream has an event over " + strconv.Itoa(tl.Limit) + " bytes", Type: defaultType(ClassServer), cause: err}
	}
	return n, err
}
