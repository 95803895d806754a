package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
)

// ClientSpec is a client of the gateway, awakend's own kind: the key it
// presents and what it may call. Exactly one of Key and KeySHA256 is set.
type ClientSpec struct {
	ID          string
	Description string
	// Key is the client's key, a secret: never logged or served.
	Key string
	// KeySHA256 is the hex SHA-256 of the key, for a directory that holds
	// no secret.
	KeySHA256 string
	// Models are the ids of the models, pools and agents the client may
	// call; nil means all of them, empty none.
	Models []string
	Limits ClientLimits
}

// ClientLimits cap what one client may do on one daemon; nil is no limit.
type ClientLimits struct {
	RequestsPerMinute *uint32
	TokensPerMinute   *uint32
}

// KeyHash is the SHA-256 of the client's key: Key hashed, or KeySHA256
// decoded. ok is false when neither gives one.
func (c ClientSpec) KeyHash() (h [sha256.Size]byte, ok bool) {
	if c.Key != "" {
		return sha256.Sum256([]byte(c.Key)), true
	}
	b, err := hex.DecodeString(c.KeySHA256)
	if err != nil || len(b) != sha256.Size {
		return h, false
	}
	return [sha256.Size]byte(b), true
}

// May reports whether the client may call id (a model, pool or agent).
func (c ClientSpec) May(id string) bool { return c.Models == nil || slices.Contains(c.Models, id) }

// Client codes.
const (
	CodeClientMissingModel = "client_missing_model" // a scope entry names no model, pool or agent
	CodeClientKey          = "client_key"           // no key, both forms, or a malformed hash
	CodeClientDuplicateKey = "client_duplicate_key" // two clients with one key
	CodeClientLimit        = "client_limit"         // a limit of zero
)

// CheckClient reports the rules a client spec breaks on its own.
func CheckClient(cl ClientSpec) []Diagnostic {
	c := checker{ref: Ref{NSClients, cl.ID}, kind: "client"}
	c.required("id", cl.ID)
	switch {
	case cl.Key != "" && cl.KeySHA256 != "":
		c.add(CodeClientKey, "key_sha256", "set key or key_sha256, not both")
	case cl.Key == "" && cl.KeySHA256 == "":
		c.add(CodeClientKey, "key", "needs a key (key, normally ${credential:NAME}) or its hash (key_sha256)")
	case cl.Key == "":
		if _, ok := cl.KeyHash(); !ok {
			c.add(CodeClientKey, "key_sha256", "key_sha256 must be 64 hexadecimal digits, the SHA-256 of the key")
		}
	}
	c.ids("models", cl.Models)
	for _, l := range []struct {
		field string
		v     *uint32
	}{{"limits.requests_per_minute", cl.Limits.RequestsPerMinute}, {"limits.tokens_per_minute", cl.Limits.TokensPerMinute}} {
		if l.v != nil && *l.v == 0 {
			c.add(CodeClientLimit, l.field, "%s must be greater than 0 (leave it out for no limit)", l.field)
		}
	}
	return c.diags
}

// Client returns the client with the given id.
func (s *Set) Client(id string) (ClientSpec, bool) { return get(s.clients, id) }

// ClientIDs returns the client ids in sorted order. The slice is shared.
func (s *Set) ClientIDs() []string { return s.clientIDs }

// ClientByKey returns the client whose key hashes to h. It takes no lock
// and allocates nothing.
func (s *Set) ClientByKey(h [sha256.Size]byte) (ClientSpec, bool) {
	id, ok := s.clientKeys[h]
	if !ok {
		return ClientSpec{}, false
	}
	return *s.clients[id], true
}

// indexClients builds the key index and reports clients that share a key,
// naming both, and scope entries that name nothing.
func (s *Set) indexClients() []Diagnostic {
	var diags []Diagnostic
	s.clientKeys = make(map[[sha256.Size]byte]string, len(s.clients))
	for _, id := range s.clientIDs {
		c := s.clients[id]
		diags = append(diags, CheckClient(*c)...)
		if h, ok := c.KeyHash(); ok {
			if other, dup := s.clientKeys[h]; dup {
				diags = append(diags, Diagnostic{
					Code: CodeClientDuplicateKey, Severity: SeverityError,
					Resource: Ref{NSClients, id}, DependsOn: &Ref{NSClients, other}, Field: keyField(*c),
					Message: "client '" + id + "' has the same key as client '" + other + "' (each client needs a key of its own)",
				})
			} else {
				s.clientKeys[h] = id
			}
		}
		for i, m := range c.Models {
			if m == "" || s.isModelOrPool(m) {
				continue
			}
			if _, ok := s.agents[m]; ok {
				continue
			}
			dep := Ref{NSModels, m}
			diags = append(diags, Diagnostic{
				Code: CodeClientMissingModel, Severity: SeverityError,
				Resource: Ref{NSClients, id}, DependsOn: &dep, Field: "models." + strconv.Itoa(i),
				Message: "client '" + id + "' may call missing model, pool or agent '" + m + "'" + didYouMean(m, s.modelIDs, s.poolIDs, s.agentIDs),
			})
		}
	}
	return diags
}

func keyField(c ClientSpec) string {
	if c.Key != "" {
		return "key"
	}
	return "key_sha256"
}
