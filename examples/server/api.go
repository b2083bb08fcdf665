package main

import (
	"net/http"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/httpjson"
)

// apiHandlers serve /api/v1/*: the routes a customer calls with an API key. Each is
// wrapped in protect(scopes...), the whole API-key chain of package guard (authenticate
// → track → scopes → monthly quota and rate limit).
type apiHandlers struct {
	protect func(scopes ...string) func(http.Handler) http.Handler
}

func (h apiHandlers) register(rt *router) {
	rt.Handle("GET /api/v1/ping", h.protect("read")(http.HandlerFunc(h.ping)))
}

// ping answers 200 {"ok":true,"key_id":…}.
//
// The answer is built by hand rather than by encoding/json: this is the route that API
// calls are measured by, reflection was a tenth of the server's own work on it, and a
// key ID is an EcoID (ASCII letters, digits and "_"), which JSON needs no escape for.
func (apiHandlers) ping(w http.ResponseWriter, r *http.Request) {
	k, _ := apikey.KeyFrom(r.Context())
	body := make([]byte, 0, len(pingOpen)+len(k.ID)+len(pingClose))
	body = append(append(append(body, pingOpen...), k.ID...), pingClose...)
	httpjson.WriteEncoded(w, http.StatusOK, body)
}

const pingOpen, pingClose = `{"ok":true,"key_id":"`, "\"}\n"
