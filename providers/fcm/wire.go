package fcm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"firebase.google.com/go/v4/messaging"
)

const (
	// maxAnswer bounds how much of FCM's answer is read: a name or an error is a few hundred bytes.
	maxAnswer = 64 << 10
	// maxPooled keeps a rare huge buffer from being held by the pool for good.
	maxPooled = 64 << 10
)

// post sends m to FCM once and returns the message name FCM gave it. An error is an *answerError for any
// answer but a 2xx, a *transportError when no answer came, the context's error when it ended first.
func (s *Sender) post(ctx context.Context, sess *session, m *messaging.Message) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, sendBackstop)
		defer cancel()
	}
	body := s.payload()
	defer body.release()
	var err error
	if body.buf, err = appendRequest(body.buf, m); err != nil {
		return "", &pushError{msg: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sess.url, body.open())
	if err != nil {
		return "", fmt.Errorf("fcm: request to %s: %w", sess.url, err)
	}
	req.ContentLength = int64(len(body.buf))
	// Our transport sends the body again over HTTP/1.1 when a TLS endpoint turns out to lack HTTP/2.
	req.GetBody = func() (io.ReadCloser, error) { return body.open(), nil }
	req.Header = sess.header.Clone()
	resp, err := sess.rt.RoundTrip(req)
	if err != nil {
		return "", noAnswer(ctx, err)
	}
	defer resp.Body.Close()
	answer := s.payload()
	defer answer.release()
	if answer.buf, err = readAnswer(answer.buf, resp.Body); err != nil {
		return "", noAnswer(ctx, err)
	}
	if resp.StatusCode/100 != 2 {
		return "", newAnswerError(resp.StatusCode, resp.Header, answer.buf)
	}
	name, err := messageName(answer.buf)
	if err != nil {
		return "", fmt.Errorf("fcm: read answer %d: %w", resp.StatusCode, err)
	}
	return name, nil
}

// messageName reads the name from FCM's answer to a send, {"name": "projects/p/messages/0:1"}: by hand when it
// is just that and the name needs no unescaping, as it always does, else through encoding/json.
func messageName(b []byte) (string, error) {
	rest, ok := bytes.CutPrefix(skipSpace(b), []byte{'{'})
	if ok {
		rest, ok = bytes.CutPrefix(skipSpace(rest), []byte(`"name"`))
	}
	if ok {
		rest, ok = bytes.CutPrefix(skipSpace(rest), []byte{':'})
	}
	if ok {
		rest, ok = bytes.CutPrefix(skipSpace(rest), []byte{'"'})
	}
	if ok {
		if end := bytes.IndexByte(rest, '"'); end >= 0 && plain(rest[:end]) {
			if tail, closed := bytes.CutPrefix(skipSpace(rest[end+1:]), []byte{'}'}); closed && len(skipSpace(tail)) == 0 {
				return string(rest[:end]), nil
			}
		}
	}
	var sent struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(b, &sent); err != nil {
		return "", err
	}
	return sent.Name, nil
}

// plain says b is printable ASCII without a backslash: a JSON string's content that reads as it is.
func plain(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= utf8.RuneSelf || c == '\\' {
			return false
		}
	}
	return true
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	return b
}

// noAnswer is the error of a send that got no (complete) answer: the context's when it ended, since that is
// why, else the transport's.
func noAnswer(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fcm: send: %w: %v", ctx.Err(), err)
	}
	return &transportError{err: err}
}

// transportError is a send that got no answer while its context was live: a refused or dropped connection,
// a TLS failure, a stream reset.
type transportError struct{ err error }

func (e *transportError) Error() string { return "fcm: transport: " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// readAnswer appends r, up to maxAnswer bytes, to dst.
func readAnswer(dst []byte, r io.Reader) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	_, err := buf.ReadFrom(io.LimitReader(r, maxAnswer))
	return buf.Bytes(), err
}

// payload is a pooled buffer. A request body goes back to the pool only once Send is done with it and the
// transport has closed every reader it was given: HTTP/2 may still be writing a body after the answer came.
type payload struct {
	buf  []byte
	refs atomic.Int32
	pool *sync.Pool
}

