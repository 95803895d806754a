package pack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/awakend/awakend/config"
)

func TestNewIsDeterministic(t *testing.T) {
	a, err := New([]File{{"b.yaml", []byte("b")}, {"a/x.yaml", []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New([]File{{"a/x.yaml", []byte("x")}, {"b.yaml", []byte("b")}})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || len(a.ID) != 64 {
		t.Fatalf("IDs %q and %q, want one 64-character ID for the same files in any order", a.ID, b.ID)
	}
	if !bytes.Equal(a.Compressed(), b.Compressed()) {
		t.Error("the same files compress to different bytes")
	}
	c, err := New([]File{{"a/x.yaml", []byte("x")}, {"b.yaml", []byte("B")}})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == a.ID {
		t.Error("a changed byte kept the ID")
	}
}

func TestNewRefusesBadPaths(t *testing.T) {
	for _, files := range [][]File{
		{{"../x.yaml", nil}},
		{{"/etc/x.yaml", nil}},
		{{".", nil}},
		{{"a//b.yaml", nil}},
		{{"a.yaml", nil}, {"a.yaml", []byte("again")}},
	} {
		if _, err := New(files); err == nil {
			t.Errorf("New(%q) packed", files[0].Path)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	in := []File{{"models.yaml", []byte("models: []\n")}, {"agents/a.yaml", []byte("agents: []\n")}, {"agents/deep/b.yaml", nil}}
	p, err := New(in)
	if err != nil {
		t.Fatal(err)
	}
	q, err := Open(p.Compressed(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	same := slices.EqualFunc(q.Files, p.Files, func(a, b File) bool { return a.Path == b.Path && bytes.Equal(a.Data, b.Data) })
	if q.ID != p.ID || !same {
		t.Fatalf("reopened pack differs: %v vs %v", q.Files, p.Files)
	}
	if err := fstest.TestFS(q.FS(), "models.yaml", "agents/a.yaml", "agents/deep/b.yaml"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefuses(t *testing.T) {
	p, err := New([]File{{"a.yaml", []byte("providers: []\n")}})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New([]File{{"a.yaml", []byte("models: []\n")}})
	if err != nil {
		t.Fatal(err)
	}
	gz := func(build func(*tar.Writer)) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		build(tw)
		tw.Close()
		zw.Close()
		return buf.Bytes()
	}
	cases := map[string]struct {
		data []byte
		id   string
		want string
	}{
		"not gzip":     {[]byte("providers: []"), "", "not gzip"},
		"truncated":    {p.Compressed()[:20], "", "decompressing"},
		"another pack": {other.Compressed(), p.ID, "not the " + p.ID[:12]},
		"a symlink": {gz(func(tw *tar.Writer) {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "a.yaml", Linkname: "/etc/shadow"})
		}), "", "not a regular file"},
		"a path outside": {gz(func(tw *tar.Writer) { tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "../a.yaml"}) }), "", "invalid path"},
		"a file twice": {gz(func(tw *tar.Writer) {
			for range 2 {
				tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "a.yaml", Size: 1})
				tw.Write([]byte("x"))
			}
		}), "", "out of order or twice"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Open(c.data, c.id)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v, want an error saying %q", err, c.want)
			}
		})
	}
}

func TestOpenBoundsInflation(t *testing.T) {
	defer func(n int) { maxSize = n }(maxSize)
	maxSize = 1 << 20
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(make([]byte, 4<<20)) // 4 MiB of zeros: a few KiB compressed
	zw.Close()
	if _, err := Open(buf.Bytes(), ""); err == nil || !strings.Contains(err.Error(), "inflates beyond") {
		t.Fatalf("Open of a 4 MiB bomb with a 1 MiB limit: %v", err)
	}
	if _, err := New([]File{{"big.yaml", make([]byte, 2<<20)}}); err == nil {
		t.Fatal("New packed 2 MiB over a 1 MiB limit")
	}
}

