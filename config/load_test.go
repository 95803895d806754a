package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/awakend/awakend/registry"
)

// dir builds an in-memory config directory from file contents.
func mapDir(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// diagLines returns the diagnostics of err as text, failing on other errors.
func diagLines(t *testing.T, err error) []string {
	t.Helper()
	ds := diagnostics(t, err)
	if ds == nil {
		return nil
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}

func mustLoad(t *testing.T, files map[string]string, opts Options) *Config {
	t.Helper()
	c, err := Load(mapDir(files), opts)
	if err != nil {
		t.Fatalf("Load:\n%v", err)
	}
	if _, err := c.Build(nil, nil); err != nil {
		t.Fatalf("Build:\n%v", err)
	}
	return c
}

const minimalConfig = `
providers:
  - {id: p, adapter: mock}
models:
  - {id: m, provider_id: p, upstream_model: u}
`

func TestLoadDefaults(t *testing.T) {
	c := mustLoad(t, map[string]string{"a.yaml": minimalConfig + `
model_pools:
  - id: pool
    members: [{model_id: m}]
    routing: {sticky_scope: run}
agents:
  - {id: a, model_id: m}
  - id: remote
    endpoint: {base_url: "https://agents.example.com"}
`}, Options{})
	p := c.Providers()[0]
	if p.TimeoutSecs != registry.DefaultProviderTimeoutSecs || p.APIKey != "" || p.AdapterOptions.Headers != nil {
		t.Errorf("provider defaults: %+v", p)
	}
	m := c.Models()[0]
	if m.ContextWindow != nil || m.MaxOutputTokens != nil || m.InputTokenPricePerMillionUSD != nil || m.Modalities.Input != nil {
		t.Errorf("model defaults: %+v", m)
	}
	pool := c.Pools()[0]
	wantPool := registry.PoolSpec{
		ID:      "pool",
		Members: []registry.PoolMember{{ModelID: "m", Role: registry.RoleMember}},
		Routing: registry.PoolRouting{Home: registry.HomeDeterministic, StickyScope: registry.StickyRun},
		Switch:  registry.DefaultSwitchPolicy(),
	}
	if !reflect.DeepEqual(pool, wantPool) {
		t.Errorf("pool:\n got %+v\nwant %+v", pool, wantPool)
	}
	a := c.Agents()[0]
	if a.MaxRounds != 16 || a.MaxContinuationRetries != 2 || !reflect.DeepEqual(a.AllowedToolPatterns, []string{"*"}) || a.AllowedTools != nil {
		t.Errorf("agent defaults: %+v", a)
	}
	e := c.Agents()[1].Endpoint
	if e == nil || e.Backend != "a2a" || e.TimeoutMS != 300_000 || e.Auth != nil || e.Options != nil {
		t.Errorf("endpoint defaults: %+v", e)
	}
}

func TestLoadDecodesEveryField(t *testing.T) {
	c := mustLoad(t, map[string]string{"a.yaml": `
providers:
  - id: p
    adapter: openai
    api_key: sk-1
    base_url: https://llm.example.com/v1?x=1
    timeout_secs: 0x1e
    adapter_options: {headers: {X-Org: org-1, X-Num: 7}}
  - id: mock
    adapter: mock
    adapter_options: {mock: {latency_ms: 5, chunk_delay_ms: 1, reply: hi, fail_status: 429}}
models:
  - id: m
    provider_id: p
    upstream_model: 4
    context_window: 128_000
    max_output_tokens: +8192
    modalities: {input: [text, image], output: [text]}
    knowledge_cutoff: 2024-06-30
    input_token_price_per_million_usd: 3
    output_token_price_per_million_usd: 1.5e1
model_pools:
  - id: pool
    members:
      - {model_id: m, weight: 3, role: member}
    routing: {home: round_robin, sticky_scope: thread}
    switch:
      on_circuit_open: false
      on_quota: True
      quota_retry_after_threshold_secs: 30
      on_permanent: FALSE
      max_switches_per_session: 2
agents:
  - id: a
    description: helps
    model_id: pool
    system_prompt: |
      line one
      line two
    max_rounds: 3
    max_continuation_retries: 0
    reasoning_effort: {budget: 4096}
    context_policy:
      max_context_tokens: 1000
      max_output_tokens: 100
      min_recent_messages: 2
      enable_prompt_cache: false
      autocompact_threshold: 900
      compaction_mode: compact_to_safe_frontier
      compaction_raw_suffix_messages: 5
    stop_conditions: [{type: max_rounds, rounds: 3}, text]
    allowed_tools: []
    excluded_tools: [rm]
    excluded_tool_patterns: ["shell_*"]
    delegates: [b]
    sections: {memory: {window: 20, ratio: 0.5, on: true, none: null, tags: [x]}}
    registry: cloud
  - id: b
    model_id: m
    reasoning_effort: high
    allowed_tools: null
    allowed_tool_patterns: [web_*]
`}, Options{})
	p := c.Providers()[0]
	wantP := registry.ProviderSpec{ID: "p", Adapter: "openai", APIKey: "sk-1", BaseURL: "https://llm.example.com/v1?x=1",
		TimeoutSecs: 30, AdapterOptions: registry.AdapterOptions{Headers: map[string]string{"X-Org": "org-1", "X-Num": "7"}}}
	if !reflect.DeepEqual(p, wantP) {
		t.Errorf("provider:\n got %+v\nwant %+v", p, wantP)
	}
	if m := c.Providers()[1].AdapterOptions.Mock; m == nil || *m != (registry.MockOptions{LatencyMS: 5, ChunkDelayMS: 1, Reply: "hi", FailStatus: 429}) {
		t.Errorf("mock options: %+v", m)
	}
	m := c.Models()[0]
	if m.UpstreamModel != "4" || *m.ContextWindow != 128000 || *m.MaxOutputTokens != 8192 || m.KnowledgeCutoff != "2024-06-30" ||
		*m.InputTokenPricePerMillionUSD != 3 || *m.OutputTokenPricePerMillionUSD != 15 ||
		!reflect.DeepEqual(m.Modalities, registry.Modalities{Input: []registry.Modality{"text", "image"}, Output: []registry.Modality{"text"}}) {
		t.Errorf("model: %+v", m)
	}
	pool := c.Pools()[0]
	if w := pool.Members[0].Weight; w == nil || *w != 3 || pool.Routing.Home != registry.HomeRoundRobin ||
		pool.Switch.OnCircuitOpen || !pool.Switch.OnQuota || pool.Switch.OnPermanent ||
		*pool.Switch.QuotaRetryAfterThresholdSecs != 30 || *pool.Switch.MaxSwitchesPerSession != 2 {
		t.Errorf("pool: %+v", pool)
	}
	a := c.Agents()[0]
	threshold := uint64(900)
	wantA := registry.AgentSpec{
		ID: "a", Description: "helps", ModelID: "pool", SystemPrompt: "line one\nline two\n",
		MaxRounds: 3, MaxContinuationRetries: 0,
		ReasoningEffort: &registry.ReasoningEffort{Level: registry.EffortBudget, Budget: 4096},
		ContextPolicy: &registry.ContextPolicy{MaxContextTokens: 1000, MaxOutputTokens: 100, MinRecentMessages: 2,
			AutocompactThreshold: &threshold, CompactionMode: registry.CompactionCompactToSafeFrontier, CompactionRawSuffixMessages: 5},
		StopConditions:       []any{map[string]any{"type": "max_rounds", "rounds": int64(3)}, "text"},
		AllowedTools:         []string{},
		ExcludedTools:        []string{"rm"},
		ExcludedToolPatterns: []string{"shell_*"},
		Delegates:            []string{"b"},
		Sections: map[string]any{"memory": map[string]any{
			"window": int64(20), "ratio": 0.5, "on": true, "none": nil, "tags": []any{"x"}}},
		Registry: "cloud",
	}
	if !reflect.DeepEqual(a, wantA) {
		t.Errorf("agent:\n got %#v\nwant %#v", a, wantA)
	}
	b := c.Agents()[1]
	if b.ReasoningEffort.Level != "high" || b.AllowedTools != nil || !reflect.DeepEqual(b.AllowedToolPatterns, []string{"web_*"}) {
		t.Errorf("agent b: %+v", b)
	}
}

func TestLoadToolTriState(t *testing.T) {
	for _, tc := range []struct {
		name            string
		fields          string
		tools, patterns []string
	}{
		{"both absent allows all", "", nil, []string{"*"}},
		{"explicit nulls deny all", "allowed_tools: null\n    allowed_tool_patterns: null", nil, nil},
		{"one null", "allowed_tools: null", nil, nil},
		{"one list", "allowed_tools: [x]", []string{"x"}, nil},
		{"empty list", "allowed_tool_patterns: []", nil, []string{}},
		{"awaken serialized", "allowed_tools: null\n    allowed_tool_patterns: [\"*\"]", nil, []string{"*"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, map[string]string{"a.yaml": minimalConfig + "agents:\n  - id: a\n    model_id: m\n    " + tc.fields + "\n"}, Options{})
			a := c.Agents()[0]
			if !reflect.DeepEqual(a.AllowedTools, tc.tools) || !reflect.DeepEqual(a.AllowedToolPatterns, tc.patterns) {
				t.Errorf("got tools %#v patterns %#v, want %#v %#v", a.AllowedTools, a.AllowedToolPatterns, tc.tools, tc.patterns)
			}
		})
	}
}

func TestLoadEndpointForms(t *testing.T) {
	for _, tc := range []struct {
		name, endpoint string
		want           registry.Endpoint
	}{
		{"canonical", `{backend: a2a, base_url: "https://x.example", auth: {type: bearer, token: t0k}, target: remote-a, timeout_ms: 5000, options: {stream: true}}`,
			registry.Endpoint{Backend: "a2a", BaseURL: "https://x.example", Auth: &registry.EndpointAuth{Type: "bearer", Token: "t0k"},
				Target: "remote-a", TimeoutMS: 5000, Options: map[string]any{"stream": true}}},
		{"legacy", `{base_url: "https://x.example", bearer_token: t0k, agent_id: remote-a, poll_interval_ms: 250, timeout_ms: 9}`,
			registry.Endpoint{Backend: "a2a", BaseURL: "https://x.example", Auth: &registry.EndpointAuth{Type: "bearer", Token: "t0k"},
				Target: "remote-a", TimeoutMS: 9, Options: map[string]any{"poll_interval_ms": int64(250)}}},
		{"legacy with empty options", `{base_url: "https://x.example", agent_id: remote-a, options: {}}`,
			registry.Endpoint{Backend: "a2a", BaseURL: "https://x.example", Target: "remote-a", TimeoutMS: 300000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, map[string]string{"a.yaml": "agents:\n  - id: r\n    endpoint: " + tc.endpoint + "\n"}, Options{})
			if got := c.Agents()[0].Endpoint; !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %#v\nwant %#v", *got, tc.want)
			}
		})
	}
}

