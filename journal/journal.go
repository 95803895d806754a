// Package journal owns awakend's log format for running under
// systemd-journald: a log/slog Handler that writes each record as one line on
// the service's stdout/stderr stream, prefixed with its syslog priority as
// "<N>" so journald files it at the right level, without a timestamp (journald
// stamps every entry itself), and with the attributes in logfmt style:
//
//	<6>config applied version=7 took=12.5ms trigger=sighup
//	<3>config rejected file=models/gpt.yaml error="unknown field \"prot\""
//
// It also tells whether the process's stderr is such a stream (Attached), so
// that the command can pick this format on its own.
package journal

import (
	"context"
	"encoding"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// Handler is a slog.Handler that writes records in journald's stream format.
// Each record is formatted into a pooled buffer and written with a single
// Write call, so records never interleave; a Handler and those derived from
// it with WithAttrs and WithGroup are safe for concurrent use and serialize
// their writes.
//
// Attributes are written as key=value. Keys inside groups are qualified with
// the group names ("request.method=GET"). A key or value is quoted in Go
// syntax when it is empty or contains a space, '=', '"', a control character,
// a non-printing character or invalid UTF-8, so a record never spans more
// than one line. Control characters in the message are escaped the same way
// (a newline becomes \n) but the message is not quoted.
//
// journald splits lines longer than its LineMax= (48K by default); records
// are not truncated here.
type Handler struct {
	w    io.Writer
	mu   *sync.Mutex // shared by all handlers derived from one NewHandler
	opts slog.HandlerOptions

	prefix string   // qualifier for keys of new attributes: "g1.g2." or ""
	groups []string // open groups, as ReplaceAttr wants them
	attrs  []byte   // attributes from WithAttrs, formatted, each led by ' '
}

// NewHandler returns a Handler that writes to w, which is usually os.Stderr.
// A nil opts means the defaults: level Info, no source, no ReplaceAttr.
//
// opts.ReplaceAttr is called for each non-group attribute and for the source
// attribute (AddSource). It is not called for time, level and message, which
// are not written as attributes in this format.
func NewHandler(w io.Writer, opts *slog.HandlerOptions) *Handler {
	h := &Handler{w: w, mu: new(sync.Mutex)}
	if opts != nil {
		h.opts = *opts
	}
	return h
}

// Enabled reports whether h writes records at level.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	minLevel := slog.LevelInfo
	if h.opts.Level != nil {
		minLevel = h.opts.Level.Level()
	}
	return level >= minLevel
}

// Handle writes r as one line.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	bp := getBuf()
	defer putBuf(bp)
	buf := *bp

	buf = append(buf, '<', '0'+byte(priority(r.Level)), '>')
	head := len(buf)
	buf = appendMessage(buf, r.Message)
	if h.opts.AddSource && r.PC != 0 {
		f, _ := runtime.CallersFrames([]uintptr{r.PC}).Next()
		src := &slog.Source{Function: f.Function, File: f.File, Line: f.Line}
		buf = h.appendAttr(buf, "", nil, slog.Any(slog.SourceKey, src))
	}
	buf = append(buf, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		buf = h.appendAttr(buf, h.prefix, h.groups, a)
		return true
	})
	if r.Message == "" && len(buf) > head {
		// No message: start with the first attribute, not a blank.
		buf = append(buf[:head], buf[head+1:]...)
	}
	buf = append(buf, '\n')
	*bp = buf

	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(buf)
	return err
}

// WithAttrs returns a Handler that writes attrs, formatted once now, with
// every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = h.attrs[:len(h.attrs):len(h.attrs)] // appends copy
	for _, a := range attrs {
		h2.attrs = h.appendAttr(h2.attrs, h.prefix, h.groups, a)
	}
	return &h2
}

// WithGroup returns a Handler that qualifies the keys of later attributes
// with name ("name.key"). An empty name returns h.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	h2.groups = append(h.groups[:len(h.groups):len(h.groups)], name)
	return &h2
}

// priority maps a slog level to a syslog priority (syslog(3)): Error and above
// is 3 (err), Warn 4 (warning), Info 6 (info), below that 7 (debug). A level
// between two named ones takes the less severe of the two.
func priority(l slog.Level) int {
	switch {
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= slog.LevelInfo:
		return 6
	default:
		return 7
	}
}

// appendAttr appends " key=value" for a, whose key is qualified with prefix,
// or one such pair per member when a is a group. groups are the open group
// names passed to ReplaceAttr.
func (h *Handler) appendAttr(buf []byte, prefix string, groups []string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if rep := h.opts.ReplaceAttr; rep != nil && a.Value.Kind() != slog.KindGroup {
		a = rep(groups, a)
		a.Value = a.Value.Resolve()
	}
	// slog.Handler contract: an Attr with an empty key and a nil value is
	// ignored; an empty group is ignored; a group with an empty key is
	// inlined.
	if a.Key == "" && a.Value.Kind() == slog.KindAny && a.Value.Any() == nil {
		return buf
	}
	if a.Value.Kind() == slog.KindGroup {
		members := a.Value.Group()
		if len(members) == 0 {
			return buf
		}
		if a.Key != "" {
			prefix += a.Key + "."
			if h.opts.ReplaceAttr != nil { // only it reads groups
				groups = append(groups[:len(groups):len(groups)], a.Key)
			}
		}
		for _, m := range members {
			buf = h.appendAttr(buf, prefix, groups, m)
		}
		return buf
	}
	buf = append(buf, ' ')
	buf = appendKey(buf, prefix, a.Key)
	buf = append(buf, '=')
	return appendValue(buf, a.Value)
}

