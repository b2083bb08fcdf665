package auth

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ErrInvalidProxy means a trusted-proxy list holds an entry that is neither an IP
// address nor a CIDR prefix.
var ErrInvalidProxy = errors.New("auth: invalid trusted proxy")

// ParseTrustedProxies parses a comma-separated list of IP addresses and CIDR prefixes
// ("10.0.0.0/8, 192.0.2.7, 2001:db8::/32") as TrustProxies takes it. Blank entries are
// skipped; an empty list gives nil. Any other entry returns an error wrapping
// ErrInvalidProxy that names it.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%w: %q is not an IP address or CIDR prefix", ErrInvalidProxy, f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// TrustProxies returns middleware for a service behind reverse proxies or load
// balancers: for a request whose peer (r.RemoteAddr) is one of proxies, it sets
// r.RemoteAddr to the client the proxies saw, so ClientFromRequest, and with it the
// login throttle's per-client counter and the activity log, sees the real client. The
// client is the rightmost X-Forwarded-For entry that is not itself a trusted proxy
// (entries left of it can be forged by the client; the leftmost when every entry is
// trusted). A request from any other peer is passed on unchanged, so clients cannot
// choose their address by sending the header. With no proxies it returns next as is.
// Without it, behind a proxy, every client shares the proxy's address and the
// per-(email, client) throttle degrades to per email.
func TrustProxies(proxies []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if len(proxies) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ip, ok := forwardedClient(r, proxies); ok {
				r2 := r.Clone(r.Context())
				r2.RemoteAddr = net.JoinHostPort(ip.String(), "0")
				r = r2
			}
			next.ServeHTTP(w, r)
		})
	}
}

// forwardedClient returns the client address X-Forwarded-For names, when r's peer is a
// trusted proxy and the entry is a valid address.
func forwardedClient(r *http.Request, proxies []netip.Prefix) (netip.Addr, bool) {
	trusted := func(a netip.Addr) bool {
		for _, p := range proxies {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !trusted(peer.Unmap().WithZone("")) {
		return netip.Addr{}, false
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	var client netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false // a malformed hop: keep the proxy's address
		}
		client = a.Unmap().WithZone("")
		if !trusted(client) {
			return client, true
		}
	}
	return client, client.IsValid()
}
