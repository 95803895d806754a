package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// all enables every level.
var all = &slog.HandlerOptions{Level: slog.Level(-100)}

func TestPriority(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug - 4, "<7>m\n"},
		{slog.LevelDebug, "<7>m\n"},
		{slog.LevelDebug + 2, "<7>m\n"},
		{slog.LevelInfo, "<6>m\n"},
		{slog.LevelInfo + 1, "<6>m\n"},
		{slog.LevelInfo + 3, "<6>m\n"},
		{slog.LevelWarn, "<4>m\n"},
		{slog.LevelWarn + 2, "<4>m\n"},
		{slog.LevelError, "<3>m\n"},
		{slog.LevelError + 4, "<3>m\n"},
		{slog.LevelError + 100, "<3>m\n"},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			h := NewHandler(&buf, all)
			if err := h.Handle(t.Context(), slog.NewRecord(time.Now(), tt.level, "m", 0)); err != nil {
				t.Fatal(err)
			}
			if got := buf.String(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLevelFilter(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(&buf, nil)) // default: Info
	log.Debug("hidden")
	log.Info("shown")
	log.Warn("shown too")
	if got, want := buf.String(), "<6>shown\n<4>shown too\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}

	var lv slog.LevelVar
	lv.Set(slog.LevelError)
	h := NewHandler(io.Discard, &slog.HandlerOptions{Level: &lv})
	if h.Enabled(t.Context(), slog.LevelWarn) || !h.Enabled(t.Context(), slog.LevelError) {
		t.Fatal("Enabled does not follow the LevelVar")
	}
}

type text string

func (t *text) MarshalText() ([]byte, error) { return []byte(*t), nil }

type badText struct{}

func (badText) MarshalText() ([]byte, error) { return nil, errors.New("no text") }

type point struct{ X, Y int }

type lazy struct{ calls *atomic.Int32 }

func (l lazy) LogValue() slog.Value {
	l.calls.Add(1)
	return slog.GroupValue(slog.String("name", "gpt 4"), slog.Int("n", 2))
}