// appendKey appends prefix+key, quoted if it needs to be, without building
// the joined string in the common case.
func appendKey(buf []byte, prefix, key string) []byte {
	var quote bool
	switch {
	case prefix == "":
		quote = needsQuoting(key)
	case key == "":
		quote = needsQuoting(prefix)
	default:
		quote = needsQuoting(prefix) || needsQuoting(key)
	}
	if quote {
		return strconv.AppendQuote(buf, prefix+key)
	}
	buf = append(buf, prefix...)
	return append(buf, key...)
}

// appendValue appends v in logfmt style. v is resolved and not a group.
func appendValue(buf []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return appendString(buf, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(buf, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(buf, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(buf, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(buf, v.Bool())
	case slog.KindDuration:
		return appendString(buf, v.Duration().String())
	case slog.KindTime:
		// As slog.TextHandler writes times, for the same reader.
		return v.Time().AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00")
	}
	switch x := v.Any().(type) {
	case *slog.Source:
		return appendString(buf, x.File+":"+strconv.Itoa(x.Line))
	case error:
		return appendString(buf, fmt.Sprint(x))
	case encoding.TextMarshaler:
		if rv := reflect.ValueOf(x); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return append(buf, "<nil>"...)
		}
		text, err := x.MarshalText()
		if err != nil {
			return appendString(buf, "!ERROR:"+err.Error())
		}
		return appendString(buf, string(text))
	case []byte:
		return appendString(buf, string(x))
	default:
		return appendString(buf, fmt.Sprintf("%+v", x))
	}
}

// appendString appends s, quoted if it needs to be.
func appendString(buf []byte, s string) []byte {
	if needsQuoting(s) {
		return strconv.AppendQuote(buf, s)
	}
	return append(buf, s...)
}

// needsQuoting reports whether s must be quoted to be read back as one
// logfmt token on one line.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c <= ' ' || c == '=' || c == '"' || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// appendMessage appends msg with every control character, line or paragraph
// separator and invalid byte escaped as in a Go string literal, so that the
// message stays on one line; everything else is written as is.
func appendMessage(buf []byte, msg string) []byte {
	for i := 0; i < len(msg); {
		c := msg[i]
		if c < utf8.RuneSelf {
			if c < ' ' || c == 0x7f {
				buf = appendEscape(buf, rune(c))
			} else {
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(msg[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(buf, `\x`...)
			buf = append(buf, hex[c>>4], hex[c&0xf])
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			buf = appendEscape(buf, r)
		default:
			buf = append(buf, msg[i:i+size]...)
		}
		i += size
	}
	return buf
}

const hex = "0123456789abcdef"

// appendEscape appends r as its Go escape sequence, without quotes.
func appendEscape(buf []byte, r rune) []byte {
	q := strconv.QuoteRune(r) // '\n', '\x00', '\u2028'
	return append(buf, q[1:len(q)-1]...)
}

// bufPool holds format buffers; buffers that grew past maxPooled for one
// huge record are dropped rather than kept alive.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

const maxPooled = 64 << 10

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// Attached reports whether the process's standard error is connected to the
// journal, so that log lines written there are read by journald.
//
// systemd sets $JOURNAL_STREAM to "DEVICE:INODE", both in decimal, the device
// and inode numbers of the stream when the service's stdout or stderr is
// connected to the journal (StandardOutput=journal, the default); if both are
// connected to different streams it names stderr's (systemd.exec(5),
// "JOURNAL_STREAM"). The variable is inherited by children whose output may
// go elsewhere, so it counts only when it matches fstat(2) of file
// descriptor 2.
func Attached() bool {
	return attached(os.Getenv("JOURNAL_STREAM"), 2)
}

// attached reports whether env, a $JOURNAL_STREAM value, names the file open
// as fd.
func attached(env string, fd int) bool {
	dev, ino, ok := parseStream(env)
	if !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// parseStream parses "DEVICE:INODE".
func parseStream(s string) (dev, ino uint64, ok bool) {
	d, i, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	dev, err := strconv.ParseUint(d, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	ino, err = strconv.ParseUint(i, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return dev, ino, true
}

// Interface check.
var _ slog.Handler = (*Handler)(nil)

// WriteLines writes each line of text to w as its own journal entry at
// level's priority ("<3>" for slog.LevelError), so that a block of text —
// the diagnostics of a rejected configuration — is filed line by line, at
// the right priority, and `journalctl -p err` shows every line. Empty lines
// are left out. It writes all lines with one Write call.
func WriteLines(w io.Writer, level slog.Level, text string) error {
	prefix := "<" + strconv.Itoa(priority(level)) + ">"
	var buf []byte
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		buf = append(buf, prefix...)
		buf = append(buf, line...)
		buf = append(buf, '\n')
	}
	if len(buf) == 0 {
		return nil
	}
	_, err := w.Write(buf)
	return err
}
