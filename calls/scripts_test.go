package calls

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The scripts spell no event name or reject reason of their own: they use the Lua locals that luaEvents
// makes from the Go constants, so a renamed constant cannot leave a script writing the old name.
func TestScriptsSpellNoEventOrReasonLiteral(t *testing.T) {
	src, err := os.ReadFile("scripts.go")
	if err != nil {
		t.Fatal(err)
	}
	literal := regexp.MustCompile(`'(call\.[a-z_]+|decline|busy|cancel|timeout)'`)
	if m := literal.FindAllString(string(src), -1); len(m) > 0 {
		t.Errorf("scripts.go spells %v", m)
	}
	for _, want := range []string{"local EV_RING = " + `"` + EventRing + `"`, "local REASON_BUSY = " + `"` + ReasonBusy + `"`} {
		if !strings.Contains(luaPrelude, want) {
			t.Errorf("the prelude lacks %s", want)
		}
	}
}
