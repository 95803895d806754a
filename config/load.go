package config

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/registry"
)

// DefaultMaxFileSize is the size limit of a config file (and of a file a
// ${file:…} or ${credential:…} reference reads) when Options sets none.
const DefaultMaxFileSize = 8 << 20

// Options are the loader's inputs from outside the directory.
type Options struct {
	// LookupEnv resolves ${VAR}; nil means no variable is set. It and
	// ReadFile may be called concurrently.
	LookupEnv func(string) (string, bool)
	// ReadFile reads files outside the directory: ${file:/abs/path} and
	// ${credential:NAME}. nil makes those references an error.
	ReadFile func(path string) ([]byte, error)
	// CredentialsDir is $CREDENTIALS_DIRECTORY, where ${credential:NAME}
	// looks; "" means credentials are unavailable.
	CredentialsDir string
	// MaxFileSize limits each file; 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// AllowEmpty accepts a directory that declares no resources.
	AllowEmpty bool
	// Cache, if set, keeps what each file decoded to between loads, so
	// that a reload reads and decodes only the files that changed (see
	// Cache). Linking and validation cost what changed, with the same
	// result as without a cache.
	Cache *Cache
	// Reread makes a load with a Cache read every file, trusting no
	// file's stat (bytes and references still decide what is decoded
	// again): for a reload asked for by hand.
	Reread bool
}

// Config is a loaded config directory: the specs it declares, in file
// order, and where each was written. A Config from Load has no duplicate
// ids and is ready for Build; it must not be modified.
type Config struct {
	// Files are the config files read, in load order, relative to the
	// directory and slash-separated.
	Files []string
	// Referenced are the files that ${file:…} and ${credential:…}
	// references read, sorted: relative to the directory, or absolute.
	Referenced []string
	// Fingerprint is the hex SHA-256 of the sorted paths and contents of
	// Files and Referenced. Equal fingerprints mean equal inputs (the
	// environment aside).
	Fingerprint string

	resources chunks[resource]             // in load order
	index     [len(kinds)]map[string]int32 // the first resource of each kind with each id

	// What each file decoded to (nil if it could not be read): the field
	// positions of its resources, and for Build, with a cache, what to
	// patch the set it last built with; first is where each file's
	// resources start in resources.
	units []*unit
	first []int32
	cache *Cache

	fields chunks[fieldPos] // of the one file decoded, while decoding a unit
	lists  *lists           // the units' specs in one list of each kind, once asked for
}

// lists are the specs of every unit of a config, in file order.
type lists struct {
	once      sync.Once
	providers []registry.ProviderSpec
	models    []registry.ModelSpec
	pools     []registry.PoolSpec
	agents    []registry.AgentSpec
	clients   []registry.ClientSpec
}

// Providers returns the providers the config declares, in file order. The
// list is made once, on the first call of any of these five (a reload
// does not need them), and shared.
func (c *Config) Providers() []registry.ProviderSpec { return c.merged().providers }

// Models returns the models the config declares, in file order.
func (c *Config) Models() []registry.ModelSpec { return c.merged().models }

// Pools returns the model pools the config declares, in file order.
func (c *Config) Pools() []registry.PoolSpec { return c.merged().pools }

// Agents returns the agents the config declares, in file order.
func (c *Config) Agents() []registry.AgentSpec { return c.merged().agents }

// Clients returns the clients the config declares, in file order.
func (c *Config) Clients() []registry.ClientSpec { return c.merged().clients }

func (c *Config) merged() *lists {
	l := c.lists
	if l == nil {
		return &lists{} // a Config of no Load: nothing declared
	}
	l.once.Do(func() {
		for _, u := range c.units {
			if u != nil {
				l.providers = append(l.providers, u.providers...)
				l.models = append(l.models, u.models...)
				l.pools = append(l.pools, u.pools...)
				l.agents = append(l.agents, u.agents...)
				l.clients = append(l.clients, u.clients...)
			}
		}
	})
	return l
}

// loader holds the state of one Load.
type loader struct {
	providers chunks[provider] // the specs while decoding a unit (see decodeUnit)
	models    chunks[model]
	pools     chunks[pool]
	agents    chunks[agent]
	clients   chunks[client]

	fsys   fs.FS
	opts   Options
	exp    expander
	cfg    *Config
	diags  []Diagnostic
	items  int  // list entries seen, for CodeEmpty
	failed bool // a file, or part of one, could not be decoded: resources may be missing
	gaps   gaps // what could not be decoded, for validate
}