// A pack of what a load read loads to the same config as the directory,
// with nothing of the environment or the credentials in it.
func TestRecordedPackLoadsLikeTheDirectory(t *testing.T) {
	dir := fstest.MapFS{
		"providers.yaml":   {Data: []byte("providers:\n  - {id: p, adapter: openai, base_url: \"${BASE}\", api_key: \"${credential:key}\"}\n")},
		"models.yaml":      {Data: []byte("models:\n  - {id: m, provider_id: p, upstream_model: u}\n")},
		"agents/a.yaml":    {Data: []byte("agents:\n  - {id: a, model_id: m, system_prompt: \"${file:prompts/a.txt}\"}\n")},
		"prompts/a.txt":    {Data: []byte("Be brief.\n")},
		"prompts/b.txt":    {Data: []byte("never referenced")},
		"notes.md":         {Data: []byte("not a config file")},
		"agents/.a.swp":    {Data: []byte("editor state")},
		"agents/old.yaml~": {Data: []byte("backup")},
	}
	creds := t.TempDir()
	if err := os.WriteFile(creds+"/key", []byte("sk-secret-never-packed"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := config.Options{
		LookupEnv:      func(k string) (string, bool) { return map[string]string{"BASE": "http://127.0.0.1:1"}[k], k == "BASE" },
		ReadFile:       os.ReadFile,
		CredentialsDir: creds,
	}
	rec := Record(dir)
	cfg, err := config.Load(rec, opts)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	names = append(names, cfg.Files...)
	for _, r := range cfg.Referenced {
		if !strings.HasPrefix(r, "/") {
			names = append(names, r)
		}
	}
	p, err := rec.Pack(names)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range p.Files {
		paths = append(paths, f.Path)
		if bytes.Contains(f.Data, []byte("sk-secret")) {
			t.Errorf("%s holds the credential", f.Path)
		}
	}
	want := []string{"agents/a.yaml", "models.yaml", "prompts/a.txt", "providers.yaml"}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("packed %q, want %q", paths, want)
	}
	q, err := Open(p.Compressed(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	again, err := config.Load(q.FS(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint != cfg.Fingerprint {
		t.Errorf("the pack loads with fingerprint %s, the directory with %s", again.Fingerprint, cfg.Fingerprint)
	}
	if !reflect.DeepEqual(again.Agents(), cfg.Agents()) || !reflect.DeepEqual(again.Providers(), cfg.Providers()) {
		t.Error("the pack loads to other specs than the directory")
	}
}

func TestRecorderRefusesUnread(t *testing.T) {
	rec := Record(fstest.MapFS{"a.yaml": {Data: []byte("x")}})
	if _, err := rec.Pack([]string{"a.yaml"}); err == nil {
		t.Fatal("packed a file the load never read")
	}
	if _, err := fs.ReadFile(rec, "a.yaml"); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Pack([]string{"a.yaml"}); err != nil {
		t.Fatal(err)
	}
}

// opensFS counts the files opened through it; it stats without opening.
type opensFS struct {
	fstest.MapFS
	opened int
}

func (o *opensFS) Open(name string) (fs.File, error) { o.opened++; return o.MapFS.Open(name) }

func (o *opensFS) Stat(name string) (fs.FileInfo, error) { return o.MapFS.Stat(name) }

// A stat through the recorder opens nothing: a reload stats every file.
// A file only stat'd is packed as it is then, if its stat is still the
// one seen.
func TestRecorderStatsWithoutOpening(t *testing.T) {
	then := time.Now().Add(-time.Hour)
	under := &opensFS{MapFS: fstest.MapFS{
		"a.yaml": {Data: []byte("xyz"), ModTime: then},
		"b.yaml": {Data: []byte("abc"), ModTime: then},
	}}
	rec := Record(under)
	fi, err := fs.Stat(rec, "a.yaml")
	if err != nil || fi.Size() != 3 {
		t.Fatalf("stat: %v, %v", fi, err)
	}
	if under.opened != 0 {
		t.Fatalf("a stat opened %d files", under.opened)
	}
	p, err := rec.Pack([]string{"a.yaml"})
	if err != nil || len(p.Files) != 1 || string(p.Files[0].Data) != "xyz" {
		t.Fatalf("pack of a file stat'd: %+v, %v", p, err)
	}
	if _, err := rec.Pack([]string{"b.yaml"}); err == nil {
		t.Fatal("packed a file the load neither read nor stat'd")
	}
	under.MapFS["a.yaml"] = &fstest.MapFile{Data: []byte("xyz!"), ModTime: time.Now()}
	if _, err := rec.Pack([]string{"a.yaml"}); err == nil || !strings.Contains(err.Error(), "changed since the load") {
		t.Fatalf("packed a file changed after the load's stat: %v", err)
	}
}
