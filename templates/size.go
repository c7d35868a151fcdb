package templates

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const ellipsis = "…"

// jsonLen is how many bytes s takes inside a JSON string as encoding/json writes it (with its default HTML
// escaping, which the FCM and APNs clients use), never less: every limit here is about bytes on the wire.
func jsonLen(s string) int {
	n := 0
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		n += runeLen(r, size)
		s = s[size:]
	}
	return n
}

func runeLen(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1: // invalid byte: written as \ufffd
		return 6
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6 // \u00XX
	}
	return size
}

// Truncate returns s as valid UTF-8 (invalid bytes replaced by U+FFFD) taking at most limit bytes
// JSON-escaped; a string that had to be cut ends with "…", cut on a rune boundary. The worker may use it for
// the display names it puts in data fields (DataReserve counts on FieldLimit for them).
func Truncate(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if jsonLen(s) <= limit {
		return s
	}
	if limit < len(ellipsis) {
		return ""
	}
	room, n := limit-len(ellipsis), 0
	for i, r := range s {
		c := runeLen(r, utf8.RuneLen(r))
		if n+c > room {
			return strings.TrimRightFunc(s[:i], unicode.IsSpace) + ellipsis
		}
		n += c
	}
	return s // not reached: s is over limit
}
