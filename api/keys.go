package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/ringer-dev/ringer/wire"
)

// checkKeys walks one JSON value with a token decoder before it is decoded into a value of type t, and
// refuses what encoding/json would let through quietly: a key that matches a field only when case is
// ignored ({"RING": true} sets Ring), a key no field has, and a key given twice in one object (the last one
// wins, whatever the caller meant). Keys are compared after unescaping, exactly. Free-form objects (custom:
// maps and interfaces) may hold any key, but never the same one twice.
//
// A json.RawMessage field is skipped, not walked: the handler decodes it on its own with decodeStrict,
// which walks it then, after checking its size (a 5 KiB custom is walked, an 8 MiB one is refused unread).
//
// Only key errors and nesting deeper than encoding/json allows are reported. Malformed JSON ends the walk
// quietly and is left to the decoder, whose message says where the syntax breaks.
func checkKeys(path string, data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := &keyWalker{dec: dec, path: []string{path}}
	err := w.value(t)
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// keyWalker walks one value. path holds the segments of where it is ("data", ".custom", "[2]"), joined only
// for an error: building each path as it goes would cost the square of the depth.
type keyWalker struct {
	dec  *json.Decoder
	path []string
}

// maxKeyDepth is encoding/json's own nesting limit, which its token reader does not enforce.
const maxKeyDepth = 10000

func (w *keyWalker) at() string { return strings.Join(w.path, "") }

func (w *keyWalker) push(seg string) error {
	if len(w.path) > maxKeyDepth {
		return fieldErr(wire.CodeInvalidJSON, orBody(w.path[0]), "is nested deeper than %d levels", maxKeyDepth)
	}
	w.path = append(w.path, seg)
	return nil
}

func (w *keyWalker) pop() { w.path = w.path[:len(w.path)-1] }

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// skipValue consumes a JSON value without copying it: the decoder finds its end and hands over a slice of
// its own buffer.
type skipValue struct{}

func (*skipValue) UnmarshalJSON([]byte) error { return nil }

// value walks the next value, which is decoded into t; a nil t is free-form.
func (w *keyWalker) value(t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType {
		return w.dec.Decode(&skipValue{})
	}
	if t != nil && (t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType)) {
		t = nil
	}
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return w.object(t)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.push("[" + strconv.Itoa(i) + "]"); err != nil {
				return err
			}
			if err := w.value(elem); err != nil {
				return err
			}
			w.pop()
		}
		_, err := w.dec.Token() // ]
		return err
	}
	return nil
}

// object walks the members of an object whose { has been read.
func (w *keyWalker) object(t reflect.Type) error {
	var fields map[string]reflect.Type // nil: any key is allowed
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = jsonFields(t, nil)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := make(map[string]bool)
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("object key is %T", tok) // malformed: the decoder says so
		}
		seg := key
		if len(w.path) > 1 || w.path[0] != "" {
			seg = "." + key
		}
		if err := w.push(seg); err != nil {
			return err
		}
		if seen[key] {
			return fieldErr(wire.CodeInvalidJSON, w.at(), "is given twice in one object; give each key once")
		}
		seen[key] = true
		ft := elem
		if fields != nil {
			if ft, ok = fields[key]; !ok {
				return unknownKey(w.at(), key, fields)
			}
		}
		if err := w.value(ft); err != nil {
			return err
		}
		w.pop()
	}
	_, err := w.dec.Token() // }
	return err
}

// unknownKey is the unknown_field answer, with a hint when only the case is wrong.
func unknownKey(at, key string, fields map[string]reflect.Type) error {
	for name := range fields {
		if strings.EqualFold(name, key) {
			return fieldErr(wire.CodeUnknownField, at, "is not a known field (field names are case-sensitive: did you mean %q?)", name)
		}
	}
	return fieldErr(wire.CodeUnknownField, at, "is not a known field")
}

// jsonFields lists the JSON names of a struct's fields as encoding/json sees them (tag name, else the Go
// name; "-" left out; untagged embedded structs flattened) with the type each decodes into.
func jsonFields(t reflect.Type, into map[string]reflect.Type) map[string]reflect.Type {
	if into == nil {
		into = make(map[string]reflect.Type, t.NumField())
	}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				// The outer struct's own fields win over the embedded one's, as in encoding/json.
				for name, typ := range jsonFields(ft, nil) {
					if _, own := into[name]; !own {
						into[name] = typ
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
	return into
}
