package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRouterFastPathAnswersAsTheServeMux sends the same requests to the router (whose
// literal patterns are served from a map) and to its ServeMux alone: the handler chosen,
// the pattern on the request and the answer must be the same for every one.
func TestRouterFastPathAnswersAsTheServeMux(t *testing.T) {
	rt := newRouter()
	for _, p := range []string{"GET /api/v1/ping", "POST /api/v1/ping", "GET /api/keys", "GET /api/keys/{id}",
		"DELETE /api/keys/{id}", "GET /files/", "GET /exact/{$}", "GET /api/v1/ping/deeper"} {
		rt.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Route", p)
			w.Header().Set("X-Pattern", r.Pattern)
			w.Header().Set("X-Id", r.PathValue("id"))
		})
	}
	if len(rt.exact) != 4 {
		t.Fatalf("%d literal patterns in the map, want 4 (the ones without wildcards or a trailing slash)", len(rt.exact))
	}
	for _, c := range []struct{ method, target string }{
		{"GET", "/api/v1/ping"}, {"POST", "/api/v1/ping"}, {"HEAD", "/api/v1/ping"}, {"PUT", "/api/v1/ping"}, {"PUT", "/api/keys"},
		{"GET", "/api/v1/ping/"}, {"GET", "/api/v1//ping"}, {"GET", "/api/v1/./ping"}, {"GET", "/api/v1/p%69ng"},
		{"GET", "/api%2Fv1/ping"}, {"GET", "/api/v1/ping?x=1"}, {"GET", "/api/keys"}, {"GET", "/api/keys/"},
		{"GET", "/api/keys/k1"}, {"DELETE", "/api/keys/k1"}, {"GET", "/files/a/b"}, {"GET", "/files"},
		{"GET", "/exact/"}, {"GET", "/exact"}, {"GET", "/api/v1/ping/deeper"}, {"GET", "/API/V1/PING"},
		{"OPTIONS", "/api/v1/ping"}, {"GET", "/nope"}, {"GET", "//api/keys?x=1"}, {"GET", "/api/x/../keys"},
		{"DELETE", "/api/keys/./k1"}, {"GET", "/files//a/"}, {"GET", "/nope/../"},
	} {
		req := func() *http.Request { return httptest.NewRequest(c.method, "http://example.com"+c.target, nil) }
		fast, slow := httptest.NewRecorder(), httptest.NewRecorder()
		rt.ServeHTTP(fast, req())
		rt.mux.ServeHTTP(slow, req())
		for _, h := range []string{"X-Route", "X-Pattern", "X-Id", "Location", "Allow"} {
			if fast.Header().Get(h) != slow.Header().Get(h) {
				t.Errorf("%s %s: %s %q, the ServeMux says %q", c.method, c.target, h, fast.Header().Get(h), slow.Header().Get(h))
			}
		}
		if r := req(); fast.Code == http.StatusTemporaryRedirect && slow.Code == fast.Code && cleanPath(r.URL.Path) != r.URL.Path {
			// The same redirect to the clean path, with a JSON body instead of the
			// ServeMux's HTML. (Its redirect of a subtree's path to the path with a slash,
			// /files → /files/, stays its own: the server registers no subtree pattern.)
			if ct := fast.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" || !strings.Contains(fast.Body.String(), `"not_canonical"`) {
				t.Errorf("%s %s: redirect answered %q %q, want JSON", c.method, c.target, ct, fast.Body)
			}
			continue
		}
		if fast.Code != slow.Code || fast.Body.String() != slow.Body.String() {
			t.Errorf("%s %s: %d %q, the ServeMux says %d %q", c.method, c.target, fast.Code, fast.Body, slow.Code, slow.Body)
		}
	}
}

// A request whose target has no path (CONNECT host:port) gets the JSON 404 of every
// unknown route, not the ServeMux's plain text.
func TestRouterAnswersConnectInJSON(t *testing.T) {
	rt := newRouter()
	rt.HandleFunc("GET /api/v1/ping", func(http.ResponseWriter, *http.Request) { t.Error("a CONNECT reached a route") })
	srv := httptest.NewServer(rt)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" ||
		!strings.Contains(string(body), `"code":"not_found"`) {
		t.Fatalf("CONNECT: %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
