package inference

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/provider/providertest"
)

// clientsConfig declares the clients of these tests: team (gpt, its agent
// and claude), batch (only other, two requests a minute, declared by its
// key's hash), meter (gpt and claude, for the usage figures) and temp
// (everything; removed by a reload).
func clientsConfig(withTemp bool) string {
	sum := sha256.Sum256([]byte("sk-batch-e2e"))
	s := `clients:
  - {id: team, key: sk-team-e2e, models: [gpt, helper, claude]}
  - {id: batch, key_sha256: ` + hex.EncodeToString(sum[:]) + `, models: [other], limits: {requests_per_minute: 2}}
  - {id: meter, key: sk-meter-e2e, models: [gpt, claude]}
`
	if withTemp {
		s += "  - {id: temp, key: sk-temp-e2e}\n"
	}
	return s
}

func clientsDir(t *testing.T, up *providertest.Server) string {
	return harness.ConfigDir(t, map[string]string{
		"providers.yaml": `providers:
  - {id: oa, adapter: openai, base_url: "` + up.OpenAIURL() + `", api_key: sk-upstream-openai}
  - {id: an, adapter: anthropic, base_url: "` + up.AnthropicURL() + `", api_key: sk-upstream-anthropic}
`,
		"models.yaml": `models:
  - {id: gpt, provider_id: oa, upstream_model: gpt-up, input_token_price_per_million_usd: 3, output_token_price_per_million_usd: 15}
  - {id: other, provider_id: oa, upstream_model: other-up}
  - {id: claude, provider_id: an, upstream_model: claude-up, input_token_price_per_million_usd: 1, output_token_price_per_million_usd: 5}
`,
		"agents.yaml":  "agents:\n  - {id: helper, model_id: gpt, system_prompt: You help.}\n",
		"clients.yaml": clientsConfig(true),
	})
}

// apiError returns err as the OpenAI SDK's error, failing the test if it
// is not one of status and code.
func apiError(t *testing.T, err error, status int, code string) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want HTTP %d %s", err, err, status, code)
	}
	if e.StatusCode != status || e.Code != code {
		t.Fatalf("HTTP %d code %q, want %d %s", e.StatusCode, e.Code, status, code)
	}
	return e
}

// TestClientScopes: with clients declared, a key may call what its client
// may, the rest is a model that does not exist (404 model_not_found, on
// every route), /v1/models lists only its models, and a request without
// a client's key is refused.
func TestClientScopes(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	answerByModel(up)
	d := start(t, clientsDir(t, up), harness.Options{})
	team := d.newClient(t, "sk-team-e2e")

	for _, model := range []string{"gpt", "helper"} {
		cc, err := team.Chat.Completions.New(t.Context(), params(model))
		if err != nil {
			t.Fatalf("%s: %v", model, err)
		}
		if got := cc.Choices[0].Message.Content; got != upstreamText("gpt-up") {
			t.Errorf("%s answered %q", model, got)
		}
	}
	_, err := team.Chat.Completions.New(t.Context(), params("other"))
	if e := apiError(t, err, http.StatusNotFound, "model_not_found"); !strings.Contains(e.Message, "'other' does not exist") {
		t.Errorf("message %q", e.Message)
	}
	_, err = team.Embeddings.New(t.Context(), openai.EmbeddingNewParams{Model: "other", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}})
	apiError(t, err, http.StatusNotFound, "model_not_found")
	_, err = team.Models.Get(t.Context(), "other")
	apiError(t, err, http.StatusNotFound, "model_not_found")

	for key, want := range map[string][]string{
		"sk-team-e2e":  {"claude", "gpt", "helper"},
		"sk-batch-e2e": {"other"},
		"sk-temp-e2e":  {"claude", "gpt", "helper", "other"},
	} {
		mc := d.newClient(t, key)
		page, err := mc.Models.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if !slices.Equal(ids, want) {
			t.Errorf("%s lists %v, want %v", key, ids, want)
		}
	}

	for _, key := range []string{"", "sk-wrong"} {
		kc := d.newClient(t, key)
		_, err := kc.Chat.Completions.New(t.Context(), params("gpt"))
		apiError(t, err, http.StatusUnauthorized, "invalid_api_key")
	}

	// Anthropic's SDK sends its key as x-api-key.
	an := d.newAnthropic(t, "sk-team-e2e")
	m, err := an.Messages.New(t.Context(), messageParams("claude"))
	if err != nil {
		t.Fatal(err)
	}
	if text(m) == "" {
		t.Errorf("empty message %s", m.RawJSON())
	}
	_, err = an.Messages.New(t.Context(), messageParams("other"))
	var ae *anthropic.Error
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound || !strings.Contains(ae.RawJSON(), `"not_found_error"`) {
		t.Errorf("out of scope on /v1/messages: %v, want 404 not_found_error", err)
	}
	_, err = an.Messages.CountTokens(t.Context(), anthropic.MessageCountTokensParams{Model: "other",
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))}})
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
		t.Errorf("out of scope on count_tokens: %v, want 404", err)
	}
	wrong := d.newAnthropic(t, "sk-wrong")
	_, err = wrong.Messages.New(t.Context(), messageParams("claude"))
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong x-api-key: %v, want 401", err)
	}
}

