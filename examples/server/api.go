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
func (apiHandlers) ping(w http.ResponseWriter, r *http.Request) {
	k, _ := apikey.KeyFrom(r.Context())
	httpjson.Write(w, http.StatusOK, pingAnswer{OK: true, KeyID: string(k.ID)})
}

type pingAnswer struct {
	OK    bool   `json:"ok"`
	KeyID string `json:"key_id"`
}
