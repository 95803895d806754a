package suggest

import "testing"

func TestClosest(t *testing.T) {
	fields := []string{"provider_id", "upstream_model", "context_window", "id"}
	tests := []struct {
		in, want string
	}{
		{"provider_ud", "provider_id"},
		{"upstream_modle", "upstream_model"},
		{"contex_window", "context_window"},
		{"prot", ""},
		{"di", "id"},
		{"completely_else", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Closest(tt.in, fields); got != tt.want {
				t.Errorf("Closest(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got := Hint("opnai", []string{"openai", "anthropic"}); got != ` (did you mean "openai"?)` {
		t.Errorf("Hint = %q", got)
	}
}

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"ca", "ac", 1}} {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