func TestLoadFragments(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"empty.yaml":    "",
		"comments.yml":  "# nothing here\n# at all\n",
		"null.yaml":     "null\n",
		"multi.yaml":    "---\nproviders: [{id: p, adapter: mock}]\n---\n# empty document\n---\nmodels: [{id: m, provider_id: p, upstream_model: u}]\n...\n",
		"lists.json":    `{"agents": [{"id": "a", "model_id": "m"}], "providers": null}`,
		"sub/dir/x.yml": "agents: [{id: b, model_id: m}]",
	}, Options{})
	if len(c.Providers()) != 1 || len(c.Models()) != 1 || len(c.Agents()) != 2 {
		t.Fatalf("got %d providers, %d models, %d agents", len(c.Providers()), len(c.Models()), len(c.Agents()))
	}
	want := []string{"comments.yml", "empty.yaml", "lists.json", "multi.yaml", "null.yaml", "sub/dir/x.yml"}
	if !reflect.DeepEqual(c.Files, want) {
		t.Errorf("Files = %q, want %q", c.Files, want)
	}
	if c.Agents()[0].ID != "a" || c.Agents()[1].ID != "b" {
		t.Errorf("agents not in file order: %s, %s", c.Agents()[0].ID, c.Agents()[1].ID)
	}
}

