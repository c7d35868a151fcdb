package api

import (
	"net/http"

	"github.com/ringer-dev/ringer/docs"
)

// openAPI is GET /v1/openapi.yaml: the contract in machine-readable form, for client generators and
// validators; like /healthz it needs no token.
func (s *server) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(docs.OpenAPI())
}
