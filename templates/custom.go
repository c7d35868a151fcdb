package templates

import (
	"text/template"
	"text/template/parse"
)

// trie holds the key paths under .Custom that a template names: {{.Custom.a.b}} adds a → b. Render fills
// them in when missing so that they print empty rather than text/template's "<no value>".
type trie struct {
	kids map[string]*trie
}

func (t *trie) child(k string) *trie {
	if t == nil {
		return nil
	}
	return t.kids[k]
}

func (t *trie) add(path []string) {
	for _, k := range path {
		if t.kids == nil {
			t.kids = make(map[string]*trie)
		}
		c := t.kids[k]
		if c == nil {
			c = &trie{}
			t.kids[k] = c
		}
		t = c
	}
}

// populate sets every named path of m to s, making the maps on the way.
func (t *trie) populate(m map[string]any, s string) {
	if t == nil {
		return
	}
	for k, c := range t.kids {
		if len(c.kids) == 0 {
			m[k] = s
			continue
		}
		sub := make(map[string]any)
		c.populate(sub, s)
		m[k] = sub
	}
}

// customKeys collects the .Custom paths named anywhere in t and its associated templates, as a field of
// dot ({{.Custom.a}}) or of the root ({{$.Custom.a}}).
func customKeys(t *template.Template) *trie {
	root := &trie{}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			walk(tt.Tree.Root, root)
		}
	}
	return root
}

// walkEach walks each of a node's children.
func walkEach[N parse.Node](nodes []N, root *trie) {
	for _, c := range nodes {
		walk(c, root)
	}
}

func walk(n parse.Node, root *trie) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			walkEach(n.Nodes, root)
		}
	case *parse.ActionNode:
		walk(n.Pipe, root)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, root)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, root)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, root)
	case *parse.TemplateNode:
		walk(n.Pipe, root)
	case *parse.PipeNode:
		if n != nil {
			walkEach(n.Cmds, root)
		}
	case *parse.CommandNode:
		walkEach(n.Args, root)
	case *parse.ChainNode:
		walk(n.Node, root)
	case *parse.FieldNode:
		if len(n.Ident) >= 2 && n.Ident[0] == "Custom" {
			root.add(n.Ident[1:])
		}
	case *parse.VariableNode:
		if len(n.Ident) >= 3 && n.Ident[0] == "$" && n.Ident[1] == "Custom" {
			root.add(n.Ident[2:])
		}
	}
}

func walkBranch(b *parse.BranchNode, root *trie) {
	walk(b.Pipe, root)
	walk(b.List, root)
	walk(b.ElseList, root)
}

// view is the copy of a custom value that templates see: strings cut to FieldLimit, JSON nulls as empty
// strings, and the paths of t present (empty strings at the leaves, maps on the way). The caller's value is
// not modified.
func view(v any, t *trie) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = view(x, t.child(k))
		}
		if t != nil {
			for k, c := range t.kids {
				if _, ok := v[k]; !ok {
					out[k] = view(nil, c)
				}
			}
		}
		return out
	case nil:
		if t == nil || len(t.kids) == 0 {
			return ""
		}
		return view(map[string]any(nil), t)
	case string:
		return Truncate(v, FieldLimit)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = view(x, nil)
		}
		return out
	}
	return v
}
