package config

import (
	"bytes"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Cache keeps the parsed YAML documents of config files from one Load to
// the next, keyed by path and checked against the file's bytes, so that a
// reload of a large directory parses only the files that changed. Parsed
// documents are only read, never changed, by the decoder. A nil *Cache
// caches nothing. A Cache may be shared by concurrent loads.
type Cache struct {
	mu    sync.Mutex
	files map[string]*parsed
}

// parsed is one file's parse: its bytes, its documents and the syntax
// error that ended the parse, if any.
type parsed struct {
	data []byte
	docs []*yaml.Node
	err  error
}

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{files: map[string]*parsed{}} }

// parse calls fn with each document of data, from the cache when the file
// at name had these exact bytes last time.
func (c *Cache) parse(name string, data []byte, fn func(*yaml.Node)) error {
	if c == nil {
		return parseYAML(data, fn)
	}
	c.mu.Lock()
	p, ok := c.files[name]
	c.mu.Unlock()
	if !ok || !bytes.Equal(p.data, data) {
		p = &parsed{data: data}
		p.err = parseYAML(data, func(doc *yaml.Node) { p.docs = append(p.docs, doc) })
		c.mu.Lock()
		c.files[name] = p
		c.mu.Unlock()
	}
	for _, doc := range p.docs {
		fn(doc)
	}
	return p.err
}

// keep drops the entries of files that are no longer in the directory.
func (c *Cache) keep(names []string) {
	if c == nil {
		return
	}
	live := make(map[string]bool, len(names))
	for _, n := range names {
		live[n] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := range c.files {
		if !live[n] {
			delete(c.files, n)
		}
	}
}

// Len returns the number of files cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.files)
}