// TestClientLimit: batch may send two requests a minute; both carry
// OpenAI's rate-limit headers, and the third is 429 with Retry-After.
func TestClientLimit(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	answerByModel(up)
	d := start(t, clientsDir(t, up), harness.Options{})
	c := d.newClient(t, "sk-batch-e2e")
	for i := range 2 {
		var raw *http.Response
		if _, err := c.Chat.Completions.New(t.Context(), params("other"), option.WithResponseInto(&raw)); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := raw.Header.Get("x-ratelimit-limit-requests"); got != "2" {
			t.Errorf("request %d: x-ratelimit-limit-requests %q", i, got)
		}
		if got := raw.Header.Get("x-ratelimit-remaining-requests"); got != strconv.Itoa(1-i) {
			t.Errorf("request %d: x-ratelimit-remaining-requests %q, want %d", i, got, 1-i)
		}
		if raw.Header.Get("x-ratelimit-limit-tokens") != "" {
			t.Errorf("request %d: a token limit header without a token limit", i)
		}
	}
	_, err := c.Chat.Completions.New(t.Context(), params("other"))
	e := apiError(t, err, http.StatusTooManyRequests, "rate_limit_exceeded")
	h := e.Response.Header
	// Two a minute come back one every 30 s.
	if s, err := strconv.Atoi(h.Get("Retry-After")); err != nil || s < 1 || s > 30 {
		t.Errorf("Retry-After %q, want 1 to 30 seconds", h.Get("Retry-After"))
	}
	if h.Get("x-ratelimit-limit-requests") != "2" || h.Get("x-ratelimit-remaining-requests") != "0" {
		t.Errorf("limit headers %v", h)
	}
	if reset, err := time.ParseDuration(h.Get("x-ratelimit-reset-requests")); err != nil || reset <= 30*time.Second || reset > time.Minute {
		t.Errorf("x-ratelimit-reset-requests %q, want over 30s, at most 1m0s", h.Get("x-ratelimit-reset-requests"))
	}
	if n := up.Stats().Requests; n != 2 {
		t.Errorf("upstream saw %d requests, want 2", n)
	}
}

