package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/ringer-dev/ringer/calls"
)

// writeCall writes the call answer of st (present) as writeJSON would, byte for byte, but for its members:
// a big call has up to a hundred thousand, and encoding/json's reflection over them was most of the CPU of the
// answer. Each member is appended by appendMember instead; anything it cannot write exactly so goes back to
// writeJSON.
func writeCall(w http.ResponseWriter, status int, st calls.State, created bool) {
	call, err := json.Marshal(presentCall(st.Call))
	if err != nil {
		writeJSON(w, status, present(st, created))
		return
	}
	b := make([]byte, 0, len(call)+64+len(st.Members)*96)
	b = append(b, `{"created":`...)
	b = strconv.AppendBool(b, created)
	b = append(b, `,"call":`...)
	b = append(b, call...)
	b = append(b, `,"members":[`...)
	for i, m := range st.Members {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendMember(b, m); err != nil {
			writeJSON(w, status, present(st, created))
			return
		}
	}
	b = append(b, "]}"...)
	writeBody(w, status, b)
}

// appendMember appends m as encoding/json encodes the member presentMembers makes of it: fields in their order,
// strings HTML-escaped, custom with its keys sorted and {} when it has none, created_at as time.Time's
// MarshalJSON writes it (AppendText is the same text, without the quotes).
func appendMember(b []byte, m calls.Member) ([]byte, error) {
	b = append(b, `{"user_id":`...)
	b = appendJSONString(b, m.UserID)
	b = append(b, `,"role":`...)
	b = appendJSONString(b, m.Role)
	b = append(b, `,"custom":`...)
	if len(m.Custom) == 0 {
		b = append(b, "{}"...)
	} else {
		custom, err := json.Marshal(m.Custom)
		if err != nil {
			return b, err
		}
		b = append(b, custom...)
	}
	b = append(b, `,"created_at":"`...)
	b, err := m.CreatedAt.AppendText(b)
	if err != nil {
		return b, err
	}
	return append(b, `"}`...), nil
}

// appendJSONString appends s quoted as encoding/json quotes a string: as it is when every byte is printable
// ASCII that needs no escape (the user ids the API allows are), else through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
