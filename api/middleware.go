package api

import (
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringer-dev/ringer/wire"
)

// statusWriter remembers the status and size of an answer for the request log and metrics. Unwrap lets
// http.ResponseController reach the real writer's Flush and deadlines (the event stream needs both).
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logRequests logs one line per request: method, path, route, status, duration. Never the query (it may
// name users, and future parameters might be worse) and never a header, so tokens stay out of logs.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		elapsed := time.Since(start)
		route := r.Pattern
		if route == "" {
			// r.Pattern is set on the request the mux sees; ask the mux for the outer one.
			_, route = s.mux.Handler(r)
		}
		s.log.InfoContext(r.Context(), "http request", "method", r.Method, "path", r.URL.Path, "route", route,
			"status", sw.status, "bytes", sw.bytes, "ms", elapsed.Milliseconds())
		if s.metrics != nil {
			s.metrics.observe(route, r.Method, sw.status, elapsed)
		}
	})
}

// recoverPanics is the last guard: a panic in a handler answers 500 in the error body (when nothing was
// written yet) instead of dropping the connection, and is logged with its stack.
func (s *server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, ok := w.(*statusWriter)
		if !ok {
			sw = &statusWriter{ResponseWriter: w}
		}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v) // the handler asked net/http to abort the connection: let it
			}
			s.log.ErrorContext(r.Context(), "panic in handler", "method", r.Method, "path", r.URL.Path,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if sw.status == 0 {
				writeJSON(sw, http.StatusInternalServerError, wire.ErrorBody{Code: wire.CodeInternal, Message: "Internal error.", Status: http.StatusInternalServerError})
			}
		}()
		next.ServeHTTP(sw, r)
	})
}

// httpMetrics counts requests by route pattern (bounded, unlike paths) for /metrics.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) (*httpMetrics, error) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ringer_http_requests_total", Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ringer_http_request_duration_seconds", Help: "HTTP request duration by route (the event stream excluded).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"route", "method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register http metrics: %w", err)
		}
	}
	return m, nil
}

func (m *httpMetrics) observe(route, method string, status int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other" // a client picks the method: do not let it pick label values
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	if route != "GET /v1/events" {
		m.duration.WithLabelValues(route, method).Observe(d.Seconds())
	}
}