func TestLoadMergeKeys(t *testing.T) {
	c := mustLoad(t, map[string]string{"a.yaml": minimalConfig + `
agents:
  - &base {id: a, model_id: m, max_rounds: 4, plugin_ids: [], sections: &sec {a: 1, b: 2}}
  - <<: *base
    id: b
    max_rounds: 5
    sections: {<<: *sec, b: 3, c: 4}
  - {<<: [{max_rounds: 6, system_prompt: first}, {max_rounds: 7, system_prompt: second, description: d}], id: c, model_id: m}
`}, Options{})
	b, cc := c.Agents()[1], c.Agents()[2]
	if b.ID != "b" || b.ModelID != "m" || b.MaxRounds != 5 || !reflect.DeepEqual(b.Sections, map[string]any{"a": int64(1), "b": int64(3), "c": int64(4)}) {
		t.Errorf("b = %+v", b)
	}
	if cc.MaxRounds != 6 || cc.SystemPrompt != "first" || cc.Description != "d" {
		t.Errorf("c = %+v", cc)
	}
	if at, _ := c.Position(registry.Ref{Namespace: registry.NSAgents, ID: "b"}, "max_rounds"); at.Line != 11 {
		t.Errorf("max_rounds of b at %v, want line 11 (the override)", at)
	}
}