// TestClientUsage: the tokens the upstream reports, streams included, are
// counted per client and model, and cost the model's prices, in the
// clients API and the metrics; the request's log line names the client,
// and the key appears nowhere.
func TestClientUsage(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	answerByModel(up)
	d := start(t, clientsDir(t, up), harness.Options{})
	c := d.newClient(t, "sk-meter-e2e")

	type counts struct{ in, out int64 }
	want := map[string]*counts{"gpt": {}, "claude": {}}
	cc, err := c.Chat.Completions.New(t.Context(), params("gpt"))
	if err != nil {
		t.Fatal(err)
	}
	checkUsage(t, cc.Usage)
	want["gpt"].in += cc.Usage.PromptTokens
	want["gpt"].out += cc.Usage.CompletionTokens
	s := readStream(t, t.Context(), c, streamParams("gpt"))
	checkUsage(t, s.acc.Usage)
	want["gpt"].in += s.acc.Usage.PromptTokens
	want["gpt"].out += s.acc.Usage.CompletionTokens

	an := d.newAnthropic(t, "sk-meter-e2e")
	m, err := an.Messages.New(t.Context(), messageParams("claude"))
	if err != nil {
		t.Fatal(err)
	}
	want["claude"].in += m.Usage.InputTokens
	want["claude"].out += m.Usage.OutputTokens
	st := an.Messages.NewStreaming(t.Context(), messageParams("claude"))
	var acc anthropic.Message
	for st.Next() {
		if err := acc.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	want["claude"].in += acc.Usage.InputTokens
	want["claude"].out += acc.Usage.OutputTokens

	type figures struct {
		Requests     int64   `json:"requests"`
		InputTokens  int64   `json:"input_tokens"`
		OutputTokens int64   `json:"output_tokens"`
		CostUSD      float64 `json:"cost_usd"`
	}
	var view struct {
		Key   *string `json:"key"`
		Usage struct {
			figures
			Models map[string]figures `json:"models"`
		} `json:"usage"`
	}
	// A stream is counted once its last event is sent: the answer reaches
	// the client first.
	deadline := time.Now().Add(harness.Timeout)
	for {
		if code := d.GetJSON("/api/v1/clients/meter", &view); code != http.StatusOK {
			t.Fatalf("GET /api/v1/clients/meter: %d", code)
		}
		if view.Usage.Requests == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if view.Key != nil {
		t.Error("the clients API serves the key")
	}
	price := map[string][2]float64{"gpt": {3, 15}, "claude": {1, 5}}
	var total figures
	for model, w := range want {
		cost := (float64(w.in)*price[model][0] + float64(w.out)*price[model][1]) / 1e6
		got := view.Usage.Models[model]
		if got.Requests != 2 || got.InputTokens != w.in || got.OutputTokens != w.out || math.Abs(got.CostUSD-cost) > 1e-12 {
			t.Errorf("usage of %s %+v, want 2 requests, %d and %d tokens, $%g", model, got, w.in, w.out, cost)
		}
		if v := d.Metric("awakend_tokens_total", "client", "meter", "model", model, "direction", "input"); v != float64(w.in) {
			t.Errorf("awakend_tokens_total input of %s = %v, want %d", model, v, w.in)
		}
		if v := d.Metric("awakend_tokens_total", "client", "meter", "model", model, "direction", "output"); v != float64(w.out) {
			t.Errorf("awakend_tokens_total output of %s = %v, want %d", model, v, w.out)
		}
		if v := d.Metric("awakend_cost_usd_total", "client", "meter", "model", model); math.Abs(v-cost) > 1e-12 {
			t.Errorf("awakend_cost_usd_total of %s = %v, want %v", model, v, cost)
		}
		total.Requests += got.Requests
		total.InputTokens += got.InputTokens
		total.OutputTokens += got.OutputTokens
		total.CostUSD += got.CostUSD
	}
	if f := view.Usage.figures; f.Requests != total.Requests || f.InputTokens != total.InputTokens ||
		f.OutputTokens != total.OutputTokens || math.Abs(f.CostUSD-total.CostUSD) > 1e-12 {
		t.Errorf("total %+v, want the sum of the models, %+v", f, total)
	}
	d.WaitLog(regexp.MustCompile(`"msg":"request".*"client":"meter"`))
	if strings.Contains(d.Logs(), "sk-meter-e2e") {
		t.Error("a client key is in the log")
	}
}

// TestClientKeyRemovedByReload: a reload that removes a client refuses its
// key on the next request, while a stream it started runs to its end.
func TestClientKeyRemovedByReload(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	answerByModel(up)
	dir := clientsDir(t, up)
	d := start(t, dir, harness.Options{})
	c := d.newClient(t, "sk-temp-e2e")

	hold := make(chan struct{})
	up.Enqueue(providertest.Reply{Text: upstreamText("gpt-up"), Hold: hold})
	s := c.Chat.Completions.NewStreaming(t.Context(), streamParams("gpt"))
	defer s.Close()
	if !s.Next() {
		t.Fatalf("no first chunk: %v", s.Err())
	}
	var acc openai.ChatCompletionAccumulator
	acc.AddChunk(s.Current())

	harness.Replace(t, dir, "clients.yaml", clientsConfig(false))
	// The watcher may have applied the edit first: then this reload
	// finds nothing new.
	if r := d.Reload(); r.Result != "applied" && r.Result != "unchanged" {
		t.Fatalf("reload %+v", r)
	}
	_, err := c.Chat.Completions.New(t.Context(), params("gpt"))
	apiError(t, err, http.StatusUnauthorized, "invalid_api_key")

	close(hold)
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil {
		t.Fatalf("the stream started before the reload: %v", err)
	}
	if got := acc.Choices[0].Message.Content; got != upstreamText("gpt-up") {
		t.Errorf("stream assembled %q", got)
	}
	team := d.newClient(t, "sk-team-e2e")
	if cc, err := team.Chat.Completions.New(t.Context(), params("gpt")); err != nil || cc.Choices[0].Message.Content == "" {
		t.Errorf("a client the reload kept: %v", err)
	}
}
