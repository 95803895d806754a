package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/awakend/awakend/registry"
)

// secretMark stands for a secret in both sets being compared: the daemon
// serves whether a secret is set, never its value, so diff compares
// presence only.
const secretMark = "(set)"

// diff prints what reloading DIR would change in the running daemon.
func diff(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	oneShot()
	fs := flagSet("diff", stderr)
	sf := addSettingsFlags(fs, false)
	df := addDaemonFlags(fs, 30*time.Second, "the daemon")
	if err := parseInterspersed(fs, args); err != nil {
		return usageError(err)
	}
	s, dir, err := settingsAndDir(fs, sf)
	if err != nil {
		return err
	}
	next, rep, err := loadDir(dir, s)
	if err != nil {
		return err
	}
	if next == nil {
		for _, d := range rep.Diagnostics {
			fmt.Fprintln(stderr, d.String())
		}
		fmt.Fprintf(stderr, "awakend: %s does not validate (%s); a reload would be rejected\n", dir, rep.Summary)
		return invalid(errReported)
	}
	c, err := daemonClient(*sf.file, df)
	if err != nil {
		return err
	}
	running, version, err := fetchRunning(ctx, c)
	if err != nil {
		return err
	}
	changes := registry.Diff(running, comparable(next))
	if changes.Empty() {
		fmt.Fprintf(stdout, "no changes: %s matches the running version %d\n", dir, version)
		return nil
	}
	fmt.Fprintf(stdout, "reloading %s would change version %d:\n", dir, version)
	for _, ch := range changes {
		sign := map[string]string{registry.OpAdded: "+", registry.OpChanged: "~", registry.OpRemoved: "-"}[ch.Op]
		line := fmt.Sprintf("  %s %s %s", sign, strings.TrimSuffix(ch.Namespace, "s"), ch.ID)
		if len(ch.Fields) > 0 {
			line += " (" + strings.Join(ch.Fields, ", ") + ")"
		}
		fmt.Fprintln(stdout, line)
		if ch.Namespace == registry.NSProviders && ch.Op == registry.OpRemoved {
			var pv registry.RemovalPreview
			if _, err := c.do(ctx, http.MethodGet, "/api/v1/providers/"+pathEscape(ch.ID)+"/removal-preview", nil, &pv); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "      bound models %v, model pools %v, agents %v\n", pv.ModelIDs, pv.PoolIDs, pv.AgentIDs)
		}
	}
	fmt.Fprintln(stdout, changes.String())
	return nil
}

// fetchRunning rebuilds the running daemon's set from the read API.
func fetchRunning(ctx context.Context, c *client) (*registry.Set, uint64, error) {
	var st struct {
		apiError
		Version uint64 `json:"version"`
	}
	var providers struct {
		Data []struct {
			registry.ProviderSpec
			HasAPIKey      bool `json:"has_api_key"`
			AdapterOptions *struct {
				HeaderNames []string `json:"header_names"`
			} `json:"adapter_options"`
		} `json:"data"`
	}
	var models struct {
		Data []registry.ModelSpec `json:"data"`
	}
	var pools struct {
		Data []registry.PoolSpec `json:"data"`
	}
	var agents struct {
		Data []struct {
			registry.AgentSpec
			Endpoint *struct {
				registry.Endpoint
				Auth *struct {
					Type     string `json:"type"`
					HasToken bool   `json:"has_token"`
				} `json:"auth"`
			} `json:"endpoint"`
		} `json:"data"`
	}
	for path, out := range map[string]any{
		"/api/v1/status": &st, "/api/v1/providers": &providers, "/api/v1/models": &models,
		"/api/v1/model-pools": &pools, "/api/v1/agents": &agents,
	} {
		code, err := c.do(ctx, http.MethodGet, path, nil, out)
		if err != nil {
			return nil, 0, err
		}
		if code != http.StatusOK {
			return nil, 0, fmt.Errorf("GET %s: HTTP %d", path, code)
		}
	}
	var u registry.Update
	for _, p := range providers.Data {
		spec := p.ProviderSpec
		if p.HasAPIKey {
			spec.APIKey = secretMark
		}
		if p.AdapterOptions != nil {
			spec.AdapterOptions.Headers = map[string]string{}
			for _, h := range p.AdapterOptions.HeaderNames {
				spec.AdapterOptions.Headers[h] = secretMark
			}
		}
		u.Providers = append(u.Providers, registry.Provider{Spec: spec})
	}
	u.Models, u.Pools = models.Data, pools.Data
	for _, a := range agents.Data {
		spec := a.AgentSpec
		if e := a.Endpoint; e != nil {
			ep := e.Endpoint
			if e.Auth != nil {
				ep.Auth = &registry.EndpointAuth{Type: e.Auth.Type}
				if e.Auth.HasToken {
					ep.Auth.Token = secretMark
				}
			}
			spec.Endpoint = &ep
		}
		u.Agents = append(u.Agents, spec)
	}
	set, err := registry.Rebuild(nil, u)
	if err != nil {
		return nil, 0, fmt.Errorf("the running registry as served does not rebuild: %w", err)
	}
	return set, st.Version, nil
}

// comparable replaces the secrets of a local set by presence marks, as the
// daemon serves them.
func comparable(s *registry.Set) *registry.Set {
	d := registry.NewDraft(s)
	for id, p := range d.Providers {
		if p.Spec.APIKey != "" {
			p.Spec.APIKey = secretMark
		}
		if h := p.Spec.AdapterOptions.Headers; len(h) > 0 {
			h = maps.Clone(h)
			for k := range h {
				h[k] = secretMark
			}
			p.Spec.AdapterOptions.Headers = h
		}
		d.Providers[id] = p
	}
	for id, a := range d.Agents {
		if a.Endpoint != nil && a.Endpoint.Auth != nil && a.Endpoint.Auth.Token != "" {
			ep := *a.Endpoint
			auth := *ep.Auth
			auth.Token = secretMark
			ep.Auth = &auth
			a.Endpoint = &ep
			d.Agents[id] = a
		}
	}
	out, err := d.Build()
	if err != nil {
		return s // cannot happen: only secrets changed
	}
	return out
}

func pathEscape(s string) string { return url.PathEscape(s) }
