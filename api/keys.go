package api

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"

	"github.com/ringer-dev/ringer/wire"
)

// checkKeys walks one JSON value before it is decoded into a value of type t, and refuses what encoding/json
// would let through quietly: a key that matches a field only when case is ignored ({"RING": true} sets Ring),
// a key no field has, and a key given twice in one object (the last one wins, whatever the caller meant). Keys
// are compared after unescaping, exactly. Free-form objects (custom: maps and interfaces) may hold any key,
// but never the same one twice.
//
// A json.RawMessage field is skipped, not walked: the handler decodes it on its own with decodeStrict,
// which walks it then, after checking its size (a 5 KiB custom is walked, an 8 MiB one is refused unread).
//
// Only key errors and nesting deeper than encoding/json allows are reported. Malformed JSON ends the walk
// quietly where it breaks and is left to the decoder, whose message says where. The walk reads the bytes
// itself, checking the grammar as it goes as encoding/json's token reader did: every request's body goes
// through it, and that reader cost more than the decode it guards.
func checkKeys(path string, data []byte, t reflect.Type) error {
	w := &keyWalker{data: data, path: []pathSeg{{key: path}}}
	err := w.value(t)
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// keyWalker walks one value of data from pos. path holds where it is, joined only for an error: building
// each path as it goes would cost the square of the depth.
type keyWalker struct {
	data []byte
	pos  int
	path []pathSeg
}

// pathSeg is one step of a keyWalker's path: a key (after a dot unless it starts the path), or an array index.
type pathSeg struct {
	key   string
	dot   bool
	index int
	isIdx bool
}

// errMalformed ends a walk that met bytes that are not JSON: the decoder reports them.
var errMalformed = errors.New("malformed JSON")

// maxKeyDepth is encoding/json's own nesting limit, which a walk must enforce before it recurses that deep.
const maxKeyDepth = 10000

// at is the path joined as the API names fields: "data.members[2].user_id".
func (w *keyWalker) at() string {
	var b strings.Builder
	b.WriteString(w.path[0].key)
	for _, s := range w.path[1:] {
		if s.isIdx {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
			continue
		}
		if s.dot {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

func (w *keyWalker) push(s pathSeg) error {
	if len(w.path) > maxKeyDepth {
		return fieldErr(wire.CodeInvalidJSON, orBody(w.path[0].key), "is nested deeper than %d levels", maxKeyDepth)
	}
	w.path = append(w.path, s)
	return nil
}

func (w *keyWalker) pop() { w.path = w.path[:len(w.path)-1] }

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// skipSpace moves past JSON whitespace and answers the next byte, 0 at the end.
func (w *keyWalker) skipSpace() byte {
	for w.pos < len(w.data) {
		switch c := w.data[w.pos]; c {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return c
		}
	}
	return 0
}

// value walks the next value, which is decoded into t; a nil t is free-form.
func (w *keyWalker) value(t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType {
		return w.skipValue(0)
	}
	if t != nil && (t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType)) {
		t = nil
	}
	switch w.skipSpace() {
	case '{':
		w.pos++
		return w.object(t)
	case '[':
		w.pos++
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		if w.closes(']') {
			return nil
		}
		for i := 0; ; i++ {
			if err := w.push(pathSeg{index: i, isIdx: true}); err != nil {
				return err
			}
			if err := w.value(elem); err != nil {
				return err
			}
			w.pop()
			if done, err := w.next(']'); done || err != nil {
				return err
			}
		}
	case '"':
		_, _, err := w.str()
		return err
	default:
		return w.scalar()
	}
}

// str moves past a string and answers its raw bytes between the quotes and whether they hold an escape. A
// control character or an unknown escape in it is malformed.
func (w *keyWalker) str() (raw []byte, escaped bool, err error) {
	start := w.pos + 1
	for i := start; i < len(w.data); i++ {
		switch c := w.data[i]; {
		case c == '"':
			w.pos = i + 1
			return w.data[start:i], escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(w.data) {
				return nil, false, errMalformed
			}
			switch w.data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+5 >= len(w.data) || !isHex(w.data[i+2:i+6]) {
					return nil, false, errMalformed
				}
				i += 5
			default:
				return nil, false, errMalformed
			}
		case c < 0x20:
			return nil, false, errMalformed
		}
	}
	return nil, false, errMalformed
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// scalar moves past true, false, null or a number (RFC 8259's grammar: -? int frac? exp?).
func (w *keyWalker) scalar() error {
	d := w.data[w.pos:]
	for _, lit := range []string{"true", "false", "null"} {
		if len(d) > 0 && d[0] == lit[0] {
			if len(d) < len(lit) || string(d[:len(lit)]) != lit {
				return errMalformed
			}
			w.pos += len(lit)
			return nil
		}
	}
	i := 0
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	default:
		return errMalformed
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return errMalformed
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return errMalformed
		}
		for i < len(d) && '0' <= d[i] && d[i] <= '9' {
			i++
		}
	}
	w.pos += i
	return nil
}

// skipValue moves past a value without looking at its keys, checking its grammar; depth is how many objects
// and arrays of the skipped value hold it, at most maxKeyDepth as encoding/json allows a value it decodes.
func (w *keyWalker) skipValue(depth int) error {
	c := w.skipSpace()
	if (c == '{' || c == '[') && depth >= maxKeyDepth {
		return errMalformed
	}
	switch c {
	case '"':
		_, _, err := w.str()
		return err
	case '{':
		w.pos++
		if w.closes('}') {
			return nil
		}
		for {
			if w.skipSpace() != '"' {
				return errMalformed
			}
			if _, _, err := w.str(); err != nil {
				return err
			}
			if w.skipSpace() != ':' {
				return errMalformed
			}
			w.pos++
			if err := w.skipValue(depth + 1); err != nil {
				return err
			}
			if done, err := w.next('}'); done || err != nil {
				return err
			}
		}
	case '[':
		w.pos++
		if w.closes(']') {
			return nil
		}
		for {
			if err := w.skipValue(depth + 1); err != nil {
				return err
			}
			if done, err := w.next(']'); done || err != nil {
				return err
			}
		}
	default:
		return w.scalar()
	}
}

// closes moves past the closing byte of an empty object or array, and says whether it was there.
func (w *keyWalker) closes(closing byte) bool {
	if w.skipSpace() != closing {
		return false
	}
	w.pos++
	return true
}

// next moves past the comma between two members of an object or array, or past its closing byte (done).
func (w *keyWalker) next(closing byte) (done bool, err error) {
	switch w.skipSpace() {
	case ',':
		w.pos++
		return false, nil
	case closing:
		w.pos++
		return true, nil
	}
	return false, errMalformed
}

// key reads an object's key, unescaped.
func (w *keyWalker) key() (string, error) {
	if w.skipSpace() != '"' {
		return "", errMalformed
	}
	start := w.pos
	raw, escaped, err := w.str()
	if err != nil {
		return "", err
	}
	if !escaped {
		return string(raw), nil
	}
	var k string
	if err := json.Unmarshal(w.data[start:w.pos], &k); err != nil {
		return "", errMalformed
	}
	return k, nil
}

// smallObject is how many keys an object may have before its keys seen are kept in a map, not a list.
const smallObject = 16

// object walks the members of an object whose { has been read.
func (w *keyWalker) object(t reflect.Type) error {
	var fields []jsonField // nil: any key is allowed
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = structFields(t, nil)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	if w.closes('}') {
		return nil
	}
	var seenList []string
	var seenMap map[string]bool
	for {
		key, err := w.key()
		if err != nil {
			return err
		}
		if err := w.push(pathSeg{key: key, dot: len(w.path) > 1 || w.path[0].key != ""}); err != nil {
			return err
		}
		if seenMap != nil {
			if seenMap[key] {
				return fieldErr(wire.CodeInvalidJSON, w.at(), "is given twice in one object; give each key once")
			}
			seenMap[key] = true
		} else {
			for _, k := range seenList {
				if k == key {
					return fieldErr(wire.CodeInvalidJSON, w.at(), "is given twice in one object; give each key once")
				}
			}
			if seenList = append(seenList, key); len(seenList) > smallObject {
				seenMap = make(map[string]bool, 2*len(seenList))
				for _, k := range seenList {
					seenMap[k] = true
				}
			}
		}
		ft := elem
		if fields != nil {
			if ft = fieldType(fields, key); ft == nil {
				return unknownKey(w.at(), key, fields)
			}
		}
		if w.skipSpace() != ':' {
			return errMalformed
		}
		w.pos++
		if err := w.value(ft); err != nil {
			return err
		}
		w.pop()
		if done, err := w.next('}'); done || err != nil {
			return err
		}
	}
}

// unknownKey is the unknown_field answer, with a hint when only the case is wrong.
func unknownKey(at, key string, fields []jsonField) error {
	for _, f := range fields {
		if strings.EqualFold(f.name, key) {
			return fieldErr(wire.CodeUnknownField, at, "is not a known field (field names are case-sensitive: did you mean %q?)", f.name)
		}
	}
	return fieldErr(wire.CodeUnknownField, at, "is not a known field")
}

// jsonField is a struct field as encoding/json decodes it: its JSON name and the type it decodes into.
type jsonField struct {
	name string
	typ  reflect.Type
}

// fieldType is the type of the field named key, nil when there is none. A struct has a handful of fields, so
// a scan beats building a map for every object of a request body.
func fieldType(fields []jsonField, key string) reflect.Type {
	for _, f := range fields {
		if f.name == key {
			return f.typ
		}
	}
	return nil
}

// structFields appends to into the JSON fields of struct t as encoding/json sees them (tag name, else the Go
// name; "-" left out; untagged embedded structs flattened, their fields behind the outer struct's own, which
// win, as in encoding/json).
func structFields(t reflect.Type, into []jsonField) []jsonField {
	own := len(into)
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into = append(into, jsonField{name, f.Type})
	}
	for _, e := range embedded {
		for _, f := range structFields(e, nil) {
			if fieldType(into[own:], f.name) == nil {
				into = append(into, f)
			}
		}
	}
	return into
}