// An awaken AgentSystemConfig JSON file, as awaken serializes it, loads
// unchanged.
func TestLoadAwakenJSON(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"providers.yaml": "providers:\n  - {id: openai, adapter: mock}\n",
		"awaken.json": `{
	"models": [
		{"id": "gpt4", "provider_id": "openai", "upstream_model": "gpt-4o", "input_token_price_per_million_usd": 2.5, "output_token_price_per_million_usd": null}
	],
	"agents": [
		{"id": "assistant", "model_id": "gpt4", "system_prompt": "You are helpful.\nUse https:\/\/example.com \ud83d\ude00",
		 "max_rounds": 16, "max_continuation_retries": 2, "reasoning_effort": "high",
		 "plugin_ids": [], "active_plugins": [], "allowed_tools": null, "allowed_tool_patterns": ["*"],
		 "context_policy": {"max_context_tokens": 200000, "max_output_tokens": 16384, "min_recent_messages": 10, "enable_prompt_cache": true},
		 "sections": {"permission": {"mode": "ask"}}},
		{"id": "coder", "model_id": "gpt4", "system_prompt": "Code.", "reasoning_effort": {"budget": 4096},
		 "allowed_tools": ["read_file"], "excluded_tools": ["delete_file"],
		 "endpoint": {"base_url": "https://a2a.example.com", "bearer_token": "tok", "agent_id": "remote-coder", "poll_interval_ms": 500}}
	]
}`,
	}, Options{})
	a := c.Agents()[0]
	if a.SystemPrompt != "You are helpful.\nUse https://example.com 😀" || a.ReasoningEffort.Level != "high" ||
		a.AllowedTools != nil || !reflect.DeepEqual(a.AllowedToolPatterns, []string{"*"}) ||
		a.ContextPolicy.CompactionMode != registry.CompactionKeepRecentRawSuffix || a.ContextPolicy.CompactionRawSuffixMessages != 2 {
		t.Errorf("assistant = %+v", a)
	}
	coder := c.Agents()[1]
	if coder.ReasoningEffort.Budget != 4096 || coder.Endpoint.Auth.Token != "tok" || coder.Endpoint.Target != "remote-coder" {
		t.Errorf("coder = %+v", coder)
	}
	if m := c.Models()[0]; *m.InputTokenPricePerMillionUSD != 2.5 || m.OutputTokenPricePerMillionUSD != nil {
		t.Errorf("model = %+v", m)
	}
}

