// Package docs checks that the repository stands on its own: every relative link of its Markdown files and
// every file its comments and docs cite exists inside it.
package docs

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// mdLink is a Markdown link or image: [text](target) or ![alt](target "title").
	mdLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// citedMarkdown is a Markdown file named anywhere, bare or with its folders.
	citedMarkdown = regexp.MustCompile(`(?:[A-Za-z0-9_.-]*/)*[A-Za-z0-9_-]+\.md\b`)
	// citedPath is a relative path of the repository's own layout: it starts with ./ or ../ or a top-level
	// folder of the repository, and ends with a file name that has an extension.
	citedPath = regexp.MustCompile(`(?:^|[\s(\x60"'])((?:\.\.?/)+(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-]+\.[a-z]{1,5})\b`)
)

// root is the repository: two folders up from this package.
func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r, "go.mod")); err != nil {
		t.Fatalf("%s is not the repository root: %v", r, err)
	}
	return r
}

// textFiles lists the repository's own text files: sources, scripts, docs, configuration. Hidden folders
// (.git), build output and benchmark results are not the repository's text.
func textFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || rel == "bin" || rel == filepath.Join("tests", "bench", "results")) {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".md", ".go", ".js", ".html", ".css", ".sh", ".yml", ".yaml", ".json", ".tmpl", ".txt":
			out = append(out, path)
		case "":
			if d.Name() == "Dockerfile" || filepath.Base(filepath.Dir(path)) == "scripts" {
				out = append(out, path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// inside reports whether path is root or below it.
func inside(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// lines calls f with each line of path and its number.
func lines(t *testing.T, path string, f func(n int, line string)) {
	t.Helper()
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		f(n, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestEveryRelativeMarkdownLinkPointsInsideTheRepository(t *testing.T) {
	r := root(t)
	for _, path := range textFiles(t, r) {
		if filepath.Ext(path) != ".md" {
			continue
		}
		rel, _ := filepath.Rel(r, path)
		fence := false
		lines(t, path, func(n int, line string) {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				fence = !fence
			}
			if fence {
				return
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") || strings.HasPrefix(target, "#") {
					continue
				}
				target, _, _ = strings.Cut(target, "#")
				abs := filepath.Join(filepath.Dir(path), filepath.FromSlash(target))
				switch {
				case !inside(r, abs):
					t.Errorf("%s:%d: link %q leaves the repository", rel, n, m[1])
				case !exists(abs):
					t.Errorf("%s:%d: link %q points at nothing", rel, n, m[1])
				}
			}
		})
	}
}

// TestEveryCitedFileExistsInTheRepository holds comments and docs to one rule: a Markdown file named by its
// bare name exists at the repository's root or in docs/; one named with its folders exists there, from the
// root or from the citing file's folder; a path that starts with ./ or ../ exists from the citing file's
// folder; and a path that starts with a top-level folder of the repository (docs/, scripts/...) exists from
// the root or from the citing file's folder. Nothing cited may lie outside the repository.
func TestEveryCitedFileExistsInTheRepository(t *testing.T) {
	r := root(t)
	var top []string
	entries, err := os.ReadDir(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && e.Name() != "bin" {
			top = append(top, regexp.QuoteMeta(e.Name()))
		}
	}
	layoutPath := regexp.MustCompile(`(?:^|[\s(\x60"'])((?:` + strings.Join(top, "|") + `)/(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_-]+\.[a-z]{1,5})\b`)
	for _, path := range textFiles(t, r) {
		rel, _ := filepath.Rel(r, path)
		dir := filepath.Dir(path)
		lines(t, path, func(n int, line string) {
			for _, name := range citedMarkdown.FindAllString(line, -1) {
				if strings.Contains(line, "://"+name) || strings.Contains(line, "/"+name) && !strings.Contains(name, "/") {
					continue // part of a URL or of a longer path the second pattern checks
				}
				var candidates []string
				if !strings.Contains(name, "/") {
					candidates = []string{filepath.Join(r, name), filepath.Join(r, "docs", name)}
				} else {
					candidates = []string{filepath.Join(r, filepath.FromSlash(name)), filepath.Join(dir, filepath.FromSlash(name))}
				}
				found := false
				for _, c := range candidates {
					if inside(r, c) && exists(c) {
						found = true
					}
				}
				if !found {
					t.Errorf("%s:%d: cites %s, which is not in the repository", rel, n, name)
				}
			}
			for _, m := range layoutPath.FindAllStringSubmatch(line, -1) {
				if !exists(filepath.Join(r, filepath.FromSlash(m[1]))) && !exists(filepath.Join(dir, filepath.FromSlash(m[1]))) {
					t.Errorf("%s:%d: cites %s, which does not exist", rel, n, m[1])
				}
			}
			for _, m := range citedPath.FindAllStringSubmatch(line, -1) {
				abs := filepath.Join(dir, filepath.FromSlash(m[1]))
				switch {
				case !inside(r, abs):
					t.Errorf("%s:%d: cites %s, outside the repository", rel, n, m[1])
				case !exists(abs):
					t.Errorf("%s:%d: cites %s, which does not exist", rel, n, m[1])
				}
			}
		})
	}
}
