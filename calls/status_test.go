package calls

import (
	"encoding/json"
	"errors"
	"testing"
)

// Every status a script can answer parses to its constant, and each maps to one error (or none).
func TestEveryScriptStatusParsesAndMapsToOneError(t *testing.T) {
	for _, c := range []struct {
		name string
		want error
	}{
		{"ok", nil}, {"exists", nil}, {"noop", nil}, {"not_found", ErrNotFound}, {"ended", ErrEnded},
		{"not_rung", ErrNotRung}, {"ring_over", ErrRingOver}, {"forbidden", ErrForbidden}, {"too_many", nil},
	} {
		var out outcome
		if err := json.Unmarshal([]byte(`{"status":"`+c.name+`"}`), &out); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if out.Status.String() != c.name {
			t.Errorf("%s parsed as %s", c.name, out.Status)
		}
		err := out.Status.err("default:x", out)
		var fe *FieldError
		switch {
		case c.name == "too_many":
			if !errors.As(err, &fe) || !fe.Limit {
				t.Errorf("too_many: %v, want a limit FieldError", err)
			}
		case c.want == nil && err != nil, c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	var out outcome
	if err := json.Unmarshal([]byte(`{"status":"maybe"}`), &out); err == nil {
		t.Error("an unknown status parsed")
	}
}
