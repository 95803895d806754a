package config

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"

	"github.com/awakend/awakend/internal/digest"
)

// fingerprint lists the referenced files and hashes every input: the
// SHA-256 of each config file (sums), its contents' own hash, and the
// contents of each referenced file.
func (l *loader) fingerprint(sums [][]byte, readErrs []error) ([]string, string) {
	h := sha256.New()
	order := make([]int, len(l.cfg.Files))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(l.cfg.Files[a], l.cfg.Files[b]) })
	for _, i := range order {
		digest.Input(h, 'f', l.cfg.Files[i], sums[i], readErrs[i])
	}
	keys := make([]refKey, 0, len(l.exp.files))
	for k := range l.exp.files {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b refKey) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return boolCompare(a.credential, b.credential)
	})
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		f := l.exp.files[k]
		tag := byte('r')
		if k.credential {
			tag = 'c'
		}
		digest.Input(h, tag, k.name, f.data, f.err)
		if len(names) == 0 || names[len(names)-1] != k.name {
			names = append(names, k.name)
		}
	}
	return names, hex.EncodeToString(h.Sum(nil))
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
