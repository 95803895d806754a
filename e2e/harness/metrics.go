package harness

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Sample is one sample of the Prometheus text exposition.
type Sample struct {
	Name   string            // the series name: a histogram's has its _sum, _count or _bucket
	Labels map[string]string // nil when it has none
	Value  float64
}

// Samples are the samples of one scrape, in order.
type Samples []Sample

// Find returns the value of the first sample of the series name whose
// labels include every name, value pair of labels.
func (ss Samples) Find(name string, labels ...string) (float64, bool) {
	for _, s := range ss {
		if s.Name == name && s.has(labels) {
			return s.Value, true
		}
	}
	return 0, false
}

// Sum is the sum of the samples of the series name, whatever their labels.
func (ss Samples) Sum(name string) float64 {
	var sum float64
	for _, s := range ss {
		if s.Name == name {
			sum += s.Value
		}
	}
	return sum
}

func (s Sample) has(labels []string) bool {
	for i := 0; i+1 < len(labels); i += 2 {
		if v, ok := s.Labels[labels[i]]; !ok || v != labels[i+1] {
			return false
		}
	}
	return true
}

// ParseSamples reads the samples of a text exposition, skipping comments
// and blank lines. It reads label values without escapes, as the tests'
// labels have none.
func ParseSamples(r io.Reader) (Samples, error) {
	var ss Samples
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		s := Sample{Value: v}
		series := line[:i]
		name, lbls, ok := strings.Cut(series, "{")
		s.Name = name
		if ok {
			lbls, ok = strings.CutSuffix(lbls, "}")
			if !ok {
				return nil, fmt.Errorf("metrics line %q: unterminated labels", line)
			}
			s.Labels = map[string]string{}
			for kv := range strings.SplitSeq(lbls, ",") {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					continue
				}
				s.Labels[k] = strings.Trim(v, `"`)
			}
		}
		ss = append(ss, s)
	}
	return ss, sc.Err()
}

// Metrics scrapes GET /metrics; anything but 200 or a line that does not
// parse fails the test.
func (d *Daemon) Metrics() Samples {
	d.tb.Helper()
	resp, err := d.client.Get(d.URL + "/metrics")
	if err != nil {
		d.tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.tb.Fatalf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	ss, err := ParseSamples(resp.Body)
	if err != nil {
		d.tb.Fatalf("GET /metrics: %v", err)
	}
	return ss
}

// Metric returns the value of the sample of the series name whose labels
// include the given name, value pairs; the test fails if there is none.
func (d *Daemon) Metric(name string, labels ...string) float64 {
	d.tb.Helper()
	v, ok := d.Metrics().Find(name, labels...)
	if !ok {
		d.tb.Fatalf("no sample of %s with labels %q in /metrics", name, labels)
	}
	return v
}
