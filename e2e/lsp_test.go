package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/awakend/awakend/e2e/harness"
)

// The editor tests drive the real yaml-language-server (what VS Code,
// Neovim and Helix use for YAML) over its stdio protocol, with the schema
// that `awakend schema` prints. The test installs the server with npm into
// a temporary directory; node and npm must be installed (.ci/run installs
// them).

// ylsVersion is the yaml-language-server release the tests run: the last
// release before 2.0, which needs Node.js 22 (Debian ships 20 or older).
const ylsVersion = "1.25.0"

// TestEditorSchema checks what an editor shows with awakend's schema: the
// mistakes of a file at their ranges, completion of field names, no
// diagnostic for any valid file of the repository, and one for every
// schema matter of the bad fixtures.
func TestEditorSchema(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	res := harness.Run(t, nil, "schema")
	if res.Code != 0 {
		t.Fatalf("awakend schema: exit %d: %s", res.Code, res.Stderr)
	}
	// The copy in the repository, which the example files name, is what
	// the binary prints.
	shipped, err := os.ReadFile(filepath.Join(root, "examples", "schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != res.Stdout {
		t.Fatal("examples/schema.json differs from `awakend schema`: run `go run ./cmd/awakend schema > examples/schema.json`")
	}
	schemaFile := filepath.Join(t.TempDir(), "awakend.schema.json")
	if err := os.WriteFile(schemaFile, []byte(res.Stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	modeline := "# yaml-language-server: $schema=" + fileURI(schemaFile) + "\n"

	ls := startYLS(t)
	docs := t.TempDir()
	open := func(name, text string) string {
		uri := fileURI(filepath.Join(docs, name))
		ls.open(uri, text)
		return uri
	}

	t.Run("mistakes at their ranges", func(t *testing.T) {
		text := modeline + `providers:
  - id: p
    adapter: mock
models:
  - id: gpt
    prot: p
    provider_id: p
    upstream_model: u
    context_window: "lots"
model_pools:
  - id: pool
    members: [{model_id: gpt}]
    routing: {home: random}
`
		diags := ls.diagnostics(t, open("mistakes.yaml", text), func(ds []diagnostic) bool { return len(ds) >= 3 })
		want := []struct {
			what  string
			rng   lspRange
			words []string
		}{
			{"unknown field", lspRange{pos(6, 4), pos(6, 8)}, []string{"prot", "not allowed"}},
			{"wrong type", lspRange{pos(9, 20), pos(9, 26)}, []string{"Incorrect type", "integer"}},
			{"bad enum", lspRange{pos(13, 20), pos(13, 26)}, []string{"deterministic", "round_robin", "first_healthy"}},
		}
		for _, w := range want {
			found := false
			for _, d := range diags {
				if d.Range == w.rng && containsAll(d.Message, w.words) {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s diagnostic at %v mentioning %q; got:\n%s", w.what, w.rng, w.words, describe(diags))
			}
		}
		if len(diags) != len(want) {
			t.Errorf("%d diagnostics, want %d:\n%s", len(diags), len(want), describe(diags))
		}
	})

	t.Run("completion of a model's fields", func(t *testing.T) {
		text := modeline + "models:\n  - id: gpt\n    \n"
		uri := open("complete.yaml", text)
		labels := ls.complete(t, uri, pos(3, 4))
		for _, want := range []string{"provider_id", "upstream_model", "context_window", "max_output_tokens", "knowledge_cutoff", "modalities"} {
			if !slices.Contains(labels, want) {
				t.Errorf("completion offers %q, lacks %q", labels, want)
			}
		}
		for _, other := range []string{"adapter", "members", "system_prompt"} {
			if slices.Contains(labels, other) {
				t.Errorf("completion inside a model offers %q, a field of another kind", other)
			}
		}
	})

	t.Run("valid files have no diagnostic", func(t *testing.T) {
		var files []string
		for _, pattern := range []string{"examples/configs/*.yaml", "examples/configs/*/*.yaml", "config/testdata/good/*/*.*", "config/testdata/good/*/*/*.*", "config/testdata/good/*/*/*/*.*"} {
			m, _ := filepath.Glob(filepath.Join(root, pattern))
			files = append(files, m...)
		}
		checked := 0
		for _, f := range files {
			if ext := filepath.Ext(f); ext != ".yaml" && ext != ".yml" && ext != ".json" {
				continue
			}
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			text, uri := string(data), fileURI(f)
			if strings.Contains(f, "/examples/") {
				// The example files name the schema themselves.
				if !strings.HasPrefix(text, "# yaml-language-server: $schema=") {
					t.Errorf("%s does not start with a $schema modeline", f)
				}
			} else {
				text = modeline + text
			}
			ls.open(uri, text)
			checked++
			if diags := ls.diagnostics(t, uri, nil); len(diags) > 0 {
				t.Errorf("%s:\n%s", f, describe(diags))
			}
		}
		if checked < 10 {
			t.Fatalf("checked %d files, want the examples and the good fixtures", checked)
		}
		t.Logf("%d valid files, no diagnostic", checked)
	})

	t.Run("bad fixtures are rejected where the schema can tell", func(t *testing.T) {
		expected, _ := filepath.Glob(filepath.Join(root, "config/testdata/bad/*/expected.txt"))
		checked := 0
		for _, exp := range expected {
			data, err := os.ReadFile(exp)
			if err != nil {
				t.Fatal(err)
			}
			byFile := map[string][]int{} // lines (1-based) of schema matters
			for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
				file, ln, code, ok := parseDiagnostic(line)
				if ok && schemaMatter(code, line) {
					byFile[file] = append(byFile[file], ln)
				}
			}
			for file, lines := range byFile {
				path := filepath.Join(filepath.Dir(exp), "conf", file)
				src, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				uri := fileURI(path)
				ls.open(uri, modeline+string(src))
				diags := ls.diagnostics(t, uri, nil) // the first ones: the valid files get theirs so too
				for _, ln := range lines {
					checked++
					// The line, or a neighbour: the editor marks the key of
					// a block mapping where awakend names its first field,
					// or a value where awakend names its mapping. (The
					// editor's 0-based line is ln: -1, +1 for the modeline.)
					near := func(d diagnostic) bool { return d.Range.Start.Line >= ln-1 && d.Range.Start.Line <= ln+1 }
					if !slices.ContainsFunc(diags, near) {
						t.Errorf("%s:%d: awakend reports a schema matter there, the editor nothing; it shows:\n%s", path, ln, describe(diags))
					}
				}
			}
		}
		if checked < 20 {
			t.Fatalf("checked %d diagnostics of the bad fixtures, want more", checked)
		}
		t.Logf("the editor shows all %d schema matters of the bad fixtures", checked)
	})
}

// schemaMatter reports whether a diagnostic of the loader (code, and the
// whole line for the codes whose rules the schema has only in part) is
// one the schema expresses too.
func schemaMatter(code, line string) bool {
	switch code {
	case "syntax", "unknown_field", "unknown_key", "missing_field", "invalid_knowledge_cutoff", "invalid_modality", "invalid_reasoning_effort", "pool_invalid_weight":
		return true
	case "type":
		// Tags, and values that come from interpolation, are the loader's.
		return !strings.Contains(line, "unsupported YAML tag") && !strings.Contains(line, "got the value of")
	case "invalid_value":
		return strings.Contains(line, "unknown adapter") || strings.Contains(line, " is not ") || strings.Contains(line, "timeout_secs must be greater than 0")
	case "invalid_token_limit":
		return strings.Contains(line, "must be greater than 0")
	case "invalid_price":
		return !strings.Contains(line, "output_token_price") // .nan is a number to the editor
	case "invalid_endpoint":
		return strings.Contains(line, "must use http or https") || strings.Contains(line, "query or fragment") ||
			strings.Contains(line, "auth.type")
	}
	return false
}

// parseDiagnostic takes "file:line:col: error: … [code]" apart.
func parseDiagnostic(s string) (file string, line int, code string, ok bool) {
	i := strings.LastIndex(s, " [")
	if i < 0 || !strings.HasSuffix(s, "]") {
		return "", 0, "", false
	}
	code = s[i+2 : len(s)-1]
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 3 {
		return "", 0, "", false
	}
	line, err := strconv.Atoi(parts[1])
	return parts[0], line, code, err == nil
}

func containsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

func fileURI(path string) string { return (&url.URL{Scheme: "file", Path: path}).String() }

// The protocol's types, as far as the tests use them.

type position struct {
	Line      int `json:"line"`
	Character int `json:"character"`
}

type lspRange struct {
	Start position `json:"start"`
	End   position `json:"end"`
}

func pos(line, char int) position { return position{line, char} }

func (r lspRange) String() string {
	return fmt.Sprintf("%d:%d-%d:%d", r.Start.Line, r.Start.Character, r.End.Line, r.End.Character)
}

type diagnostic struct {
	Range    lspRange `json:"range"`
	Severity int      `json:"severity"`
	Message  string   `json:"message"`
}

func describe(ds []diagnostic) string {
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "  %v (severity %d): %s\n", d.Range, d.Severity, strings.ReplaceAll(d.Message, "\n", " "))
	}
	return b.String()
}

type message struct {
	ID     *json.RawMessage `json:"id,omitempty"`
	Method string           `json:"method,omitempty"`
	Params json.RawMessage  `json:"params,omitempty"`
	Result json.RawMessage  `json:"result,omitempty"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// yls is a running yaml-language-server.
type yls struct {
	stdin io.Writer
	wmu   sync.Mutex // one message at a time on stdin

	mu        sync.Mutex
	nextID    int
	pending   map[int]chan message
	published map[string][]diagnostic // by document, the latest
	changed   chan struct{}           // closed and replaced at each publication
	versions  map[string]int
}

// startYLS installs yaml-language-server and starts it; it is stopped when
// the test ends.
func startYLS(t *testing.T) *yls {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed (apt-get install nodejs npm): the editor tests need it")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is not installed (apt-get install npm): the editor tests need it")
	}
	prefix := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", "yaml-language-server@"+ylsVersion)
	install.Env = append(os.Environ(), "npm_config_update_notifier=false")
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("npm install yaml-language-server@%s: %v\n%s", ylsVersion, err, out)
	}

	cmd := exec.Command(node, filepath.Join(prefix, "node_modules", "yaml-language-server", "bin", "yaml-language-server"), "--stdio")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ls := &yls{stdin: stdin, pending: map[int]chan message{}, published: map[string][]diagnostic{},
		changed: make(chan struct{}), versions: map[string]int{}}
	var wg sync.WaitGroup
	wg.Go(func() { ls.read(stdout) })
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		wg.Wait()
		cmd.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("yaml-language-server stderr:\n%s", stderr.String())
		}
	})

	ls.request(t, "initialize", map[string]any{
		"processId": os.Getpid(),
		"rootUri":   nil,
		"capabilities": map[string]any{
			"textDocument": map[string]any{
				"completion":         map[string]any{"completionItem": map[string]any{"snippetSupport": false}},
				"publishDiagnostics": map[string]any{},
			},
		},
	}, nil)
	ls.notify("initialized", map[string]any{})
	ls.notify("workspace/didChangeConfiguration", map[string]any{"settings": map[string]any{
		"yaml": map[string]any{"validate": true, "completion": true, "hover": true, "schemaStore": map[string]any{"enable": false}},
	}})
	return ls
}

// read dispatches the server's messages until its output ends.
func (ls *yls) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		size := -1
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSpace(line)
			if line == "" {
				break
			}
			if v, ok := strings.CutPrefix(line, "Content-Length: "); ok {
				size, _ = strconv.Atoi(v)
			}
		}
		if size < 0 {
			return
		}
		body := make([]byte, size)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		var m message
		if err := json.Unmarshal(body, &m); err != nil {
			continue
		}
		switch {
		case m.Method == "textDocument/publishDiagnostics":
			var p struct {
				URI         string       `json:"uri"`
				Diagnostics []diagnostic `json:"diagnostics"`
			}
			if json.Unmarshal(m.Params, &p) == nil {
				ls.mu.Lock()
				ls.published[p.URI] = p.Diagnostics
				close(ls.changed)
				ls.changed = make(chan struct{})
				ls.mu.Unlock()
			}
		case m.Method != "" && m.ID != nil: // a request of the server: nothing to configure
			ls.send(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": nil})
		case m.Method == "" && m.ID != nil:
			var id int
			if json.Unmarshal(*m.ID, &id) == nil {
				ls.mu.Lock()
				ch := ls.pending[id]
				delete(ls.pending, id)
				ls.mu.Unlock()
				if ch != nil {
					ch <- m
				}
			}
		}
	}
}

func (ls *yls) send(v any) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err) // not reached: maps and strings
	}
	ls.wmu.Lock()
	defer ls.wmu.Unlock()
	fmt.Fprintf(ls.stdin, "Content-Length: %d\r\n\r\n%s", len(body), body)
}

func (ls *yls) notify(method string, params any) {
	ls.send(map[string]any{"jsonrpc": "2.0", "method": method, "params": params})
}

// request sends a request and decodes its result into out.
func (ls *yls) request(t *testing.T, method string, params, out any) {
	t.Helper()
	ch := make(chan message, 1)
	ls.mu.Lock()
	ls.nextID++
	id := ls.nextID
	ls.pending[id] = ch
	ls.mu.Unlock()
	ls.send(map[string]any{"jsonrpc": "2.0", "id": id, "method": method, "params": params})
	select {
	case m := <-ch:
		if m.Error != nil {
			t.Fatalf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				t.Fatalf("%s: %v in %s", method, err, m.Result)
			}
		}
	case <-time.After(harness.Timeout):
		t.Fatalf("%s: no answer within %v", method, harness.Timeout)
	}
}

// open opens (or replaces) a document with the given text.
func (ls *yls) open(uri, text string) {
	ls.mu.Lock()
	delete(ls.published, uri)
	ls.versions[uri]++
	v := ls.versions[uri]
	ls.mu.Unlock()
	if v > 1 {
		ls.notify("textDocument/didClose", map[string]any{"textDocument": map[string]any{"uri": uri}})
	}
	ls.notify("textDocument/didOpen", map[string]any{"textDocument": map[string]any{
		"uri": uri, "languageId": "yaml", "version": v, "text": text,
	}})
}

// diagnostics waits for the diagnostics of a document: the first ones
// published since it was opened that satisfy done (nil: any).
func (ls *yls) diagnostics(t *testing.T, uri string, done func([]diagnostic) bool) []diagnostic {
	t.Helper()
	deadline := time.After(harness.Timeout)
	for {
		ls.mu.Lock()
		ds, ok := ls.published[uri]
		ch := ls.changed
		ls.mu.Unlock()
		if ok && (done == nil || done(ds)) {
			return ds
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: no diagnostics as wanted within %v; last:\n%s", uri, harness.Timeout, describe(ds))
		}
	}
}

// complete returns the labels of the completion items at p.
func (ls *yls) complete(t *testing.T, uri string, p position) []string {
	t.Helper()
	var res struct {
		Items []struct {
			Label string `json:"label"`
		} `json:"items"`
	}
	ls.request(t, "textDocument/completion", map[string]any{"textDocument": map[string]any{"uri": uri}, "position": p}, &res)
	var labels []string
	for _, it := range res.Items {
		labels = append(labels, it.Label)
	}
	return labels
}
