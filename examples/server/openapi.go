package main

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 description of every route (openapi.yaml beside this file);
// openapi_test.go checks it against the router and against live answers.
//
//go:embed openapi.yaml
var openAPI []byte

// serveOpenAPI answers GET /openapi.yaml with the description.
func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(openAPI)
}
