package edge

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"
)

// Keys is a set of bearer tokens, kept as SHA-256 sums so that every
// comparison takes the same time whatever the token's length. The zero
// value and nil are the empty set.
type Keys struct {
	sums [][sha256.Size]byte
}

// NewKeys returns the set of tokens; empty tokens are left out, so that
// an empty bearer token never matches.
func NewKeys(tokens ...string) *Keys {
	k := &Keys{}
	for _, t := range tokens {
		if t != "" {
			k.sums = append(k.sums, sha256.Sum256([]byte(t)))
		}
	}
	return k
}

// Len is the number of keys; 0 means no token guards the routes.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.sums)
}

// Match reports whether token is one of the keys. Every key is compared,
// each in constant time.
func (k *Keys) Match(token string) bool {
	if k.Len() == 0 || token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	match := 0
	for i := range k.sums {
		match |= subtle.ConstantTimeCompare(sum[:], k.sums[i][:])
	}
	return match == 1
}

// KeysVar holds a Keys that a reload replaces while requests read it, as
// slog.LevelVar holds a level. The zero value holds the empty set.
type KeysVar struct{ p atomic.Pointer[Keys] }

// NewKeysVar returns a KeysVar holding k.
func NewKeysVar(k *Keys) *KeysVar {
	v := &KeysVar{}
	v.Store(k)
	return v
}

// Load returns the keys; nil (the empty set) for a nil v.
func (v *KeysVar) Load() *Keys {
	if v == nil {
		return nil
	}
	return v.p.Load()
}

// Store replaces the keys; requests that loaded the old ones finish with
// them.
func (v *KeysVar) Store(k *Keys) { v.p.Store(k) }

// Bearer returns the token of the request's "Authorization: Bearer
// <token>" header (the scheme in any case); ok is false without one.
func Bearer(r *http.Request) (token string, ok bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// APIKey returns the token of the request's x-api-key header, the way
// Anthropic's clients send their key; ok is false without one.
func APIKey(r *http.Request) (token string, ok bool) {
	token = strings.TrimSpace(r.Header.Get("X-Api-Key"))
	return token, token != ""
}
