package registry

import (
	"strings"
)

// Namespaces of registry resources, as awaken names them.
const (
	NSProviders  = "providers"
	NSModels     = "models"
	NSModelPools = "model_pools"
	NSAgents     = "agents"
	NSClients    = "clients" // awakend's own kind
	NSPlugins    = "plugins"
)

// Graph diagnostic codes, as awaken names them.
const (
	CodeAgentMissingModel              = "agent_missing_model"
	CodeModelMissingProvider           = "model_missing_provider"
	CodeModelPoolMissingModel          = "model_pool_missing_model"
	CodeAgentMissingPlugin             = "agent_missing_plugin"
	CodeAgentMissingDelegate           = "agent_missing_delegate"
	CodeAgentHookFilterPluginNotLoaded = "agent_hook_filter_plugin_not_loaded"
)

// Spec rule codes: what a single resource says about itself.
const (
	CodeRequired            = "required"                 // an id or reference is empty
	CodeInvalidTokenLimit   = "invalid_token_limit"      // a token limit is zero or exceeds the context window
	CodeInvalidDate         = "invalid_knowledge_cutoff" // not a real YYYY-MM or YYYY-MM-DD date
	CodeInvalidPrice        = "invalid_price"            // negative, NaN or infinite price
	CodeInvalidModality     = "invalid_modality"         // unknown or repeated modality
	CodePoolNoMembers       = "pool_no_members"          // pool without members or without a home-eligible member
	CodePoolInvalidWeight   = "pool_invalid_weight"      // weight of zero
	CodePoolDuplicateMember = "pool_duplicate_member"    // the same model twice in a pool
	CodeInvalidEnum         = "invalid_value"            // a value outside its enumeration
	CodeInvalidEndpoint     = "invalid_endpoint"         // remote endpoint url or auth is unusable
	CodeInvalidReasoning    = "invalid_reasoning_effort" // budget of zero
	CodeDuplicateID         = "duplicate_id"             // an id registered twice
	CodeAmbiguousID         = "ambiguous_id"             // an agent id equal to a model or pool id
)

// Severity of a diagnostic. awakend reports errors only, as awaken does.
type Severity string

// SeverityError marks a problem that keeps a set from being built.
const SeverityError Severity = "error"

// Ref names a registry resource.
type Ref struct {
	Namespace string `json:"namespace"`
	ID        string `json:"id"`
}

// Diagnostic is one problem found while validating a set.
//
// Field is the path of the offending value inside the resource, in the
// resource's own field names: "model_id", "members.1.model_id",
// "plugin_ids.0". The config loader maps it to a file position.
type Diagnostic struct {
	Code      string   `json:"code"`
	Severity  Severity `json:"severity"`
	Resource  Ref      `json:"resource"`
	DependsOn *Ref     `json:"depends_on,omitempty"`
	Field     string   `json:"-"`
	Message   string   `json:"message"`
}

func (d Diagnostic) String() string { return d.Message }

// ValidationError reports every problem that kept a set from being built.
type ValidationError struct {
	Diagnostics []Diagnostic
}

// Error joins the messages as awaken does: "registry validation failed: a; b".
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("registry validation failed: ")
	for i, d := range e.Diagnostics {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(d.Message)
	}
	return b.String()
}

// newValidationError deduplicates diagnostics, keeping the first of each
// (code, resource, depends-on, message), and returns nil when none remain.
func newValidationError(diags []Diagnostic) *ValidationError {
	if len(diags) == 0 {
		return nil
	}
	type key struct {
		code, ns, id, depNS, depID, msg string
	}
	seen := make(map[key]bool, len(diags))
	out := diags[:0:0]
	for _, d := range diags {
		k := key{code: d.Code, ns: d.Resource.Namespace, id: d.Resource.ID, msg: d.Message}
		if d.DependsOn != nil {
			k.depNS, k.depID = d.DependsOn.Namespace, d.DependsOn.ID
		}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, d)
	}
	return &ValidationError{Diagnostics: out}
}