// Load reads every config file below the root of fsys and decodes the
// resources they declare, checking syntax, fields, types, interpolation and
// that ids are unique. It returns a *Error with every problem found; when
// there are any, it also validates what could be decoded as Build would,
// so that one run reports both kinds (leaving out registry diagnostics that
// repeat a load problem, and references to missing resources that may be
// in what did not decode). Any other error means the root itself could not
// be read.
//
// Load does no I/O but through fsys and opts. It reads and decodes files
// on several goroutines at once, all ended when it returns: fsys and the
// functions in opts must be safe for concurrent use (os.DirFS,
// os.LookupEnv and os.ReadFile are).
func Load(fsys fs.FS, opts Options) (*Config, error) {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	l := &loader{fsys: fsys, opts: opts, cfg: &Config{}}
	l.exp = expander{fsys: fsys, opts: &l.opts}
	if err := l.load(); err != nil {
		return nil, err
	}
	if len(l.diags) > 0 {
		diags := append(l.diags, l.cfg.validate(&l.gaps)...)
		return nil, newError(diags, l.cfg.Fingerprint)
	}
	return l.cfg, nil
}

func (l *loader) load() error {
	root, err := fs.Stat(l.fsys, ".")
	if err != nil {
		return fmt.Errorf("config directory: %w", err)
	}
	w := walker{fsys: l.fsys}
	if err := w.walk(".", root); err != nil {
		return fmt.Errorf("config directory: %w", err)
	}
	l.diags = w.diags
	l.failed = len(w.diags) > 0
	l.gaps.unread = l.failed
	cfg := l.cfg
	cfg.Files = w.files
	sums := make([][]byte, len(w.files))
	readErrs := make([]error, len(w.files))
	key := cacheKey{l.opts.MaxFileSize, l.opts.CredentialsDir, l.opts.ReadFile != nil}
	units, errs := l.units(w.files, key)
	cfg.units, cfg.first, cfg.cache, cfg.lists = units, make([]int32, len(units)), l.opts.Cache, &lists{}
	for i, name := range w.files {
		u, err := units[i], errs[i]
		if err != nil {
			l.failed, l.gaps.unread = true, true
			readErrs[i] = err
			code, msg := CodeRead, "cannot read file: "+errText(err)
			if _, big := err.(*tooLargeError); big {
				code, msg = CodeTooLarge, err.Error()
			}
			l.diags = append(l.diags, Diagnostic{File: name, Code: code, Severity: string(registry.SeverityError), Message: msg})
			continue
		}
		sums[i] = u.sum[:]
		l.merge(int32(i), u)
	}
	if !l.relink() {
		n := len(l.diags)
		l.link()
		if len(l.diags) == n {
			l.opts.Cache.setLinks(cfg)
		}
	}
	if l.items == 0 && !l.failed && !l.opts.AllowEmpty {
		msg := "the config directory declares no providers, models, model pools or agents"
		if len(w.files) == 0 {
			msg = "the config directory has no config files (*.yaml, *.yml, *.json)"
		}
		l.diags = append(l.diags, Diagnostic{Code: CodeEmpty, Severity: string(registry.SeverityError), Message: msg})
	}
	cfg.Referenced, cfg.Fingerprint = l.fingerprint(sums, readErrs)
	l.opts.Cache.keep(w.files)
	return nil
}

// units returns what each file decodes to, on as many goroutines as the
// machine runs at once; they share nothing but the cache.
func (l *loader) units(files []string, key cacheKey) ([]*unit, []error) {
	units, errs := make([]*unit, len(files)), make([]error, len(files))
	workers := min(runtime.GOMAXPROCS(0), len(files))
	if workers <= 1 {
		for i, name := range files {
			units[i], errs[i] = l.unitOf(name, key)
		}
		return units, errs
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(files); i = int(next.Add(1) - 1) {
				units[i], errs[i] = l.unitOf(files[i], key)
			}
		})
	}
	wg.Wait()
	return units, errs
}

// unitOf returns what file name decodes to: from the cache when its stat,
// or else its bytes, are as they were and so are the variables and files
// its references used; decoded otherwise (and cached).
func (l *loader) unitOf(name string, key cacheKey) (*unit, error) {
	e := l.opts.Cache.get(name, key)
	if e != nil {
		if info, err := fs.Stat(l.fsys, name); err == nil && !l.opts.Reread && e.unchanged(info) && e.unit.current(&l.exp) {
			return e.unit, nil
		}
	}
	readAt := time.Now()
	data, info, err := readFileInfo(l.fsys, name, l.opts.MaxFileSize)
	if err != nil {
		return nil, err
	}
	var u *unit
	if e != nil && e.unit.sum == sha256.Sum256(data) && e.unit.current(&l.exp) {
		u = e.unit
	} else {
		u = l.decodeUnit(name, data)
	}
	l.opts.Cache.put(name, &cached{size: info.Size(), modTime: info.ModTime(), mode: info.Mode(), readAt: readAt, unit: u})
	return u, nil
}

