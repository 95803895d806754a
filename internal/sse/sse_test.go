package sse

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func events(t *testing.T, in string, limit int) ([]string, error) {
	t.Helper()
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)), limit, 16)
	var out []string
	for {
		ev, err := r.Next()
		if err != nil {
			if len(ev) > 0 {
				out = append(out, "partial:"+string(ev))
			}
			return out, err
		}
		out = append(out, string(ev))
	}
}

func TestNext(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		err      error
	}{
		{"events", "data: a\n\ndata: b\r\n\r\n", []string{"data: a\n\n", "data: b\r\n\r\n"}, io.EOF},
		{"blank lines between", "\n\r\ndata: a\n\n\n\n", []string{"data: a\n\n"}, io.EOF},
		{"multi-line and long", "event: x\ndata: " + strings.Repeat("y", 40) + "\ndata: z\n\n",
			[]string{"event: x\ndata: " + strings.Repeat("y", 40) + "\ndata: z\n\n"}, io.EOF},
		{"comment", ": ping\n\n", []string{": ping\n\n"}, io.EOF},
		{"unterminated last", "data: a\n\ndata: [DONE]", []string{"data: a\n\n", "partial:data: [DONE]"}, io.EOF},
		{"no line end at all", "data: abc", []string{"partial:data: abc"}, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := events(t, tt.in, 1<<10)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("events %q, want %q", got, tt.want)
			}
		})
	}
}

// An event, or a line, over the limit is an error as soon as the limit is
// passed: the reader never holds more than the limit.
func TestLimit(t *testing.T) {
	for name, in := range map[string]string{
		"line without newline":   "data: " + strings.Repeat("x", 200),
		"lines without blank":    strings.Repeat("data: x\n", 40),
		"one event over, by one": "data: " + strings.Repeat("x", 93) + "\n\n",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := events(t, "data: ok\n\n"+in, 100)
			var tl *ErrTooLong
			if !errors.As(err, &tl) || tl.Limit != 100 {
				t.Fatalf("error %v, want ErrTooLong{100}", err)
			}
		})
	}
	got, err := events(t, "data: "+strings.Repeat("x", 92)+"\n\n", 100)
	if err != io.EOF || len(got) != 1 {
		t.Fatalf("an event of exactly the limit: %q, %v", got, err)
	}
}

// An infinite stream without line breaks ends with ErrTooLong, reading no
// more than the limit and a buffer.
func TestEndlessLine(t *testing.T) {
	r := NewReader(endless{}, 1<<16, 4096)
	if _, err := r.Next(); !errors.As(err, new(*ErrTooLong)) {
		t.Fatalf("error %v, want ErrTooLong", err)
	}
	if cap(r.ev) > 1<<17 {
		t.Errorf("the reader grew to %d bytes", cap(r.ev))
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestData(t *testing.T) {
	tests := []struct{ ev, want string }{
		{"data: a\n\n", "a"},
		{"data:a\r\n\r\n", "a"},
		{"event: e\ndata: {\"x\":\ndata:  1}\nid: 3\n\n", "{\"x\":\n 1}"},
		{": comment\ndata\n\n", ""},
		{"database: no\n\n", ""},
	}
	for _, tt := range tests {
		if got := string(Data(nil, []byte(tt.ev))); got != tt.want {
			t.Errorf("Data(%q) = %q, want %q", tt.ev, got, tt.want)
		}
	}
}

func TestIsDoneAndIsError(t *testing.T) {
	for ev, want := range map[string][2]bool{
		"data: [DONE]\n\n":                          {true, false},
		"data:[DONE]\n\n":                           {true, false},
		"data: {\"error\":{\"message\":\"x\"}}\n\n": {false, true},
		"data:{ \"error\": {}}\n\n":                 {false, true},
		"data: {\"id\":\"error\"}\n\n":              {false, false},
		": [DONE]\n\n":                              {false, false},
	} {
		if IsDone([]byte(ev)) != want[0] || IsError([]byte(ev)) != want[1] {
			t.Errorf("%q: IsDone %v, IsError %v, want %v", ev, IsDone([]byte(ev)), IsError([]byte(ev)), want)
		}
	}
}