func TestLines(t *testing.T) {
	when := time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	tests := []struct {
		name string
		msg  string
		args []any
		want string
	}{
		{"plain", "config applied", []any{"version", 7, "trigger", "sighup"}, "<6>config applied version=7 trigger=sighup"},
		{"space", "m", []any{"path", "models/gpt 4.yaml"}, `<6>m path="models/gpt 4.yaml"`},
		{"equals", "m", []any{"expr", "a=b"}, `<6>m expr="a=b"`},
		{"quotes", "m", []any{"err", `unknown field "prot"`}, `<6>m err="unknown field \"prot\""`},
		{"newline", "m", []any{"diag", "a.yaml:1:1: bad\nb.yaml:2:2: worse"}, `<6>m diag="a.yaml:1:1: bad\nb.yaml:2:2: worse"`},
		{"tab and cr", "m", []any{"v", "a\tb\r"}, `<6>m v="a\tb\r"`},
		{"empty value", "m", []any{"v", ""}, `<6>m v=""`},
		{"backslash alone", "m", []any{"v", `C:\dir`}, `<6>m v=C:\dir`},
		{"unicode", "m", []any{"v", "héllo→"}, `<6>m v=héllo→`},
		{"unicode space", "m", []any{"v", "a\u00a0b"}, `<6>m v="a\u00a0b"`},
		{"line separator", "m", []any{"v", "a\u2028b"}, `<6>m v="a\u2028b"`},
		{"invalid utf-8", "m", []any{"v", "a\xffb"}, `<6>m v="a\xffb"`},
		{"key with space", "m", []any{slog.String("my key", "v")}, `<6>m "my key"=v`},
		{"empty key", "m", []any{slog.String("", "v")}, `<6>m ""=v`},
		{"numbers", "m", []any{"i", -3, "u", uint64(1 << 63), "f", 0.25, "big", 1e21, "nan", float64(0) / zero}, `<6>m i=-3 u=9223372036854775808 f=0.25 big=1e+21 nan=NaN`},
		{"bool", "m", []any{"ok", true}, `<6>m ok=true`},
		{"duration", "m", []any{"took", 12500 * time.Microsecond}, `<6>m took=12.5ms`},
		{"time", "m", []any{"at", when}, `<6>m at=2025-01-02T03:04:05.006Z`},
		{"error", "m", []any{"err", errors.New("open a.yaml: permission denied")}, `<6>m err="open a.yaml: permission denied"`},
		{"nil error", "m", []any{"err", error(nil)}, `<6>m err=<nil>`},
		{"text marshaler", "m", []any{"peer", netip.MustParseAddr("::1")}, `<6>m peer=::1`},
		{"nil text marshaler", "m", []any{"t", (*text)(nil)}, `<6>m t=<nil>`},
		{"failing text marshaler", "m", []any{"t", badText{}}, `<6>m t="!ERROR:no text"`},
		{"bytes", "m", []any{"b", []byte("a b")}, `<6>m b="a b"`},
		{"struct", "m", []any{"p", point{1, 2}}, `<6>m p="{X:1 Y:2}"`},
		{"zero attr ignored", "m", []any{slog.Attr{}, "k", 1}, `<6>m k=1`},
		{"message newline", "first\nsecond\r\n", nil, `<6>first\nsecond\r\n`},
		{"message controls", "a\x00b\x1bc\u0085d\u2029e\xfff", nil, `<6>a\x00b\x1bc\u0085d\u2029e\xfff`},
		{"message keeps spaces and quotes", `say "hi" = ok`, []any{"k", 1}, `<6>say "hi" = ok k=1`},
		{"empty message", "", []any{"k", 1, "j", 2}, `<6>k=1 j=2`},
		{"empty message no attrs", "", nil, `<6>`},
		{"group", "req", []any{slog.Group("http", "method", "GET", "path", "/v1/models")}, `<6>req http.method=GET http.path=/v1/models`},
		{"nested group", "m", []any{slog.Group("a", slog.Group("b", "c", 1), "d", 2)}, `<6>m a.b.c=1 a.d=2`},
		{"empty group ignored", "m", []any{slog.Group("g"), "k", 1}, `<6>m k=1`},
		{"inline group", "m", []any{slog.Group("", "k", 1, "j", 2)}, `<6>m k=1 j=2`},
		{"group key with space", "m", []any{slog.Group("my group", "k", 1)}, `<6>m "my group.k"=1`},
		{"log valuer", "m", []any{"model", lazy{new(atomic.Int32)}}, `<6>m model.name="gpt 4" model.n=2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			slog.New(NewHandler(&buf, nil)).Info(tt.msg, tt.args...)
			if got, want := buf.String(), tt.want+"\n"; got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

var zero float64

func TestWithAttrsAndGroups(t *testing.T) {
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string
	}{
		{"with", func(l *slog.Logger) { l.With("component", "reload").Info("m", "k", 1) }, "<6>m component=reload k=1"},
		{"with twice", func(l *slog.Logger) { l.With("a", 1).With("b", "x y").Info("m", "c", 3) }, `<6>m a=1 b="x y" c=3`},
		{"with group", func(l *slog.Logger) { l.WithGroup("req").Info("m", "id", 9) }, "<6>m req.id=9"},
		{"with then group", func(l *slog.Logger) { l.With("a", 1).WithGroup("g").Info("m", "b", 2) }, "<6>m a=1 g.b=2"},
		{"group then with", func(l *slog.Logger) { l.WithGroup("g").With("a", 1).Info("m", "b", 2) }, "<6>m g.a=1 g.b=2"},
		{"nested groups", func(l *slog.Logger) { l.WithGroup("a").WithGroup("b").Info("m", slog.Group("c", "d", 1)) }, "<6>m a.b.c.d=1"},
		{"group without attrs", func(l *slog.Logger) { l.WithGroup("g").Info("m") }, "<6>m"},
		{"empty group name", func(l *slog.Logger) { l.WithGroup("").Info("m", "k", 1) }, "<6>m k=1"},
		{"with no attrs", func(l *slog.Logger) { l.With().Info("m", "k", 1) }, "<6>m k=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(slog.New(NewHandler(&buf, nil)))
			if got, want := buf.String(), tt.want+"\n"; got != want {
				t.Fatalf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestWithAttrsFormatsOnce(t *testing.T) {
	var buf bytes.Buffer
	calls := new(atomic.Int32)
	base := slog.New(NewHandler(&buf, nil))
	log := base.With("model", lazy{calls})
	log.Info("one")
	log.Info("two", "k", 1)
	base.Info("three")
	want := "<6>one model.name=\"gpt 4\" model.n=2\n" +
		"<6>two model.name=\"gpt 4\" model.n=2 k=1\n" +
		"<6>three\n"
	if got := buf.String(); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("LogValue called %d times, want once, when With formats the attributes", n)
	}

	// Siblings derived from one parent do not share formatted attributes.
	buf.Reset()
	parent := base.With("p", 1)
	a, b := parent.With("a", 1), parent.With("b", 2)
	a.Info("m")
	b.Info("m")
	if got, want := buf.String(), "<6>m p=1 a=1\n<6>m p=1 b=2\n"; got != want {
		t.Fatalf("siblings: got %q, want %q", got, want)
	}
}

func TestReplaceAttr(t *testing.T) {
	var buf bytes.Buffer
	var seen []string
	h := NewHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		seen = append(seen, strings.Join(append(groups, a.Key), "/"))
		switch a.Key {
		case "api_key":
			return slog.String(a.Key, "REDACTED")
		case "drop":
			return slog.Attr{}
		}
		return a
	}})
	slog.New(h).WithGroup("g").Info("m", "api_key", "sk-1", "drop", 1, slog.Group("sub", "k", 2))
	if got, want := buf.String(), "<6>m g.api_key=REDACTED g.sub.k=2\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got, want := strings.Join(seen, " "), "g/api_key g/drop g/sub/k"; got != want {
		t.Fatalf("ReplaceAttr saw %q, want %q", got, want)
	}
}

func TestAddSource(t *testing.T) {
	var buf bytes.Buffer
	slog.New(NewHandler(&buf, &slog.HandlerOptions{AddSource: true})).WithGroup("g").Info("m", "k", 1)
	re := regexp.MustCompile(`^<6>m source=\S+/journal/journal_test\.go:\d+ g\.k=1\n$`)
	if got := buf.String(); !re.MatchString(got) {
		t.Fatalf("got %q, want a match for %s", got, re)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteError(t *testing.T) {
	err := NewHandler(failingWriter{}, nil).Handle(t.Context(), slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0))
	if err == nil || err.Error() != "disk full" {
		t.Fatalf("Handle = %v, want the writer's error", err)
	}
}

// recorder keeps every Write call. It is deliberately not synchronized: the
// race detector fails the test if the handler lets two writes overlap.
type recorder struct{ writes []string }

func (r *recorder) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func TestConcurrent(t *testing.T) {
	const goroutines, records = 16, 200
	var w recorder
	base := slog.New(NewHandler(&w, nil))
	var wg sync.WaitGroup
	for g := range goroutines {
		log := base.With("g", g)
		if g%2 == 1 {
			log = log.WithGroup("odd")
		}
		wg.Go(func() {
			for i := range records {
				log.Info("multi\nline", "i", i, "v", "a b\nc")
			}
		})
	}
	wg.Wait()

	if len(w.writes) != goroutines*records {
		t.Fatalf("%d writes, want one per record: %d", len(w.writes), goroutines*records)
	}
	line := regexp.MustCompile(`^<6>multi\\nline g=\d+ (odd\.)?i=\d+ (odd\.)?v="a b\\nc"\n$`)
	seen := make(map[string]bool)
	for _, s := range w.writes {
		if !line.MatchString(s) {
			t.Fatalf("write %q is not one well-formed line", s)
		}
		seen[s] = true
	}
	if len(seen) != goroutines*records {
		t.Fatalf("%d distinct lines, want %d", len(seen), goroutines*records)
	}
}

func TestAttached(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other, err := os.Create(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	st := stat(t, int(f.Fd()))
	ost := stat(t, int(other.Fd()))

	tests := []struct {
		name string
		env  string
		want bool
	}{
		{"matches", fmt.Sprintf("%d:%d", st.Dev, st.Ino), true},
		{"another file", fmt.Sprintf("%d:%d", ost.Dev, ost.Ino), false},
		{"same device other inode", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), false},
		{"other device same inode", fmt.Sprintf("%d:%d", st.Dev+1, st.Ino), false},
		{"unset", "", false},
		{"no colon", fmt.Sprint(st.Ino), false},
		{"not numbers", "dev:ino", false},
		{"negative", fmt.Sprintf("-%d:%d", st.Dev, st.Ino), false},
		{"trailing field", fmt.Sprintf("%d:%d:0", st.Dev, st.Ino), false},
		{"space", fmt.Sprintf("%d: %d", st.Dev, st.Ino), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := attached(tt.env, int(f.Fd())); got != tt.want {
				t.Fatalf("attached(%q) = %v, want %v", tt.env, got, tt.want)
			}
		})
	}

	t.Run("bad fd", func(t *testing.T) {
		if attached(fmt.Sprintf("%d:%d", st.Dev, st.Ino), -1) {
			t.Fatal("attached to fd -1")
		}
	})
}

func TestAttachedStderr(t *testing.T) {
	st := stat(t, 2)
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	if !Attached() {
		t.Fatal("Attached() = false with JOURNAL_STREAM naming stderr")
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if Attached() {
		t.Fatal("Attached() = true with JOURNAL_STREAM naming another inode")
	}
	os.Unsetenv("JOURNAL_STREAM")
	if Attached() {
		t.Fatal("Attached() = true without JOURNAL_STREAM")
	}
}

func stat(t *testing.T, fd int) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		t.Fatalf("fstat %d: %v", fd, err)
	}
	return st
}

func BenchmarkHandler(b *testing.B) {
	handlers := []struct {
		name string
		h    slog.Handler
	}{
		{"journal", NewHandler(io.Discard, nil)},
		{"slog.TextHandler", slog.NewTextHandler(io.Discard, nil)}, // reference point
	}
	for _, bh := range handlers {
		log := slog.New(bh.h).With("component", "reload")
		b.Run(bh.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				log.Info("config applied", "version", 7, "took", 12500*time.Microsecond,
					"trigger", "sighup", "file", "models/gpt 4.yaml", slog.Group("changes", "agents", 2, "models", -1))
			}
		})
		b.Run(bh.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					log.Info("config applied", "version", 7, "took", 12500*time.Microsecond,
						"trigger", "sighup", "file", "models/gpt 4.yaml", slog.Group("changes", "agents", 2, "models", -1))
				}
			})
		})
	}
}

func TestWriteLines(t *testing.T) {
	var b strings.Builder
	text := "a.yaml:1:2: error: one [code]\n\nb.yaml:3:4: error: two\r\n"
	if err := WriteLines(&b, slog.LevelError, text); err != nil {
		t.Fatal(err)
	}
	if want := "<3>a.yaml:1:2: error: one [code]\n<3>b.yaml:3:4: error: two\n"; b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
	b.Reset()
	WriteLines(&b, slog.LevelWarn, "only line")
	if b.String() != "<4>only line\n" {
		t.Errorf("wrote %q", b.String())
	}
	b.Reset()
	WriteLines(&b, slog.LevelError, "\n")
	if b.Len() != 0 {
		t.Errorf("wrote %q for no lines", b.String())
	}
}
