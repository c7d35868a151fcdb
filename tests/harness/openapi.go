package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/ringer-dev/ringer/docs"
)

// Spec is docs/openapi.yaml loaded and checked, with a router over its operations.
type Spec struct {
	Doc    *openapi3.T
	router routers.Router
}

var (
	specOnce sync.Once
	spec     *Spec
	specErr  error
)

// LoadSpec loads the OpenAPI document the server serves, once per test process, and fails the test when the
// document itself is not valid OpenAPI.
func LoadSpec(t testing.TB) *Spec {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(docs.OpenAPI())
		if err != nil {
			specErr = fmt.Errorf("load docs/openapi.yaml: %w", err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			specErr = fmt.Errorf("docs/openapi.yaml is not valid OpenAPI: %w", err)
			return
		}
		// The router matches paths against the servers' URLs; the tests' servers listen on random ports.
		doc.Servers = nil
		r, err := gorillamux.NewRouter(doc)
		if err != nil {
			specErr = fmt.Errorf("route docs/openapi.yaml: %w", err)
			return
		}
		spec = &Spec{Doc: doc, router: r}
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	return spec
}

// ValidateEvent checks the data of one Server-Sent Event against the schema Event.
func (s *Spec) ValidateEvent(data any) error {
	ref := s.Doc.Components.Schemas["Event"]
	if ref == nil || ref.Value == nil {
		return errors.New("docs/openapi.yaml has no schema Event")
	}
	return ref.Value.VisitJSON(data, openapi3.EnableJSONSchema2020())
}

// Checked returns an HTTP client whose every exchange is checked against the spec; a mismatch fails t (with
// t.Errorf, so the test sees its own answer too and says what it expected):
//
//   - a request the spec accepts must get an answer the spec describes for its operation;
//   - a request the spec refuses (tests send bad input on purpose) must get an error answer, 4xx, in the
//     error body: the spec must not promise what the server refuses nor refuse what the server takes;
//   - a path or method the spec does not know must get 404 or 405 in the error body.
//
// Event streams are checked by status and headers here and event by event by Events.
func (s *Spec) Checked(t testing.TB, base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	return &http.Client{Transport: &checkingTransport{t: t, spec: s, base: base}}
}

type checkingTransport struct {
	t    testing.TB
	spec *Spec
	base http.RoundTripper
}

func (c *checkingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body to check it: %w", err)
		}
		reqBody = b
		// A RoundTripper must not change the caller's request: send a copy carrying the bytes read.
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	res, err := c.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	what := req.Method + " " + req.URL.RequestURI()

	// A copy of the request for the validator, whose body decoders read it.
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, pathParams, ferr := c.spec.router.FindRoute(vreq)

	stream := isEventStream(res.Header.Get("Content-Type"))
	var resBody []byte
	if !stream {
		resBody, err = io.ReadAll(res.Body)
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(resBody))
		if err != nil {
			return res, nil // the test sees the read error itself
		}
	}

	if ferr != nil {
		if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
			c.t.Errorf("openapi: %s is in no operation of docs/openapi.yaml (%v), yet the server answered %d", what, ferr, res.StatusCode)
		} else if err := c.checkErrorBody(res, resBody); err != nil {
			c.t.Errorf("openapi: %s answered %d: %v", what, res.StatusCode, err)
		}
		return res, nil
	}

	in := &openapi3filter.RequestValidationInput{
		Request: vreq, PathParams: pathParams, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerPresent, MultiError: true},
	}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if reqErr != nil && res.StatusCode < 400 {
		c.t.Errorf("openapi: docs/openapi.yaml refuses %s (%v), yet the server answered %d: one of them is wrong", what, reqErr, res.StatusCode)
	}
	if reqErr != nil && res.StatusCode >= 500 {
		c.t.Errorf("openapi: %s, which docs/openapi.yaml refuses (%v), got %d, not a 4xx", what, reqErr, res.StatusCode)
	}

	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.StatusCode,
		Header:                 res.Header,
		Options:                &openapi3filter.Options{MultiError: true, IncludeResponseStatus: true, ExcludeResponseBody: stream},
	}
	if !stream {
		out.SetBodyBytes(resBody)
	}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		c.t.Errorf("openapi: the answer %d to %s does not match docs/openapi.yaml: %v\nbody: %s", res.StatusCode, what, err, truncate(resBody, 2000))
	}
	return res, nil
}

// checkErrorBody checks an answer against the schema Error.
func (c *checkingTransport) checkErrorBody(res *http.Response, body []byte) error {
	if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", res.Header.Get("Content-Type"))
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("body is not JSON: %w", err)
	}
	return c.spec.Doc.Components.Schemas["Error"].Value.VisitJSON(v, openapi3.EnableJSONSchema2020())
}

// bearerPresent is the spec's "bearer" scheme as a validator can check it: the header is there and says
// Bearer. Whether the token is good is the server's business, which the answer shows.
func bearerPresent(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return errors.New("no Authorization: Bearer header")
	}
	return nil
}

func isEventStream(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "text/event-stream"
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