// decodeFile parses the YAML documents of one file and decodes each. A
// syntax error is reported and ends the file (yaml.v3 cannot resume after
// one); the documents before it are kept.
func (l *loader) decodeFile(ix int32, name string, data []byte) {
	if strings.HasSuffix(name, ".json") {
		data = jsonCompat(data)
	}
	d := decoder{l: l, file: name, ix: ix, cur: -1}
	if err := parseYAML(data, d.document); err != nil {
		l.failed = true
		from := 0
		if d.lastDoc != nil {
			from = lineStart(data, maxLine(d.lastDoc)+1)
		}
		l.gaps.addText(data[from:])
		line, msg := syntaxError(err)
		col := 0
		if l, c := problemPlace(data, msg); l > 0 {
			line, col = l, c
		}
		l.diags = append(l.diags, Diagnostic{File: name, Line: line, Column: col, Code: CodeSyntax,
			Severity: string(registry.SeverityError), Message: msg})
	}
}

// maxProblemSearch is the largest file whose syntax errors problemPlace
// looks into: it parses prefixes of the file up to 2·log2(size) times.
const maxProblemSearch = 1 << 20

// problemPlace returns the line and column (1-based, in characters) a YAML
// syntax error is about, or 0, 0. yaml.v3 gives no column, and for the
// line it names where the enclosing block starts ("while parsing a block
// mapping"), which may be far above the mistake, or none at all for the
// first line. The mistake is where the file's prefixes start failing with
// the same message: on the first line L such that the first L lines fail
// that way, at the first byte of L whose prefix does. Shorter prefixes
// parse, or fail differently (at their end). The column is then moved to
// the start of the token that byte is in: a key when the byte is the ":"
// that made it one.
func problemPlace(data []byte, msg string) (line, col int) {
	if len(data) > maxProblemSearch {
		return 0, 0
	}
	fails := func(n int) bool {
		err := parseYAML(data[:n], func(*yaml.Node) {})
		if err == nil {
			return false
		}
		_, m := syntaxError(err)
		return m == msg
	}
	var ends []int // ends[i] is the end of line i+1, newline included
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	if !fails(len(data)) {
		return 0, 0
	}
	// The first failing line, then the first failing prefix within it.
	lo, hi := 1, len(ends)
	for lo < hi {
		if mid := (lo + hi) / 2; fails(ends[mid-1]) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	line = lo
	start := 0
	if line > 1 {
		start = ends[line-2]
	}
	lo, hi = start+1, ends[line-1]
	for lo < hi {
		if mid := (lo + hi) / 2; fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	at := tokenStart(data, start, lo-1, msg)
	return line, utf8.RuneCount(data[start:at]) + 1
}

// tokenStart returns where the token holding data[at] starts, within the
// line that starts at start: for a ":" that ends a key (unless the ":"
// itself is the problem), the key's start.
func tokenStart(data []byte, start, at int, msg string) int {
	if data[at] == ':' {
		if msg == "mapping values are not allowed in this context" {
			return at
		}
		for at > start && (data[at] == ':' || data[at] == ' ' || data[at] == '\t') {
			at--
		}
		if q := data[at]; q == '"' || q == '\'' {
			if open := bytes.LastIndexByte(data[start:at], q); open >= 0 {
				return start + open
			}
		}
	}
	if strings.IndexByte(" \t\r\n,[]{}", data[at]) >= 0 {
		return at
	}
	for at > start && strings.IndexByte(" \t,[]{}", data[at-1]) < 0 {
		at--
	}
	return at
}

// parseYAML calls fn with each YAML document of data in turn. A syntax
// error ends the parse (yaml.v3 cannot resume after one) and is returned;
// the documents before it have been passed to fn.
func parseYAML(data []byte, fn func(*yaml.Node)) error {
	if !multiDocument(data) { // yaml.Unmarshal is a little faster than a Decoder
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return err
		}
		fn(&doc)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fn(&doc)
	}
}

// multiDocument reports whether data may hold more than one YAML document:
// whether a line starts with a document marker ("---" or "...").
func multiDocument(data []byte) bool {
	return bytes.HasPrefix(data, []byte("---")) || bytes.HasPrefix(data, []byte("...")) ||
		bytes.Contains(data, []byte("\n---")) || bytes.Contains(data, []byte("\n..."))
}

// syntaxError takes yaml.v3's "yaml: line 3: did not find expected key"
// apart.
func syntaxError(err error) (line int, msg string) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				return l, after
			}
		}
	}
	return 0, msg
}