func TestJSONCompat(t *testing.T) {
	for in, want := range map[string]string{
		`{"a": "x\/y"}`:                     `{"a": "x/y"}`,
		`{"a": "\ud83d\ude00"}`:             `{"a": "\U0001f600"}`,
		`{"a": "\udc00"}`:                   `{"a": "\uFFFD"}`,
		`{"a": "\\/", "b": "\u00e9"}`:       `{"a": "\\/", "b": "\u00e9"}`,
		`plain \/ outside of strings stays`: `plain \/ outside of strings stays`,
	} {
		if got := string(jsonCompat([]byte(in))); got != want {
			t.Errorf("jsonCompat(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestLoadInterpolatesBeforeTypes(t *testing.T) {
	c := mustLoad(t, map[string]string{
		"a.yaml": `
providers:
  - id: p
    adapter: ${ADAPTER:-mock}
    api_key: ${file:secrets/key}
    timeout_secs: ${T:-30}
    adapter_options: {headers: {Authorization: "Bearer ${credential:token}"}}
models:
  - {id: m, provider_id: p, upstream_model: "$${literal} $5", context_window: "${CW}"}
agents:
  - {id: a, model_id: m, sections: {n: "${T:-7}"}}
`,
		".secrets.yaml": "not: loaded",
		"secrets/key":   "sk-from-file\n",
	}, Options{
		LookupEnv:      envOf(map[string]string{"CW": "4096", "T": ""}),
		CredentialsDir: "/run/credentials/awakend.service",
		ReadFile: func(p string) ([]byte, error) {
			if p == "/run/credentials/awakend.service/token" {
				return []byte("cred-tok\r\n"), nil
			}
			return nil, errors.New("no such file")
		},
	})
	p, m := c.Providers()[0], c.Models()[0]
	if p.Adapter != "mock" || p.APIKey != "sk-from-file" || p.TimeoutSecs != 30 || p.AdapterOptions.Headers["Authorization"] != "Bearer cred-tok" {
		t.Errorf("provider = %+v", p)
	}
	if m.UpstreamModel != "${literal} $5" || *m.ContextWindow != 4096 {
		t.Errorf("model = %+v", m)
	}
	if got := c.Agents()[0].Sections["n"]; got != "7" {
		t.Errorf("interpolated free-form value = %#v, want the string \"7\"", got)
	}
	want := []string{"/run/credentials/awakend.service/token", "secrets/key"}
	if !reflect.DeepEqual(c.Referenced, want) {
		t.Errorf("Referenced = %q, want %q", c.Referenced, want)
	}
}

func TestExpand(t *testing.T) {
	e := &expander{
		fsys: mapDir(map[string]string{"k": "v\n\n", "dir/f": "x"}),
		opts: &Options{MaxFileSize: 10, LookupEnv: envOf(map[string]string{"A": "a", "E": "", "NESTED": "${A}"})},
	}
	for _, tc := range []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "a", ""},
		{"x${A}y${A}z", "xayaz", ""},
		{"${E}", "", ""},
		{"${E:-d}", "d", ""},
		{"${U:-d}", "d", ""},
		{"${U:-}", "", ""},
		{"${U:-${A}-x}", "a-x", ""},
		{"${A:-${U}}", "a", ""}, // defaults are resolved only when used
		{"${NESTED}", "${A}", ""},
		{"$$", "$", ""},
		{"$${A}", "${A}", ""},
		{"$ and $5 and a$", "$ and $5 and a$", ""},
		{"${file:k}", "v\n", ""},
		{"${file:./dir/../k}", "v\n", ""},
		{"${file:dir/f}", "x", ""},
		{"${U}", "", `undefined environment variable "U"`},
		{"${A", "", `unclosed "${"`},
		{"${}", "", `invalid reference "${}"`},
		{"${1A}", "", `invalid reference "${1A}"`},
		{"${A-x}", "", `invalid reference "${A-x}"`},
		{"${vault:x}", "", `unknown interpolation scheme "vault"`},
		{"${file:}", "", `cannot read "${file:}": empty path`},
		{"${file:nope}", "", `cannot read "${file:nope}": file does not exist`},
		{"${file:../k}", "", `cannot read "${file:../k}": the path leaves the config directory`},
		{"${file:/etc/passwd}", "", `cannot read "${file:/etc/passwd}": reading files outside the config directory is disabled`},
		{"${credential:x}", "", `cannot read "${credential:x}": credentials are unavailable ($CREDENTIALS_DIRECTORY is not set)`},
		{"${credential:../x}", "", `cannot read "${credential:../x}": a credential name is a plain file name`},
		{"${U} ${V}", "", `undefined environment variable "U"; undefined environment variable "V"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, errs := e.expand(tc.in)
			var msgs []string
			for _, er := range errs {
				msgs = append(msgs, er.What+er.Tail)
			}
			msg := strings.Join(msgs, "; ")
			if tc.err != "" {
				if !strings.HasPrefix(msg, tc.err) {
					t.Errorf("errors %q, want %q", msg, tc.err)
				}
				return
			}
			if msg != "" || got != tc.want {
				t.Errorf("expand(%q) = %q, %q; want %q", tc.in, got, msg, tc.want)
			}
		})
	}
}

func TestLoadPositions(t *testing.T) {
	c := mustLoad(t, map[string]string{"a.yaml": `providers: [{id: p, adapter: mock}]
models:
  - {id: m1, provider_id: p, upstream_model: u}
  - {id: m2, provider_id: p, upstream_model: u}
model_pools:
  - id: pool
    members:
      - model_id: m1
      - {model_id: m2, weight: 2}
agents:
  - id: a
    model_id: pool
    endpoint:
      base_url: https://x.example
      bearer_token: t
    active_plugins: []
`}, Options{})
	for _, tc := range []struct {
		ref   registry.Ref
		field string
		want  string
	}{
		{registry.Ref{Namespace: "model_pools", ID: "pool"}, "members.1.model_id", "a.yaml:9:20"},
		{registry.Ref{Namespace: "model_pools", ID: "pool"}, "members.1.weight", "a.yaml:9:32"},
		{registry.Ref{Namespace: "model_pools", ID: "pool"}, "members.0.model_id", "a.yaml:8:19"},
		{registry.Ref{Namespace: "model_pools", ID: "pool"}, "members.0.role", "a.yaml:8:9"}, // nearest written: the member
		{registry.Ref{Namespace: "model_pools", ID: "pool"}, "routing.home", "a.yaml:6:9"},   // not written: the id
		{registry.Ref{Namespace: "model_pools", ID: "pool"}, "", "a.yaml:6:9"},
		{registry.Ref{Namespace: "agents", ID: "a"}, "endpoint.auth.token", "a.yaml:15:21"}, // legacy bearer_token
		{registry.Ref{Namespace: "agents", ID: "a"}, "active_hook_filter", "a.yaml:16:21"},  // alias active_plugins
		{registry.Ref{Namespace: "models", ID: "m2"}, "provider_id", "a.yaml:4:27"},
	} {
		at, ok := c.Position(tc.ref, tc.field)
		if !ok || at.String() != tc.want {
			t.Errorf("Position(%v, %q) = %v, %v; want %s", tc.ref, tc.field, at, ok, tc.want)
		}
	}
	if _, ok := c.Position(registry.Ref{Namespace: "agents", ID: "nope"}, "id"); ok {
		t.Error("Position of a missing resource is ok")
	}
}
