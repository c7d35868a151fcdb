package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ringer-dev/ringer/docs"
)

// notInSpec are the routes that are not part of the HTTP contract: the catch-all that answers unknown paths,
// the Asynq dashboard (asynqmon's own HTML and JSON, behind basic auth) and the demo page.
var notInSpec = []string{"/", "/asynq/", "/asynq", "GET /{$}", "/demo/"}

// registeredRoutes reads the patterns api.go registers on its mux (m.Handle and m.HandleFunc with a literal
// pattern), as "METHOD /path".
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "api.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			t.Errorf("a route in api.go is registered with a pattern that is not a literal: the spec check cannot read it")
			return true
		}
		p, _ := strconv.Unquote(lit.Value)
		if !slices.Contains(notInSpec, p) {
			out = append(out, p)
		}
		return true
	})
	if len(out) == 0 {
		t.Fatal("found no route in api.go")
	}
	return out
}

// specRoutes lists the operations of docs/openapi.yaml as "METHOD /path".
func specRoutes(t *testing.T) []string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(docs.OpenAPI(), &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	var out []string
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	return out
}

func TestEveryRouteIsInTheOpenAPISpecAndEveryOperationIsARoute(t *testing.T) {
	server, spec := registeredRoutes(t), specRoutes(t)
	for _, r := range server {
		if !slices.Contains(spec, r) {
			t.Errorf("the server routes %q, which docs/openapi.yaml does not describe", r)
		}
	}
	for _, r := range spec {
		if !slices.Contains(server, r) {
			t.Errorf("docs/openapi.yaml describes %q, which the server does not route", r)
		}
	}
}

func TestTheOpenAPISpecIsServedWithoutAToken(t *testing.T) {
	rec := httptest.NewRecorder()
	newEnv(t).h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/openapi.yaml", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/openapi.yaml: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q, want application/yaml", ct)
	}
	if rec.Body.String() != string(docs.OpenAPI()) {
		t.Errorf("the served document differs from docs/openapi.yaml")
	}
}
