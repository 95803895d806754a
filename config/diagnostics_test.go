package config

import (
	"encoding/json"
	"errors"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/awakend/awakend/registry"
)

// diagCase is a config directory and the exact diagnostics Load (or, when
// Load succeeds, Build) reports for it.
type diagCase struct {
	name  string
	files map[string]string
	opts  Options
	want  []string
}

func TestDiagnostics(t *testing.T) {
	for _, tc := range diagCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(mapDir(tc.files), tc.opts)
			if err == nil {
				_, err = c.Build(nil, nil)
			}
			got := diagLines(t, err)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

var diagCases = []diagCase{
	{"alias as a resource", map[string]string{"a.yaml": minimalConfig + "agents:\n  - &a {id: a, model_id: m}\n  - *a\n"}, Options{}, []string{
		`a.yaml:8:5: error: agent "a" is already defined at a.yaml:7:13 [duplicate_id]`,
	}},
	{"alias as a key", map[string]string{"a.yaml": minimalConfig + "agents:\n  - {id: a, &k model_id: m, *k : m}\n"}, Options{}, []string{
		`a.yaml:7:29: error: duplicate key "model_id" in agent "a" (first at line 7, column 13) [duplicate_key]`,
	}},
	{"references to a kind with an id-less resource", map[string]string{"a.yaml": `providers: [{id: p, adapter: mock}]
models:
  - {id: "${UNSET}", provider_id: p, upstream_model: u}
  - {id: m, provider_id: nope, upstream_model: u}
agents:
  - {id: a, model_id: gpt, delegates: [ghost]}
`}, Options{}, []string{
		`a.yaml:3:10: error: undefined environment variable "UNSET" in id of model "${UNSET}" [interpolation]`,
		`a.yaml:4:26: error: model 'm' references missing provider 'nope' [model_missing_provider]`,
		`a.yaml:6:40: error: agent 'a' delegates to missing agent 'ghost' [agent_missing_delegate]`,
	}},
	{"graph checked past an unknown key", map[string]string{
		"a.yaml": "model:\n  - {id: gpt, provider_id: p, upstream_model: u}\n",
		"b.yaml": minimalConfig + "agents:\n  - {id: a, model_id: gpt}\n  - {id: b, model_id: gtp-4, delegates: [aa]}\n",
	}, Options{}, []string{
		`a.yaml:1:1: error: unknown top-level key "model" (did you mean "models"?) [unknown_key]`,
		`b.yaml:8:23: error: agent 'b' references missing model 'gtp-4' [agent_missing_model]`,
		`b.yaml:8:42: error: agent 'b' delegates to missing agent 'aa' (did you mean 'a'?) [agent_missing_delegate]`,
	}},
	{"graph checked past a syntax error", map[string]string{
		"a.yaml": minimalConfig + "agents:\n  - {id: a, model_id: m2}\n---\nmodels:\n  - id: zeta\n   provider_id: p\n",
		"b.yaml": "agents:\n  - {id: b, model_id: zeta}\n  - {id: c, model_id: zet}\n",
	}, Options{}, []string{
		`a.yaml:7:23: error: agent 'a' references missing model 'm2' (did you mean 'm'?) [agent_missing_model]`,
		`a.yaml:11:4: error: did not find expected '-' indicator [syntax]`,
		`b.yaml:3:23: error: agent 'c' references missing model 'zet' [agent_missing_model]`,
	}},
	{"graph not checked against an unreadable file", map[string]string{
		"a.yaml": minimalConfig + "agents:\n  - {id: a, model_id: gpt}\n",
		"b.yaml": "providers: []\n# " + strings.Repeat("x", 200) + "\n",
	}, Options{MaxFileSize: 150}, []string{
		"b.yaml: error: file is 217 bytes, over the limit of 150 bytes [too_large]",
	}},
	{"tab indentation", map[string]string{"a.yaml": "providers:\n\t- id: p\n"}, Options{}, []string{
		`a.yaml:2:1: error: found character that cannot start any token [syntax]`,
	}},
	{"tab after indentation", map[string]string{"a.yaml": "agents:\n  - id: a\n    x: 1\n\tmodel_id: m\n"}, Options{}, []string{
		`a.yaml:4:1: error: found a tab character that violates indentation [syntax]`,
	}},
	{"key outdented below its list item", map[string]string{"a.yaml": "agents:\n  - id: a\n  model_id: m\n"}, Options{}, []string{
		`a.yaml:3:3: error: did not find expected '-' indicator [syntax]`,
	}},
	{"quoted key outdented", map[string]string{"a.yaml": "agents:\n  - id: a\n  \"model id\" : m\n"}, Options{}, []string{
		`a.yaml:3:3: error: did not find expected '-' indicator [syntax]`,
	}},
	{"unknown anchor", map[string]string{"a.yaml": "providers:\n  - &p {id: p, adapter: mock}\n  - *q\n"}, Options{}, []string{
		`a.yaml:3:5: error: unknown anchor 'q' referenced [syntax]`,
	}},
	{"columns count characters", map[string]string{"a.yaml": "providers:\n  - {id: pé, adapter: \"mö\", x: @}\n"}, Options{}, []string{
		`a.yaml:2:32: error: found character that cannot start any token [syntax]`,
	}},
	{"block scalar underindented", map[string]string{"a.yaml": "agents:\n  - id: a\n    system_prompt: |\n      hi\n     bad\n    model_id: x\n"}, Options{}, []string{
		`a.yaml:5:6: error: did not find expected key [syntax]`,
	}},
	{"merge key at the top", map[string]string{"a.yaml": "<<: {providers: []}\n"}, Options{}, []string{
		`a.yaml:1:1: error: unknown top-level key "<<" (want providers, models, model_pools or agents) [unknown_key]`,
	}},
	{"syntax", map[string]string{"a.yaml": "providers:\n  - id: p\n   adapter: x\n", "b.yaml": "a: b: c\n", "c.json": "{\"providers\": [1,]\n"}, Options{}, []string{
		"a.yaml:3:4: error: did not find expected '-' indicator [syntax]",
		"b.yaml:1:5: error: mapping values are not allowed in this context [syntax]",
		"c.json:1:18: error: did not find expected ',' or '}' [syntax]",
	}},
	{"syntax keeps earlier documents", map[string]string{"a.yaml": "providers: [{id: p, adapter: mock, bogus: 1}]\n---\n[\n"}, Options{}, []string{
		"a.yaml:1:36: error: unknown field \"bogus\" in provider \"p\" [unknown_field]",
		"a.yaml:3:1: error: did not find expected node content [syntax]",
	}},
	{"unknown fields", map[string]string{"a.yaml": minimalConfig + "agents:\n  - id: a\n    model_id: m\n    sytem_prompt: x\n    context_policy: {max_context_tokens: 1, max_output_tokens: 1, min_recent_messages: 1, enable_prompt_cache: true, compaction: x}\n    endpoint: {base_url: 'https://x', auth: {type: bearer, token: t, tokne: x}}\n  - {id: b, model_id: m, zzz: 1}\nmodel_pools:\n  - {id: pool, members: [{model_id: m, wieght: 2}], routing: {hom: x}}\n"}, Options{}, []string{
		"a.yaml:9:5: error: unknown field \"sytem_prompt\" in agent \"a\" (did you mean \"system_prompt\"?) [unknown_field]",
		"a.yaml:10:118: error: unknown field \"compaction\" in context_policy of agent \"a\" [unknown_field]",
		"a.yaml:11:70: error: unknown field \"tokne\" in endpoint.auth of agent \"a\" (did you mean \"token\"?) [unknown_field]",
		"a.yaml:12:26: error: unknown field \"zzz\" in agent \"b\" [unknown_field]",
		"a.yaml:14:40: error: unknown field \"wieght\" in members[0] of model pool \"pool\" (did you mean \"weight\"?) [unknown_field]",
		"a.yaml:14:63: error: unknown field \"hom\" in routing of model pool \"pool\" (did you mean \"home\"?) [unknown_field]",
	}},
	{"unknown top-level keys", map[string]string{"a.yaml": "model: []\nagent_list: []\n[1]: x\n", "b.yaml": "- providers\n", "c.yaml": "just a string\n"}, Options{}, []string{
		"a.yaml:1:1: error: unknown top-level key \"model\" (did you mean \"models\"?) [unknown_key]",
		"a.yaml:2:1: error: unknown top-level key \"agent_list\" (did you mean \"agents\"?) [unknown_key]",
		"a.yaml:3:1: error: top-level keys must be strings, got a list [type]",
		"b.yaml:1:1: error: a config file must be a mapping with providers, models, model_pools or agents, got a list [type]",
		"c.yaml:1:1: error: a config file must be a mapping with providers, models, model_pools or agents, got a string [type]",
	}},
	{"types", map[string]string{"a.yaml": `providers:
  - {id: p, adapter: mock, timeout_secs: abc, adapter_options: {headers: [x]}}
  - {id: q, adapter: [openai], timeout_secs: -5}
  - {id: r, adapter: mock, timeout_secs: "30", api_key: {k: v}}
  - just-a-string
models:
  - {id: m, provider_id: p, upstream_model: u, context_window: 4294967296, max_output_tokens: 1.5, input_token_price_per_million_usd: cheap, modalities: {input: text}}
model_pools:
  - {id: pool, members: {model_id: m}, switch: {on_quota: yes}}
  - {id: pool2, members: [m], routing: 3}
agents:
  - {id: a, model_id: m, plugin_ids: [x, [y], null], reasoning_effort: [high], sections: [x], stop_conditions: {a: 1}, max_rounds: !!str 5, description: !vault secret/path}
providers2: x
`}, Options{}, []string{
		"a.yaml:2:42: error: timeout_secs of provider \"p\" must be a non-negative integer, got the string \"abc\" [type]",
		"a.yaml:2:74: error: adapter_options.headers of provider \"p\" must be a mapping of strings, got a list [type]",
		"a.yaml:3:22: error: adapter of provider \"q\" must be a string, got a list [type]",
		"a.yaml:3:46: error: timeout_secs of provider \"q\" must be a non-negative integer, got -5 [type]",
		"a.yaml:4:42: error: timeout_secs of provider \"r\" must be a non-negative integer, got the string \"30\" [type]",
		"a.yaml:4:57: error: api_key of provider \"r\" must be a string, got a mapping [type]",
		"a.yaml:5:5: error: providers[3] must be a mapping, got a string [type]",
		"a.yaml:7:64: error: context_window of model \"m\" must be at most 4294967295, got 4294967296 [type]",
		"a.yaml:7:95: error: max_output_tokens of model \"m\" must be a non-negative integer, got 1.5 [type]",
		"a.yaml:7:135: error: input_token_price_per_million_usd of model \"m\" must be a number, got the string \"cheap\" [type]",
		"a.yaml:7:162: error: modalities.input of model \"m\" must be a list of strings, got a string [type]",
		"a.yaml:9:25: error: members of model pool \"pool\" must be a list of members, got a mapping [type]",
		"a.yaml:9:59: error: switch.on_quota of model pool \"pool\" must be true or false, got the string \"yes\" [type]",
		"a.yaml:10:27: error: members[0] of model pool \"pool2\" must be a mapping, got a string [type]",
		"a.yaml:10:40: error: routing of model pool \"pool2\" must be a mapping, got an integer [type]",
		"a.yaml:12:39: error: agent 'a' uses missing plugin 'x' [agent_missing_plugin]",
		"a.yaml:12:42: error: plugin_ids[1] of agent \"a\" must be a string, got a list [type]",
		"a.yaml:12:47: error: plugin_ids[2] of agent \"a\" must be a string, got null [type]",
		"a.yaml:12:72: error: reasoning_effort of agent \"a\" must be a level (none, low, medium, high, max) or {budget: N}, got a list [type]",
		"a.yaml:12:90: error: sections of agent \"a\" must be a mapping, got a list [type]",
		"a.yaml:12:112: error: stop_conditions of agent \"a\" must be a list, got a mapping [type]",
		"a.yaml:12:132: error: max_rounds of agent \"a\" must be a non-negative integer, got the string \"5\" [type]",
		"a.yaml:12:154: error: description of agent \"a\" must be a string, got a value with the unsupported YAML tag !vault [type]",
		"a.yaml:13:1: error: unknown top-level key \"providers2\" (did you mean \"providers\"?) [unknown_key]",
	}},
	{"missing fields", map[string]string{"a.yaml": `providers:
  - {adapter: mock}
  - {id: p}
models:
  - {provider_id: p}
model_pools:
  - {id: pool}
  - {id: pool2, members: [{weight: 1}]}
agents:
  - {model_id: m}
  - {id: a}
  - {id: b, endpoint: {backend: a2a}}
  - {id: c, model_id: null, context_policy: {enable_prompt_cache: true}, reasoning_effort: {}}
  - {id: d, model_id: m, endpoint: {base_url: 'https://x', auth: {}}}
  - {id: "", model_id: m}
`}, Options{}, []string{
		"a.yaml:2:5: error: missing field \"id\" in providers[0] [missing_field]",
		"a.yaml:3:5: error: missing field \"adapter\" in provider \"p\" [missing_field]",
		"a.yaml:5:5: error: missing field \"id\" in models[0] [missing_field]",
		"a.yaml:5:5: error: missing field \"upstream_model\" in models[0] [missing_field]",
		"a.yaml:7:5: error: missing field \"members\" in model pool \"pool\" [missing_field]",
		"a.yaml:8:27: error: missing field \"model_id\" in members[0] of model pool \"pool2\" [missing_field]",
		"a.yaml:10:5: error: missing field \"id\" in agents[0] [missing_field]",
		"a.yaml:11:5: error: missing field \"model_id\" in agent \"a\" (an agent needs a model_id unless it has an endpoint) [missing_field]",
		"a.yaml:12:23: error: missing field \"base_url\" in endpoint of agent \"b\" [missing_field]",
		"a.yaml:13:5: error: missing field \"model_id\" in agent \"c\" (an agent needs a model_id unless it has an endpoint) [missing_field]",
		"a.yaml:13:45: error: missing field \"max_context_tokens\" in context_policy of agent \"c\" [missing_field]",
		"a.yaml:13:45: error: missing field \"max_output_tokens\" in context_policy of agent \"c\" [missing_field]",
		"a.yaml:13:45: error: missing field \"min_recent_messages\" in context_policy of agent \"c\" [missing_field]",
		"a.yaml:13:92: error: missing field \"budget\" in reasoning_effort of agent \"c\" [missing_field]",
		"a.yaml:14:66: error: missing field \"token\" in endpoint.auth of agent \"d\" [missing_field]",
		"a.yaml:14:66: error: missing field \"type\" in endpoint.auth of agent \"d\" [missing_field]",
		"a.yaml:15:10: error: id of agents[5] must not be empty [required]",
	}},
	{"duplicates", map[string]string{
		"providers/a.yaml": "providers:\n  - id: p\n    adapter: mock\n",
		"providers/b.yaml": "providers:\n  - id: p\n    adapter: mock\n  - {id: p, adapter: mock}\n",
		"models.yaml":      "models:\n  - {id: m, provider_id: p, upstream_model: u}\n  - {id: same, provider_id: p, upstream_model: u}\nmodel_pools:\n  - {id: same, members: [{model_id: m}]}\n  - {id: pool, members: [{model_id: m}]}\n",
		"pools.yaml":       "model_pools:\n  - {id: m, members: [{model_id: m}]}\nagents:\n  - {id: pool, model_id: m}\n  - {id: m, model_id: m}\n  - {id: a, model_id: m}\n  - {id: a, model_id: m, max_rounds: x}\n",
	}, Options{}, []string{
		"models.yaml:5:10: error: model pool \"same\" has the same id as model \"same\" at models.yaml:3:10 (models and model pools share one namespace) [duplicate_id]",
		"pools.yaml:2:10: error: model pool \"m\" has the same id as model \"m\" at models.yaml:2:10 (models and model pools share one namespace) [duplicate_id]",
		"pools.yaml:4:10: error: agent \"pool\" has the same id as model pool \"pool\" at models.yaml:6:10 (the gateway addresses agents, models and model pools by one name) [ambiguous_id]",
		"pools.yaml:5:10: error: agent \"m\" has the same id as model \"m\" at models.yaml:2:10 (the gateway addresses agents, models and model pools by one name) [ambiguous_id]",
		"pools.yaml:7:10: error: agent \"a\" is already defined at pools.yaml:6:10 [duplicate_id]",
		"pools.yaml:7:38: error: max_rounds of agent \"a\" must be a non-negative integer, got the string \"x\" [type]",
		"providers/b.yaml:2:9: error: provider \"p\" is already defined at providers/a.yaml:2:9 [duplicate_id]",
		"providers/b.yaml:4:10: error: provider \"p\" is already defined at providers/a.yaml:2:9 [duplicate_id]",
	}},
	{"duplicate keys", map[string]string{"a.yaml": "providers:\n  - id: p\n    adapter: mock\n    id: q\n    adapter_options: {headers: {A: x, A: y}}\nmodels: []\nmodels: []\nagents:\n  - {id: a, model_id: m, sections: {x: 1, x: 2}, plugin_ids: [], plugin_ids: []}\n"}, Options{}, []string{
		"a.yaml:4:5: error: duplicate key \"id\" in provider \"p\" (first at line 2, column 5) [duplicate_key]",
		"a.yaml:5:39: error: duplicate key \"A\" in adapter_options.headers of provider \"p\" (first at line 5, column 33) [duplicate_key]",
		"a.yaml:7:1: error: duplicate key \"models\" (first at line 6, column 1) [duplicate_key]",
		"a.yaml:9:43: error: duplicate key \"x\" in sections of agent \"a\" (first at line 9, column 37) [duplicate_key]",
		"a.yaml:9:66: error: duplicate key \"plugin_ids\" in agent \"a\" (first at line 9, column 50) [duplicate_key]",
	}},
	{"conflicts", map[string]string{"a.yaml": minimalConfig + "agents:\n  - {id: a, model_id: m, active_hook_filter: [], active_plugins: []}\n  - id: b\n    endpoint: {base_url: 'https://x', auth: {type: bearer, token: t}, bearer_token: t2}\n"}, Options{}, []string{
		"a.yaml:7:50: error: both active_hook_filter and its alias active_plugins are set in agent \"a\" [conflicting_fields]",
		"a.yaml:9:71: error: endpoint of agent \"b\" mixes the legacy field \"bearer_token\" with \"auth\" (use backend, auth {type: bearer, token}, target and options) [conflicting_fields]",
	}},
	{"interpolation", map[string]string{"a.yaml": `providers:
  - id: p
    adapter: mock
    api_key: ${OPENAI_KEY}
    base_url: ${URL
    timeout_secs: ${T:-${BAD}}
    adapter_options: {headers: {A: "${file:missing.txt}", B: "${credential:key}", C: "${vault:x}", D: "${file:/abs}"}}
`}, Options{}, []string{
		"a.yaml:4:14: error: undefined environment variable \"OPENAI_KEY\" in api_key of provider \"p\" [interpolation]",
		"a.yaml:5:15: error: unclosed \"${\" in base_url of provider \"p\" [interpolation]",
		"a.yaml:6:19: error: undefined environment variable \"BAD\" in timeout_secs of provider \"p\" [interpolation]",
		"a.yaml:7:36: error: cannot read \"${file:missing.txt}\" in adapter_options.headers of provider \"p\": file does not exist [interpolation]",
		"a.yaml:7:62: error: cannot read \"${credential:key}\" in adapter_options.headers of provider \"p\": credentials are unavailable ($CREDENTIALS_DIRECTORY is not set) [interpolation]",
		"a.yaml:7:86: error: unknown interpolation scheme \"vault\" in adapter_options.headers of provider \"p\" (want ${VAR}, ${VAR:-default}, ${file:PATH} or ${credential:NAME}) [interpolation]",
		"a.yaml:7:103: error: cannot read \"${file:/abs}\" in adapter_options.headers of provider \"p\": reading files outside the config directory is disabled [interpolation]",
	}},
	{"too large", map[string]string{"big.yaml": "providers: []\n# " + strings.Repeat("x", 100) + "\n", "ok.yaml": minimalConfig}, Options{MaxFileSize: 90}, []string{
		"big.yaml: error: file is 117 bytes, over the limit of 90 bytes [too_large]",
		"ok.yaml: error: file is 94 bytes, over the limit of 90 bytes [too_large]",
	}},
	{"alias bomb", map[string]string{"bomb.yaml": `agents:
  - id: a
    model_id: m
    sections:
      a: &a [x, x, x, x, x, x, x, x, x, x]
      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
      e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
      f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
      g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
  - {id: b, model_id: m}
`, "ok.yaml": minimalConfig}, Options{}, []string{
		"bomb.yaml:10:42: error: YAML aliases in this file expand to more than 1000000 nodes [too_large]",
	}},
	{"alias cycle", map[string]string{"a.yaml": minimalConfig + "agents:\n  - {id: a, model_id: m, sections: &s {self: [*s]}}\n  - &x {id: b, model_id: m, <<: *x}\n"}, Options{}, []string{
		"a.yaml:7:47: error: YAML alias *s refers to a node that contains it [too_large]",
	}},
	{"empty dir", map[string]string{"README.md": "# hi", ".hidden.yaml": "providers: [{id: p}]"}, Options{}, []string{
		"error: the config directory has no config files (*.yaml, *.yml, *.json) [empty]",
	}},
	{"no resources", map[string]string{"a.yaml": "# nothing\n", "b.yaml": "providers: []\nagents: null\n"}, Options{}, []string{
		"error: the config directory declares no providers, models, model pools or agents [empty]",
	}},
	{"registry rules", map[string]string{"a.yaml": `providers:
  - {id: p, adapter: openia, timeout_secs: 0, base_url: "ftp://x"}
  - {id: v, adapter: vllm}
  - {id: l, adapter: ollama, base_url: "http://h/v1#frag"}
models:
  - {id: m, provider_id: p, upstream_model: u, context_window: 0, max_output_tokens: 0}
  - {id: m2, provider_id: p, upstream_model: u, context_window: 100, max_output_tokens: 200, knowledge_cutoff: 2024-02-30, input_token_price_per_million_usd: -1, output_token_price_per_million_usd: .nan, modalities: {input: [text, smell, text]}}
  - {id: m3, provider_id: "", upstream_model: ""}
model_pools:
  - {id: pool, members: []}
  - id: pool2
    members: [{model_id: m, weight: 0, role: boss}, {model_id: m, role: failover_only}]
    routing: {home: random, sticky_scope: forever}
  - {id: pool3, members: [{model_id: m, role: failover_only}]}
agents:
  - {id: a, model_id: m, reasoning_effort: extreme, context_policy: {max_context_tokens: 1, max_output_tokens: 1, min_recent_messages: 1, enable_prompt_cache: true, compaction_mode: magic}}
  - {id: b, model_id: m, reasoning_effort: {budget: 0}, plugin_ids: [""], delegates: [""]}
  - {id: c, endpoint: {backend: "", base_url: "ftp://x?q=1", auth: {type: basic, token: t}}}
  - {id: d, endpoint: {base_url: "https://x", auth: {type: bearer, token: "***"}}}
  - {id: e, endpoint: {base_url: "https://x", auth: {type: bearer, token: ""}}}
`}, Options{}, []string{
		"a.yaml:2:22: error: provider 'p': unknown adapter \"openia\" (did you mean \"openai\"?) [invalid_value]",
		"a.yaml:2:44: error: provider 'p': timeout_secs must be greater than 0 [invalid_value]",
		"a.yaml:2:57: error: provider 'p': base_url \"ftp://x\" must use http or https [invalid_endpoint]",
		"a.yaml:4:40: error: provider 'l': base_url \"http://h/v1#frag\" must not have a query or fragment [invalid_endpoint]",
		"a.yaml:6:64: error: model 'm': context_window must be greater than 0 [invalid_token_limit]",
		"a.yaml:6:86: error: model 'm': max_output_tokens must be greater than 0 [invalid_token_limit]",
		"a.yaml:7:89: error: model 'm2': max_output_tokens (200) must not exceed context_window (100) [invalid_token_limit]",
		"a.yaml:7:112: error: model 'm2': knowledge_cutoff \"2024-02-30\" is not a calendar date (YYYY-MM or YYYY-MM-DD) [invalid_knowledge_cutoff]",
		"a.yaml:7:159: error: model 'm2': input_token_price_per_million_usd must be a finite number >= 0 [invalid_price]",
		"a.yaml:7:199: error: model 'm2': output_token_price_per_million_usd must be a finite number >= 0 [invalid_price]",
		"a.yaml:7:232: error: model 'm2': unknown modality \"smell\" in modalities.input (want text, image, audio, video or pdf) [invalid_modality]",
		"a.yaml:7:239: error: model 'm2': duplicate modality \"text\" in modalities.input [invalid_modality]",
		"a.yaml:8:27: error: model 'm3': provider_id must not be empty [required]",
		"a.yaml:8:47: error: model 'm3': upstream_model must not be empty [required]",
		"a.yaml:10:25: error: model pool 'pool': members must not be empty [pool_no_members]",
		"a.yaml:12:37: error: model pool 'pool2': members[0].weight must be greater than 0 [pool_invalid_weight]",
		"a.yaml:12:46: error: model pool 'pool2': members[0].role \"boss\" is not member or failover_only [invalid_value]",
		"a.yaml:12:64: error: model pool 'pool2': model 'm' is a member more than once [pool_duplicate_member]",
		"a.yaml:13:21: error: model pool 'pool2': routing.home \"random\" is not deterministic, round_robin or first_healthy [invalid_value]",
		"a.yaml:13:43: error: model pool 'pool2': routing.sticky_scope \"forever\" is not thread or run [invalid_value]",
		"a.yaml:14:26: error: model pool 'pool3': at least one member must have role member (all are failover_only) [pool_no_members]",
		"a.yaml:16:44: error: agent 'a': reasoning_effort \"extreme\" is not none, low, medium, high, max or {budget: N} [invalid_reasoning_effort]",
		"a.yaml:16:183: error: agent 'a': context_policy.compaction_mode \"magic\" is not keep_recent_raw_suffix or compact_to_safe_frontier [invalid_value]",
		"a.yaml:17:53: error: agent 'b': reasoning_effort budget must be greater than 0 [invalid_reasoning_effort]",
		"a.yaml:17:70: error: agent 'b': plugin_ids must not contain an empty id [required]",
		"a.yaml:17:87: error: agent 'b': delegates must not contain an empty id [required]",
		"a.yaml:18:33: error: agent 'c': endpoint.backend must not be empty [invalid_endpoint]",
		"a.yaml:18:47: error: agent 'c': endpoint.base_url \"ftp://x?q=1\" must use http or https [invalid_endpoint]",
		"a.yaml:18:75: error: agent 'c': endpoint.auth.type \"basic\" is not supported (want bearer) [invalid_endpoint]",
		"a.yaml:19:75: error: agent 'd': endpoint.auth.token is the redaction placeholder \"***\", not a token [invalid_endpoint]",
		"a.yaml:20:75: error: agent 'e': endpoint.auth.token must not be empty [invalid_endpoint]",
	}},
	{"graph", map[string]string{"a.yaml": `models:
  - {id: m, provider_id: nope, upstream_model: u}
model_pools:
  - {id: pool, members: [{model_id: m}, {model_id: gone}]}
agents:
  - {id: a, model_id: missing, plugin_ids: [p1], active_hook_filter: [p1, p2], delegates: [a, ghost]}
  - {id: b, model_id: pool}
  - {id: r, endpoint: {base_url: "https://x"}, model_id: whatever}
`}, Options{}, []string{
		"a.yaml:2:26: error: model 'm' references missing provider 'nope' [model_missing_provider]",
		"a.yaml:4:52: error: model pool 'pool' references missing model 'gone' [model_pool_missing_model]",
		"a.yaml:6:23: error: agent 'a' references missing model 'missing' [agent_missing_model]",
		"a.yaml:6:45: error: agent 'a' uses missing plugin 'p1' [agent_missing_plugin]",
		"a.yaml:6:75: error: agent 'a' active hook filter references unloaded plugin 'p2' [agent_hook_filter_plugin_not_loaded]",
		"a.yaml:6:95: error: agent 'a' delegates to missing agent 'ghost' [agent_missing_delegate]",
	}},
}

func TestAllowEmpty(t *testing.T) {
	for _, files := range []map[string]string{{}, {"a.yaml": "# nothing\n"}} {
		c, err := Load(mapDir(files), Options{AllowEmpty: true})
		if err != nil {
			t.Fatal(err)
		}
		set, err := c.Build(nil, nil)
		if err != nil || len(set.AgentIDs()) != 0 {
			t.Fatalf("Build = %v, %v", set, err)
		}
	}
}

// failFS fails to open the files named in fail, as a permission problem
// would (tests run as root, which no file mode stops).
type failFS struct {
	fstest.MapFS
	fail map[string]error
}

func (f failFS) Open(name string) (fs.File, error) {
	if err := f.fail[name]; err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f.MapFS.Open(name)
}

func (f failFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if err := f.fail[name]; err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return f.MapFS.ReadDir(name)
}

func TestReadErrors(t *testing.T) {
	fsys := failFS{
		MapFS: mapDir(map[string]string{"a.yaml": minimalConfig, "locked.yaml": "providers: []", "sub/x.yaml": "", "sub/y.yaml": ""}),
		fail:  map[string]error{"locked.yaml": fs.ErrPermission, "sub": fs.ErrPermission},
	}
	_, err := Load(fsys, Options{})
	want := []string{
		"locked.yaml: error: cannot read file: permission denied [read]",
		"sub: error: cannot read directory: permission denied [read]",
	}
	if got := diagLines(t, err); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	fsys.fail = map[string]error{".": fs.ErrPermission}
	_, err = Load(fsys, Options{})
	var e *Error
	if err == nil || errors.As(err, &e) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("unreadable root: got %v, want a plain error wrapping fs.ErrPermission", err)
	}
}

