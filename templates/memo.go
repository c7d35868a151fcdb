package templates

import (
	"text/template"
	"text/template/parse"
)

// A Memo renders one event of one call for many receivers, as a notification task does for its members: a
// text whose templates cannot see the receiver is rendered once for each platform and locale and then
// reused. Every Render through a Memo must have the same event and the same Data but for ReceiverID and
// Locale. A Memo is for one goroutine.
type Memo struct {
	s    *Set
	done map[key]Rendered
}

// Memo returns an empty Memo of s.
func (s *Set) Memo() *Memo { return &Memo{s: s, done: map[key]Rendered{}} }

// Render is Set.Render, reusing what it rendered before for the same platform and locale when the templates
// it would run cannot see the receiver.
func (m *Memo) Render(event, platform string, d Data) (Rendered, error) {
	k := key{event, platform, d.Locale}
	if r, ok := m.done[k]; ok {
		return r, nil
	}
	p, ok := m.s.pair(event, platform, d.Locale)
	if !ok {
		return Rendered{}, unknownPair(event, platform)
	}
	r, err := m.s.render(p, event, platform, d)
	if err != nil {
		return r, err
	}
	if !p.title.readsReceiver() && !p.body.readsReceiver() {
		m.done[k] = r
	}
	return r, nil
}

// readsReceiver says whether t, or the built-in template it falls back on, may print the receiver.
func (t *tmpl) readsReceiver() bool {
	return t.receiver || (t.fallback != nil && t.fallback.readsReceiver())
}

// mayReadReceiver says whether t's output may depend on Data.ReceiverID. It errs towards yes: a field, chain
// or variable named ReceiverID anywhere (whatever dot is there), and any use of dot or $ whole (printed,
// passed to a function or to another template, or kept in a variable), count.
func mayReadReceiver(t *template.Template) bool {
	for _, tt := range t.Templates() {
		if tt.Tree != nil && readsReceiver(tt.Tree.Root) {
			return true
		}
	}
	return false
}

func readsReceiver(n parse.Node) bool {
	const field = "ReceiverID"
	switch n := n.(type) {
	case *parse.ListNode:
		return n != nil && anyReadsReceiver(n.Nodes)
	case *parse.ActionNode:
		return readsReceiver(n.Pipe)
	case *parse.IfNode:
		return readsBranch(&n.BranchNode)
	case *parse.RangeNode:
		return readsBranch(&n.BranchNode)
	case *parse.WithNode:
		return readsBranch(&n.BranchNode)
	case *parse.TemplateNode:
		return readsReceiver(n.Pipe)
	case *parse.PipeNode:
		return n != nil && anyReadsReceiver(n.Cmds)
	case *parse.CommandNode:
		return anyReadsReceiver(n.Args)
	case *parse.ChainNode:
		return readsReceiver(n.Node) || contains(n.Field, field)
	case *parse.FieldNode:
		return contains(n.Ident, field)
	case *parse.VariableNode:
		return len(n.Ident) == 1 || contains(n.Ident, field)
	case *parse.DotNode:
		return true
	}
	return false
}

func anyReadsReceiver[N parse.Node](nodes []N) bool {
	for _, n := range nodes {
		if readsReceiver(n) {
			return true
		}
	}
	return false
}

func readsBranch(b *parse.BranchNode) bool {
	return readsReceiver(b.Pipe) || readsReceiver(b.List) || readsReceiver(b.ElseList)
}
