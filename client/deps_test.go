package client

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientImportsNoServerDependency walks the imports of client and of every ringer package it reaches:
// each must be the standard library or such a ringer package, so a call service importing the client takes
// on none of the server's dependencies (go-redis, Asynq, the provider SDKs).
func TestClientImportsNoServerDependency(t *testing.T) {
	const module = "github.com/ringer-dev/ringer/"
	seen := map[string]bool{}
	var walk func(dir, from string)
	walk = func(dir, from string) {
		if seen[dir] {
			return
		}
		seen[dir] = true
		fset := token.NewFileSet()
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				switch {
				case strings.HasPrefix(path, module):
					walk(filepath.Join("..", strings.TrimPrefix(path, module)), f)
				case strings.Contains(strings.SplitN(path, "/", 2)[0], "."):
					t.Errorf("%s (reached from %s) imports %s, which is not the standard library", f, from, path)
				}
			}
		}
	}
	walk(".", "client")
}
