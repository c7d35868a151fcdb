package calls

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// A stored member decodes to what memberJSON stored: an empty or missing custom object as an empty map, and
// the numbers of a custom object exact, as json.Number.
func TestAStoredMemberDecodesToWhatWasStored(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 44, 59, 297648086, time.UTC)
	custom := map[string]any{"seat": json.Number("12345678901234567890"), "tags": []any{"a", json.Number("1.5")}}
	for _, in := range []MemberInput{
		{UserID: "bob"},
		{UserID: "bob", Role: "admin", Custom: map[string]any{}},
		{UserID: "bob", Role: "guest", Custom: custom},
	} {
		raw, err := memberJSON(in, at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMember(raw)
		if err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
		want := Member{Role: in.Role, Custom: in.Custom, CreatedAt: at}
		if want.Role == "" {
			want.Role = "user"
		}
		if want.Custom == nil {
			want.Custom = map[string]any{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s decoded as %+v; want %+v", raw, got, want)
		}
	}
	for _, raw := range []string{`{"role":"user","custom":null,"created_at":"2026-12-07T10:44:59Z"}`, `{"role":"user","created_at":"2026-12-07T10:44:59Z"}`} {
		got, err := decodeMember(raw)
		if err != nil || got.Custom == nil || len(got.Custom) != 0 {
			t.Errorf("%s decoded as %+v (%v); want an empty custom object", raw, got, err)
		}
	}
	if _, err := decodeMember(`{"role":`); err == nil {
		t.Error("a truncated member decoded")
	}
}
