package provider

import (
	"testing"

	"github.com/awakend/awakend/registry"
)

func TestNew(t *testing.T) {
	for _, tt := range []struct{ adapter, kind string }{
		{"openai", registry.KindOpenAI}, {"ollama", registry.KindOpenAI},
		{"anthropic", registry.KindAnthropic}, {"mock", registry.KindMock},
	} {
		ex, err := New(registry.ProviderSpec{ID: "p", Adapter: tt.adapter, TimeoutSecs: 5})
		if err != nil {
			t.Fatalf("%s: %v", tt.adapter, err)
		}
		if ex.Name() != tt.kind {
			t.Errorf("%s: Name = %q, want %q", tt.adapter, ex.Name(), tt.kind)
		}
		if err := ex.(*Executor).Close(); err != nil {
			t.Error(err)
		}
	}
	if _, err := New(registry.ProviderSpec{ID: "p", Adapter: "nope"}); err == nil {
		t.Fatal("unknown adapter accepted")
	}
}