func (s *Sender) payload() *payload {
	p, _ := s.bufs.Get().(*payload)
	if p == nil {
		p = &payload{buf: make([]byte, 0, 1024), pool: &s.bufs}
	}
	p.refs.Store(1)
	return p
}

// open is a reader of the buffer that holds it until closed.
func (p *payload) open() io.ReadCloser {
	p.refs.Add(1)
	r := &payloadReader{p: p}
	r.Reset(p.buf)
	return r
}

func (p *payload) release() {
	if p.refs.Add(-1) != 0 || cap(p.buf) > maxPooled {
		return
	}
	p.buf = p.buf[:0]
	p.pool.Put(p)
}

type payloadReader struct {
	bytes.Reader
	p      *payload
	closed atomic.Bool
}

func (r *payloadReader) Close() error {
	if r.closed.CompareAndSwap(false, true) {
		r.p.release()
	}
	return nil
}

// appendRequest appends FCM's HTTP v1 request {"message":{...}} for m to dst, field by field for what ringer
// sets, in the order and with the omissions of the SDK's MarshalJSON methods. A message using anything else
// (webpush, apns, an android notification, ...) goes through the SDK's own marshalling.
func appendRequest(dst []byte, m *messaging.Message) ([]byte, error) {
	if m.Webpush != nil || m.APNS != nil || m.FCMOptions != nil ||
		(m.Android != nil && (m.Android.Notification != nil || m.Android.FCMOptions != nil)) {
		b, err := json.Marshal(struct {
			Message *messaging.Message `json:"message"`
		}{m})
		if err != nil {
			return dst, fmt.Errorf("encode message: %w", err)
		}
		return append(dst, b...), nil
	}
	dst = append(dst, `{"message":{`...)
	comma := false
	field := func(name string) {
		if comma {
			dst = append(dst, ',')
		}
		comma = true
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	str := func(name, v string) {
		if v != "" {
			field(name)
			dst = appendJSONString(dst, v)
		}
	}
	str("topic", strings.TrimPrefix(m.Topic, "/topics/"))
	if len(m.Data) > 0 {
		field("data")
		dst = appendStringMap(dst, m.Data)
	}
	if n := m.Notification; n != nil {
		field("notification")
		dst = append(dst, '{')
		comma = false
		str("title", n.Title)
		str("body", n.Body)
		str("image", n.ImageURL)
		dst = append(dst, '}')
		comma = true
	}
	if a := m.Android; a != nil {
		field("android")
		dst = append(dst, '{')
		comma = false
		if a.TTL != nil {
			field("ttl")
			dst = appendDuration(dst, *a.TTL)
		}
		str("collapse_key", a.CollapseKey)
		str("priority", a.Priority)
		str("restricted_package_name", a.RestrictedPackageName)
		if len(a.Data) > 0 {
			field("data")
			dst = appendStringMap(dst, a.Data)
		}
		if a.DirectBootOK {
			field("direct_boot_ok")
			dst = append(dst, "true"...)
		}
		dst = append(dst, '}')
		comma = true
	}
	str("token", m.Token)
	str("condition", m.Condition)
	return append(dst, '}', '}'), nil
}

func appendStringMap(dst []byte, m map[string]string) []byte {
	dst = append(dst, '{')
	first := true
	for k, v := range m {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSONString(dst, v)
	}
	return append(dst, '}')
}

// appendDuration writes d as the SDK does for a TTL (durationToString): "30s", or "30.500000000s" with all
// nine digits of a fraction.
func appendDuration(dst []byte, d time.Duration) []byte {
	secs := int64(d / time.Second)
	nanos := int64(d - time.Duration(secs)*time.Second)
	dst = append(dst, '"')
	dst = strconv.AppendInt(dst, secs, 10)
	if nanos > 0 {
		dst = append(dst, '.')
		for div := int64(100_000_000); div > 0; div /= 10 {
			dst = append(dst, byte('0'+nanos/div%10))
		}
	}
	return append(dst, 's', '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (RFC 8259) as encoding/json does, but without its HTML escaping:
// invalid UTF-8 becomes U+FFFD, and U+2028 and U+2029 are escaped for JavaScript's sake.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
