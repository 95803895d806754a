package config

import (
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/registry"
)

// document decodes one YAML document: a fragment with any of the four
// resource lists.
func (d *decoder) document(doc *yaml.Node) {
	if d.stopped {
		d.l.gaps.addNode(doc)
		return
	}
	d.lastDoc = doc
	if len(doc.Content) == 0 {
		return
	}
	root := d.deref(doc.Content[0])
	if d.stopped || root.Kind == yaml.ScalarNode && root.Tag == tagNull {
		return
	}
	if root.Kind != yaml.MappingNode {
		d.l.failed = true
		d.l.gaps.addNode(root)
		d.diag(root, CodeType, "a config file must be a mapping with providers, models, model_pools or agents, got "+kindName(root))
		return
	}
	var seen [len(kinds)]bool
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := d.deref(root.Content[i])
		if d.stopped {
			return
		}
		kd := slices.Index(topLevelKeys, k.Value)
		if k.Kind != yaml.ScalarNode || kd < 0 || seen[kd] {
			d.l.gaps.addNode(root.Content[i+1]) // not decoded
		}
		switch {
		case k.Kind != yaml.ScalarNode:
			d.l.failed = true
			d.diag(k, CodeType, "top-level keys must be strings, got "+kindName(k))
		case kd < 0:
			d.l.failed = true
			hint := hint(k.Value, topLevelKeys)
			if hint == "" {
				hint = " (want providers, models, model_pools or agents)"
			}
			d.diag(k, CodeUnknownKey, "unknown top-level key "+strconv.Quote(truncate(k.Value))+hint)
		case seen[kd]:
			d.l.failed = true
			d.diag(k, CodeDuplicateKey, "duplicate key "+strconv.Quote(k.Value)+firstAt(root, i))
		default:
			seen[kd] = true
			d.resources(kind(kd), root.Content[i+1])
		}
	}
}

// resources decodes one of the four lists.
func (d *decoder) resources(kd kind, n *yaml.Node) {
	n = d.deref(n)
	if d.stopped || n.Kind == yaml.ScalarNode && n.Tag == tagNull {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.l.failed = true
		d.l.gaps.addNode(n)
		d.diag(n, CodeType, kinds[kd].list+" must be a list, got "+kindName(n))
		return
	}
	for i, item := range n.Content {
		d.l.items++
		d.resource(kd, i, item)
		if d.stopped {
			return
		}
	}
}

// resource decodes one resource and records it.
func (d *decoder) resource(kd kind, i int, item *yaml.Node) {
	n := d.deref(item)
	if d.stopped {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.l.failed = true
		d.l.gaps.addNode(n)
		d.diag(n, CodeType, kinds[kd].list+"["+strconv.Itoa(i)+"] must be a mapping, got "+kindName(n))
		return
	}
	l := d.l
	_, r := l.cfg.resources.add()
	*r = resource{
		kind: kd, index: int32(i), file: d.ix,
		line: int32(item.Line), col: int32(item.Column), // an alias item ("- *a") is placed where it is written
		start: l.cfg.fields.len(),
		ref:   registry.Ref{Namespace: kinds[kd].list, ID: idSource(n)},
	}
	d.res, d.cur = r, -1
	var id string
	switch kd { // each spec is decoded in place
	case kindProvider:
		var p *provider
		r.spec, p = l.providers.add()
		id = d.provider(n, p)
	case kindModel:
		var m *model
		r.spec, m = l.models.add()
		id = d.model(n, m)
	case kindPool:
		var p *pool
		r.spec, p = l.pools.add()
		id = d.pool(n, p)
	case kindAgent:
		var a *agent
		r.spec, a = l.agents.add()
		id = d.agent(n, a)
	case kindClient:
		var c *client
		r.spec, c = l.clients.add()
		id = d.client(n, c)
	}
	r.end = l.cfg.fields.len()
	r.key = registry.Ref{Namespace: r.ref.Namespace, ID: id}
	r.skip = id == "" || d.stopped
	if id == "" && !r.tainted("id") {
		if at, ok := l.cfg.find(r, "id"); ok {
			r.taint = append(r.taint, "id")
			l.diags = append(l.diags, Diagnostic{File: d.file, Line: int(at.line), Column: int(at.col),
				Code: registry.CodeRequired, Severity: string(registry.SeverityError), Resource: &r.ref,
				Message: "id of " + r.label() + " must not be empty"})
		}
	}
	d.res = nil
}

// idSource returns the id of a resource mapping as written, "" if it has
// none that is a scalar.
func idSource(n *yaml.Node) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "id" && n.Content[i].Kind == yaml.ScalarNode {
			if v := peek(n.Content[i+1]); v.Kind == yaml.ScalarNode && v.Tag != tagNull {
				return v.Value
			}
			return ""
		}
	}
	return ""
}
