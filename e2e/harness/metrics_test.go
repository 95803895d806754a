package harness

import (
	"strings"
	"testing"
)

func TestParseSamples(t *testing.T) {
	const exposition = `# HELP awakend_config_reloads_total Reloads.
# TYPE awakend_config_reloads_total counter
awakend_config_reloads_total{result="applied",trigger="watch"} 3
awakend_config_reloads_total{result="rejected",trigger="watch"} 1
awakend_config_reloads_total{result="applied",trigger="signal"} 2

awakend_registry_version 7
awakend_gateway_overhead_seconds_sum{route="chat"} 0.25
awakend_gateway_overhead_seconds_sum{route="messages"} 0.5
awakend_gateway_overhead_seconds_bucket{route="chat",le="+Inf"} 4
`
	ss, err := ParseSamples(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 7 {
		t.Fatalf("%d samples, want 7: %+v", len(ss), ss)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"awakend_registry_version", nil, 7, true},
		{"awakend_config_reloads_total", []string{"trigger", "watch", "result", "rejected"}, 1, true},
		{"awakend_config_reloads_total", []string{"trigger", "signal"}, 2, true},
		{"awakend_config_reloads_total", nil, 3, true}, // the first
		{"awakend_config_reloads_total", []string{"trigger", "api"}, 0, false},
		{"awakend_gateway_overhead_seconds_bucket", []string{"le", "+Inf"}, 4, true},
		{"awakend_config_reloads", nil, 0, false},
	} {
		t.Run(tt.name+strings.Join(tt.labels, ","), func(t *testing.T) {
			got, ok := ss.Find(tt.name, tt.labels...)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Find = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if got := ss.Sum("awakend_gateway_overhead_seconds_sum"); got != 0.75 {
		t.Errorf("Sum = %v, want 0.75", got)
	}
}

func TestParseSamplesErrors(t *testing.T) {
	for _, tt := range []struct{ name, line string }{
		{"no value", "awakend_registry_version"},
		{"bad value", "awakend_registry_version seven"},
		{"unterminated labels", `awakend_config_reloads_total{trigger="watch" 3`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseSamples(strings.NewReader(tt.line + "\n")); err == nil {
				t.Errorf("ParseSamples(%q) succeeded", tt.line)
			}
		})
	}
}
