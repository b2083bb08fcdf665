package auth_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/nexus-ecosystem/nexus/auth"
)

func TestParseTrustedProxies(t *testing.T) {
	got, err := auth.ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7 ,,2001:db8::1/32, ::ffff:198.51.100.1")
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.1/32")}
	if err != nil || len(got) != len(want) {
		t.Fatalf("%v, %v", got, err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: %v, want %v", i, got[i], want[i])
		}
	}
	if p, err := auth.ParseTrustedProxies(""); p != nil || err != nil {
		t.Fatalf("empty: %v, %v", p, err)
	}
	for _, bad := range []string{"proxy.example.com", "10.0.0.0/33", "10.0.0.1,x", "fe80::1%eth0"} {
		if _, err := auth.ParseTrustedProxies(bad); !errors.Is(err, auth.ErrInvalidProxy) {
			t.Errorf("%q: %v, want ErrInvalidProxy", bad, err)
		}
	}
}

// clientVia runs a request from peer with the given X-Forwarded-For headers through
// TrustProxies and returns the IP ClientFromRequest then sees.
func clientVia(proxies []netip.Prefix, peer string, xff ...string) string {
	var got string
	h := auth.TrustProxies(proxies)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = auth.ClientFromRequest(r).IP
	}))
	r := httptest.NewRequest("POST", "/api/auth/login", nil)
	r.RemoteAddr = peer
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	h.ServeHTTP(httptest.NewRecorder(), r)
	return got
}

func TestTrustProxies(t *testing.T) {
	lb, _ := auth.ParseTrustedProxies("10.0.0.0/8")
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"the proxy's client", "10.0.0.5:4242", []string{"203.0.113.9"}, "203.0.113.9"},
		{"a forged entry left of the real one", "10.0.0.5:4242", []string{"1.2.3.4, 203.0.113.9"}, "203.0.113.9"},
		{"several proxies", "10.0.0.5:4242", []string{"203.0.113.9, 10.1.1.1", "10.2.2.2"}, "203.0.113.9"},
		{"only proxies", "10.0.0.5:4242", []string{"10.9.9.9"}, "10.9.9.9"},
		{"no header", "10.0.0.5:4242", nil, "10.0.0.5"},
		{"a malformed hop", "10.0.0.5:4242", []string{"203.0.113.9, nonsense"}, "10.0.0.5"},
		{"IPv4-mapped", "[::ffff:10.0.0.5]:4242", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"an untrusted peer's header is ignored", "198.51.100.1:4242", []string{"203.0.113.9"}, "198.51.100.1"},
	} {
		if got := clientVia(lb, c.peer, c.xff...); got != c.want {
			t.Errorf("%s: client %q, want %q", c.name, got, c.want)
		}
	}
	if got := clientVia(nil, "10.0.0.5:4242", "203.0.113.9"); got != "10.0.0.5" {
		t.Errorf("without trusted proxies the header is ignored: %q", got)
	}
}

// FuzzTrustedProxies: no panic; what the middleware hands on is the peer or a valid
// address taken from the header.
func FuzzTrustedProxies(f *testing.F) {
	for _, s := range [][2]string{{"10.0.0.0/8", "203.0.113.9"}, {"10.0.0.1", "1.1.1.1, 10.0.0.2"}, {"::/0", "::1"}, {"", ""}, {"10.0.0.0/8,x", "y"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, list, xff string) {
		proxies, err := auth.ParseTrustedProxies(list)
		if err != nil {
			if !errors.Is(err, auth.ErrInvalidProxy) {
				t.Fatalf("error %v does not wrap ErrInvalidProxy", err)
			}
			return
		}
		got := clientVia(proxies, "10.0.0.5:1", xff)
		if got == "10.0.0.5" {
			return
		}
		a, err := netip.ParseAddr(got)
		if err != nil {
			t.Fatalf("client %q is not an address (header %q)", got, xff)
		}
		for _, hop := range strings.Split(xff, ",") {
			if h, err := netip.ParseAddr(strings.TrimSpace(hop)); err == nil && h.Unmap().WithZone("") == a {
				return
			}
		}
		t.Fatalf("client %q is not in the header %q", got, xff)
	})
}
