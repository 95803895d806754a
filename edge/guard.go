package edge

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// Guard refuses, on a route no token guards, the requests a web page can
// make a browser on the daemon's host send:
//
//   - From a loopback peer, a Host that is not localhost, a loopback
//     address (127.0.0.1, [::1]) or the host of a listen address, with
//     any port or none. A page on evil.example whose name the attacker
//     rebinds to 127.0.0.1 reaches the daemon from a loopback peer, but
//     with Host evil.example. A request without a Host (HTTP/1.0, as some
//     health checkers send) passes: no browser sends one. Other peers are
//     not checked: remote clients use real names, and must use tokens.
//   - From any peer, a cross-origin request with a method that is not
//     safe, as net/http's CrossOriginProtection detects it (the browser's
//     Sec-Fetch-Site, else an Origin that does not match the Host).
//     Requests that send neither header, as non-browser clients do, pass.
//
// A Guard is safe for concurrent use.
type Guard struct {
	names []string     // Host names allowed besides localhost, lower case
	ips   []netip.Addr // Host addresses allowed besides loopback ones
	cop   *http.CrossOriginProtection
}

// NewGuard returns a guard that allows, besides localhost and loopback
// addresses, the given hosts: listen addresses ("host:port") or names
// alone (the machine's); an unspecified address (0.0.0.0, ::) allows
// nothing more.
func NewGuard(listen ...string) *Guard {
	g := &Guard{cop: http.NewCrossOriginProtection()}
	for _, l := range listen {
		h := hostname(l)
		if a, err := netip.ParseAddr(h); err == nil {
			if !a.IsUnspecified() {
				g.ips = append(g.ips, a.Unmap())
			}
			continue
		}
		if h != "" {
			g.names = append(g.names, strings.ToLower(h))
		}
	}
	return g
}

// Check returns the status and error to refuse r with, or 0 and nil when
// r may be served. Call it on routes no token guards.
func (g *Guard) Check(r *http.Request) (int, *Error) {
	if Loopback(r.RemoteAddr) && !g.allowed(r.Host) {
		return http.StatusForbidden, NewError(TypePermission, "host_not_allowed", "",
			"A request from this host must name it as localhost, 127.0.0.1, [::1], the listen address or the machine's name, not "+
				quote(r.Host)+": a web page can rebind its own name to 127.0.0.1. Configure a token to serve other names.")
	}
	if err := g.cop.Check(r); err != nil {
		return http.StatusForbidden, NewError(TypePermission, "cross_origin_request", "",
			"A cross-origin "+r.Method+" from a browser is refused on a route no token guards.")
	}
	return 0, nil
}

// allowed reports whether a loopback peer may name host.
func (g *Guard) allowed(host string) bool {
	if host == "" {
		return true
	}
	h := hostname(host)
	if a, err := netip.ParseAddr(h); err == nil {
		a = a.Unmap()
		if a.IsLoopback() {
			return true
		}
		for _, ip := range g.ips {
			if a == ip {
				return true
			}
		}
		return false
	}
	if strings.EqualFold(h, "localhost") {
		return true
	}
	for _, n := range g.names {
		if strings.EqualFold(h, n) {
			return true
		}
	}
	return false
}

// hostname is the host of "host:port", "[ipv6]:port", "[ipv6]" or "host".
func hostname(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	if len(hostport) > 1 && hostport[0] == '[' && hostport[len(hostport)-1] == ']' {
		return hostport[1 : len(hostport)-1]
	}
	return hostport
}

// quote quotes a client's Host for a message, clipped.
func quote(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strconv.Quote(s)
}

// Loopback reports whether a peer address (r.RemoteAddr) is a loopback
// address, 127.0.0.0/8 or ::1. An address that is not an IP (a Unix
// socket) is not.
func Loopback(remoteAddr string) bool {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap().IsLoopback()
	}
	a, err := netip.ParseAddr(hostname(remoteAddr))
	return err == nil && a.Unmap().IsLoopback()
}
