// Package docs carries the documents the program itself serves: the OpenAPI description of the HTTP API
// (openapi.yaml, beside API.md, which says the same in prose). It lives here, with the docs, because go:embed
// reaches only files in or below the embedding package's folder.
package docs

import _ "embed"

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document of the HTTP API, as served at GET /v1/openapi.yaml.
func OpenAPI() []byte { return append([]byte(nil), openAPI...) }
