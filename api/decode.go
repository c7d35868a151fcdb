package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ringer-dev/ringer/wire"
)

// MaxBodyBytes is the largest request body (API.md, "Limits": 8 MiB).
const MaxBodyBytes = 8 << 20

// Shapes of names, API.md. Compiled once: they are constants in all but syntax.
var (
	pathNameRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	userIDRe   = regexp.MustCompile(`^[A-Za-z0-9@._-]{1,128}$`)
	// roleRe bounds member roles, which API.md leaves open ("admin", "user", "host"...), to a short name.
	roleRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// readBody reads a request body for strict decoding: at most MaxBodyBytes, valid UTF-8, and JSON when a
// Content-Type says anything. An empty body reads as {} so that bodies whose fields are all optional may be
// left out (POST /accept with nothing to say).
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &apiError{Status: http.StatusUnsupportedMediaType, Code: wire.CodeUnsupportedMediaType,
				Message: fmt.Sprintf("Content-Type: the body must be application/json, not %q.", ct)}
		}
	}
	if r.ContentLength > MaxBodyBytes {
		return nil, fieldErr(wire.CodeLimitExceeded, "body", "is %d bytes, larger than the %d byte (8 MiB) limit", r.ContentLength, MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fieldErr(wire.CodeLimitExceeded, "body", "is larger than the %d byte (8 MiB) limit", MaxBodyBytes)
		}
		return nil, fieldErr(wire.CodeInvalidJSON, "body", "could not be read: %v", err)
	}
	return checkBody(body)
}

// checkBody applies the rules of readBody that do not need the request, so the fuzz test can reach them.
func checkBody(body []byte) ([]byte, error) {
	if len(body) > MaxBodyBytes {
		return nil, fieldErr(wire.CodeLimitExceeded, "body", "is larger than the %d byte (8 MiB) limit", MaxBodyBytes)
	}
	// encoding/json silently turns invalid UTF-8 into U+FFFD; refuse it instead, so what we store is what
	// the caller meant.
	if !utf8.Valid(body) {
		return nil, fieldErr(wire.CodeInvalidJSON, "body", "is not valid UTF-8")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return []byte("{}"), nil
	}
	return body, nil
}

// decodeStrict decodes one JSON value from data into v, refusing unknown fields, keys that match a field
// only when case is ignored, keys given twice (checkKeys), trailing data and type mismatches. path is where
// data sits in the request ("" for the body, "data.members[2]"); errors name the field by its full path.
// Numbers inside free-form objects (custom) stay json.Number so large integers keep every digit through
// storage.
func decodeStrict(path string, data []byte, v any) error {
	t := reflect.TypeOf(v)
	if err := checkKeys(path, data, t); err != nil {
		return err
	}
	// checkKeys has refused unknown keys already, and only free-form maps need json.Number; everything else
	// is decoded straight from data, without a Decoder copying it into a buffer of its own.
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		if err := json.Unmarshal(data, v); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				if se.Offset >= int64(len(data)) && strings.HasPrefix(se.Error(), "unexpected end") {
					return fieldErr(wire.CodeInvalidJSON, orBody(path), "is not valid JSON: it ends too early")
				}
				if se.Offset >= 1 && se.Offset <= int64(len(data)) && json.Valid(data[:se.Offset-1]) {
					// Everything before the bad byte is one whole value: the rest is trailing data.
					return fieldErr(wire.CodeInvalidJSON, orBody(path), "has data after the JSON value")
				}
			}
			return jsonError(path, data, err)
		}
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(path, data, err)
	}
	// Anything after the value (a second object, garbage) is refused: it is a client bug we should not hide.
	if _, err := dec.Token(); err != io.EOF {
		return fieldErr(wire.CodeInvalidJSON, orBody(path), "has data after the JSON value")
	}
	return nil
}

// jsonError turns an encoding/json error into a 400 naming the field in JSON path style.
func jsonError(path string, data []byte, err error) error {
	var ae *apiError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &se):
		return fieldErr(wire.CodeInvalidJSON, orBody(path), "is not valid JSON at byte %d: %s", se.Offset, se.Error())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fieldErr(wire.CodeInvalidJSON, orBody(path), "is not valid JSON: it ends too early")
	case errors.As(err, &te):
		field := joinPath(path, te.Field)
		return fieldErr(wire.CodeInvalidJSON, orBody(field), "must be %s, not %s", jsonKind(te.Type.Kind().String(), te.Type.String()), te.Value)
	}
	// encoding/json reports an unknown field only in its message: `json: unknown field "x"`.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		return fieldErr(wire.CodeUnknownField, joinPath(path, name), "is not a known field")
	}
	return fieldErr(wire.CodeInvalidJSON, orBody(path), "is not valid: %v", err)
}

// jsonKind names a Go kind the way a JSON author would read it.
func jsonKind(kind, typ string) string {
	switch {
	case kind == "bool":
		return "a boolean"
	case kind == "string":
		return "a string"
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"), typ == "json.Number":
		return "a number"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "map", kind == "struct":
		return "an object"
	}
	return "of type " + typ
}

func joinPath(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

func orBody(path string) string {
	if path == "" {
		return "body"
	}
	return path
}

// isNull tells a JSON null (or an absent raw value), which every optional field treats as "not given".
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// queryBool reads an optional boolean query parameter (ring=true); anything but a boolean is 400.
func queryBool(r *http.Request, name string) (bool, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, fieldErr(wire.CodeInvalidField, name, "must be true or false, not %q", s)
	}
	return b, nil
}

// pathCall reads and checks the {type} and {id} of a call path.
func pathCall(r *http.Request) (typ, id string, err error) {
	typ, id = r.PathValue("type"), r.PathValue("id")
	if !pathNameRe.MatchString(typ) {
		return "", "", fieldErr(wire.CodeInvalidField, "type", "must match %s", pathNameRe)
	}
	if !pathNameRe.MatchString(id) {
		return "", "", fieldErr(wire.CodeInvalidField, "id", "must match %s", pathNameRe)
	}
	return typ, id, nil
}
