package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func clientSet(t *testing.T, clients ...ClientSpec) (*Set, error) {
	t.Helper()
	return Rebuild(nil, Update{
		Providers: []Provider{{Spec: ProviderSpec{ID: "p", Adapter: "mock", TimeoutSecs: 1}}},
		Models:    []ModelSpec{{ID: "gpt-4o", ProviderID: "p", UpstreamModel: "u"}},
		Pools:     []PoolSpec{{ID: "pool", Members: []PoolMember{{ModelID: "gpt-4o", Role: RoleMember}}}},
		Agents:    []AgentSpec{{ID: "helper", ModelID: "gpt-4o", MaxRounds: 1}},
		Clients:   clients,
	})
}

func TestClientsIndexedByKey(t *testing.T) {
	sum := sha256.Sum256([]byte("team-b-key"))
	s, err := clientSet(t,
		ClientSpec{ID: "a", Key: "team-a-key", Models: []string{"gpt-4o", "helper"}, Limits: ClientLimits{RequestsPerMinute: u32(60)}},
		ClientSpec{ID: "b", KeySHA256: hex.EncodeToString(sum[:]), Models: []string{}},
		ClientSpec{ID: "all", Key: "everything"},
	)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"team-a-key": "a", "team-b-key": "b", "everything": "all"} {
		c, ok := s.ClientByKey(sha256.Sum256([]byte(key)))
		if !ok || c.ID != want {
			t.Errorf("key of %s: got %q, %v", want, c.ID, ok)
		}
	}
	if _, ok := s.ClientByKey(sha256.Sum256([]byte("nobody"))); ok {
		t.Error("an unknown key found a client")
	}
	a, _ := s.Client("a")
	b, _ := s.Client("b")
	all, _ := s.Client("all")
	if !a.May("helper") || a.May("pool") || b.May("gpt-4o") || !all.May("pool") {
		t.Error("scopes: absent is all, empty is none, a list is itself")
	}
	key := sha256.Sum256([]byte("team-a-key"))
	if n := testing.AllocsPerRun(100, func() { s.ClientByKey(key) }); n != 0 {
		t.Errorf("ClientByKey allocates %v times", n)
	}
}

func TestClientRules(t *testing.T) {
	_, err := clientSet(t,
		ClientSpec{ID: "one", Key: "shared-key-0123", Models: []string{"gpt4o", ""}},
		ClientSpec{ID: "two", Key: "shared-key-0123"},
		ClientSpec{ID: "none"},
		ClientSpec{ID: "both", Key: "k1", KeySHA256: strings.Repeat("a", 64)},
		ClientSpec{ID: "badhash", KeySHA256: "xyz"},
		ClientSpec{ID: "zero", Key: "k2", Limits: ClientLimits{TokensPerMinute: u32(0)}},
	)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Rebuild: %v", err)
	}
	want := map[string]string{
		"one models.0 " + CodeClientMissingModel:           "client 'one' may call missing model, pool or agent 'gpt4o' (did you mean 'gpt-4o'?)",
		"one models.1 " + CodeRequired:                     "client 'one': models must not contain an empty id",
		"two key " + CodeClientDuplicateKey:                "client 'two' has the same key as client 'one' (each client needs a key of its own)",
		"none key " + CodeClientKey:                        "client 'none': needs a key (key, normally ${credential:NAME}) or its hash (key_sha256)",
		"both key_sha256 " + CodeClientKey:                 "client 'both': set key or key_sha256, not both",
		"badhash key_sha256 " + CodeClientKey:              "client 'badhash': key_sha256 must be 64 hexadecimal digits, the SHA-256 of the key",
		"zero limits.tokens_per_minute " + CodeClientLimit: "client 'zero': limits.tokens_per_minute must be greater than 0 (leave it out for no limit)",
	}
	got := map[string]string{}
	for _, d := range ve.Diagnostics {
		got[d.Resource.ID+" "+d.Field+" "+d.Code] = d.Message
		if strings.Contains(d.Message, "shared-key") {
			t.Errorf("a diagnostic shows a key: %s", d.Message)
		}
	}
	for k, msg := range want {
		if got[k] != msg {
			t.Errorf("%s: got %q, want %q", k, got[k], msg)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d diagnostics, want %d: %v", len(got), len(want), got)
	}
}

func TestClientsDiffWithoutShowingKeys(t *testing.T) {
	old, err := clientSet(t, ClientSpec{ID: "a", Key: "old-key"}, ClientSpec{ID: "gone", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	next, err := clientSet(t, ClientSpec{ID: "a", Key: "new-key", Models: []string{"pool"}}, ClientSpec{ID: "new", Key: "k3"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Diff(old, next).String(), "+1 client, ~1 client (key, models), -1 client"; got != want {
		t.Errorf("Diff = %q, want %q", got, want)
	}
	if d := NewDraft(next); len(d.Clients) != 2 {
		t.Errorf("NewDraft kept %d clients, want 2", len(d.Clients))
	}
}