type fakeExecutor struct{ name string }

func (e fakeExecutor) Name() string { return e.name }

type closingExecutor struct{ closed *int }

func (closingExecutor) Name() string   { return "closing" }
func (e closingExecutor) Close() error { *e.closed++; return nil }

// A Build that fails closes the executors it created, and only those.
func TestBuildClosesExecutorsOnFailure(t *testing.T) {
	files := map[string]string{"a.yaml": "providers: [{id: kept, adapter: mock}, {id: fresh, adapter: mock, timeout_secs: 1}]\n"}
	closed := 0
	factory := func(registry.ProviderSpec) (registry.Executor, error) { return closingExecutor{&closed}, nil }
	base, err := mustLoad(t, files, Options{AllowEmpty: true}).Build(nil, factory)
	if err != nil {
		t.Fatal(err)
	}
	files["a.yaml"] = "providers: [{id: kept, adapter: mock}, {id: fresh, adapter: mock, timeout_secs: 2}]\nagents: [{id: a, model_id: missing}]\n"
	c, err := Load(mapDir(files), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Build(base, factory); err == nil {
		t.Fatal("Build succeeded")
	}
	if closed != 1 {
		t.Errorf("closed %d executors, want 1 (the one created for the changed provider)", closed)
	}
}

func TestBuildExecutors(t *testing.T) {
	files := map[string]string{"a.yaml": `providers:
  - {id: same, adapter: mock}
  - {id: changed, adapter: mock, base_url: "https://one.example"}
  - {id: secret, adapter: openai, api_key: sk-TOPSECRET-1, adapter_options: {headers: {X-Key: hdr-TOPSECRET-2}}}
`}
	calls := map[string]int{}
	factory := func(p registry.ProviderSpec) (registry.Executor, error) {
		calls[p.ID]++
		return fakeExecutor{p.ID + "/" + p.BaseURL}, nil
	}
	c := mustLoad(t, files, Options{})
	base, err := c.Build(nil, factory)
	if err != nil {
		t.Fatal(err)
	}
	files["a.yaml"] = strings.Replace(files["a.yaml"], "one.example", "two.example", 1)
	c = mustLoad(t, files, Options{})
	next, err := c.Build(base, factory)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"same": 1, "changed": 2, "secret": 1}; !reflect.DeepEqual(calls, want) {
		t.Errorf("factory calls = %v, want %v", calls, want)
	}
	if p, _ := next.Provider("same"); p.Executor != (fakeExecutor{"same/"}) {
		t.Errorf("unchanged provider got executor %v", p.Executor)
	}
	if p, _ := next.Provider("changed"); p.Executor != (fakeExecutor{"changed/https://two.example"}) {
		t.Errorf("changed provider got executor %v", p.Executor)
	}

	// A factory error is a diagnostic at the adapter, without the secrets
	// the factory may have echoed.
	_, err = c.Build(nil, func(p registry.ProviderSpec) (registry.Executor, error) {
		if p.ID == "secret" {
			return nil, errors.New("bad key " + p.APIKey + " or header " + p.AdapterOptions.Headers["X-Key"])
		}
		return fakeExecutor{}, nil
	})
	want := []string{`a.yaml:4:27: error: cannot create the executor of provider "secret": bad key *** or header *** [executor]`}
	if got := diagLines(t, err); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// Build keeps base's tools and plugins: an agent may use a plugin that was
// registered programmatically.
func TestBuildKeepsPlugins(t *testing.T) {
	d := registry.NewDraft(nil)
	d.Plugins["memory"] = "plugin"
	d.Tools["search"] = "tool"
	base, err := d.Build()
	if err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, map[string]string{"a.yaml": minimalConfig + "agents: [{id: a, model_id: m}]\n"}, Options{})
	c.Agents()[0].PluginIDs = []string{"memory"}
	set, err := c.Build(base, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.Plugin("memory"); !ok {
		t.Error("plugin lost")
	}
	if _, ok := set.Tool("search"); !ok {
		t.Error("tool lost")
	}
}

func TestDiagnosticFormat(t *testing.T) {
	ref := &registry.Ref{Namespace: "agents", ID: "a"}
	for _, tc := range []struct {
		d          Diagnostic
		text, json string
	}{
		{Diagnostic{File: "a/b.yaml", Line: 3, Column: 7, Code: "type", Severity: "error", Resource: ref, Message: "m"},
			"a/b.yaml:3:7: error: m [type]",
			`{"file":"a/b.yaml","line":3,"column":7,"code":"type","severity":"error","resource":{"namespace":"agents","id":"a"},"message":"m"}`},
		{Diagnostic{File: "a.yaml", Line: 3, Code: "syntax", Severity: "error", Message: "m"},
			"a.yaml:3: error: m [syntax]",
			`{"file":"a.yaml","line":3,"column":0,"code":"syntax","severity":"error","message":"m"}`},
		{Diagnostic{File: "a.yaml", Code: "read", Severity: "error", Message: "m"},
			"a.yaml: error: m [read]", ""},
		{Diagnostic{Severity: "error", Message: "config directory /x: no such file or directory"},
			"error: config directory /x: no such file or directory", ""},
		{Diagnostic{Code: "empty", Severity: "error", Message: "m"},
			"error: m [empty]",
			`{"file":"","line":0,"column":0,"code":"empty","severity":"error","message":"m"}`},
		{Diagnostic{File: "a.yaml", Line: 1, Column: 2, Code: "agent_missing_model", Severity: "error", Resource: ref,
			DependsOn: &registry.Ref{Namespace: "models", ID: "m"}, Message: "m"},
			"a.yaml:1:2: error: m [agent_missing_model]",
			`{"file":"a.yaml","line":1,"column":2,"code":"agent_missing_model","severity":"error","resource":{"namespace":"agents","id":"a"},"depends_on":{"namespace":"models","id":"m"},"message":"m"}`},
	} {
		if got := tc.d.String(); got != tc.text {
			t.Errorf("String() = %q, want %q", got, tc.text)
		}
		if tc.json == "" {
			continue
		}
		if got, _ := json.Marshal(tc.d); string(got) != tc.json {
			t.Errorf("JSON = %s\nwant   %s", got, tc.json)
		}
	}
	e := newError([]Diagnostic{
		{File: "b.yaml", Line: 1, Column: 1, Code: "type", Severity: "error", Message: "x"},
		{File: "a.yaml", Line: 2, Column: 1, Code: "type", Severity: "error", Message: "y"},
		{File: "a.yaml", Line: 2, Column: 1, Code: "syntax", Severity: "error", Message: "z"},
		{Code: "empty", Severity: "error", Message: "w"},
	}, "")
	want := "error: w [empty]\na.yaml:2:1: error: z [syntax]\na.yaml:2:1: error: y [type]\nb.yaml:1:1: error: x [type]"
	if e.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", e.Error(), want)
	}
}
